// Helm values per Cilium version (1.14 and newer; 1.13 and older refused), and the YAML parses.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { valuesYaml, type ValuesRequest } from '../../cmd/migration/helm-values.js';
import { ExitCode, type CliError } from '../../lib/errors.js';

const req = (extra: Partial<ValuesRequest>): ValuesRequest => ({ phase: 'initial', ciliumVersion: '1.16.3', ciliumCidr: '10.245.0.0/16', tunnelPort: 8473, legacyTunnelPort: 8472, ...extra });
const values = (extra: Partial<ValuesRequest>) => parse(valuesYaml(req(extra))) as Record<string, any>;

describe('values', () => {
  it('uses routingMode and tunnelProtocol from Cilium 1.14 on, never `tunnel`', () => {
    for (const version of ['1.14', '1.16.3', 'v1.18.0']) {
      const v = values({ ciliumVersion: version });
      assert.equal(v.routingMode, 'tunnel', version);
      assert.equal(v.tunnelProtocol, 'vxlan', version);
      assert.equal('tunnel' in v, false, version);
    }
  });

  it('names no legacy port when the legacy CNI has none (Calico IP-in-IP, AWS-CNI: --legacy-tunnel-port 0)', () => {
    const text = valuesYaml(req({ legacyTunnelPort: 0, tunnelPort: 8472 }));
    assert.equal((parse(text) as Record<string, unknown>).tunnelPort, 8472);
    assert.doesNotMatch(text, /not 0/);
  });

  it('sets the migration-mode keys of the seed for the initial phase', () => {
    const v = values({});
    assert.deepEqual(v, {
      operator: { unmanagedPodWatcher: { restart: false } },
      routingMode: 'tunnel',
      tunnelProtocol: 'vxlan',
      tunnelPort: 8473,
      cni: { customConf: true, uninstall: false },
      ipam: { mode: 'cluster-pool', operator: { clusterPoolIPv4PodCIDRList: ['10.245.0.0/16'] } },
      policyEnforcementMode: 'never',
      bpf: { hostLegacyRouting: true },
    });
  });

  it('changes exactly the three keys of the seed for the final phase', () => {
    const initial = values({});
    const final = values({ phase: 'final' });
    assert.equal(final.operator.unmanagedPodWatcher.restart, true);
    assert.equal(final.cni.customConf, false);
    assert.equal(final.policyEnforcementMode, 'default');
    assert.deepEqual({ ...final, operator: initial.operator, cni: initial.cni, policyEnforcementMode: initial.policyEnforcementMode }, initial);
  });

  it('explains every key in a comment', () => {
    const text = valuesYaml(req({}));
    const keys = text.split('\n').filter((l) => /^\s*[a-zA-Z]+:\s*\S/.test(l));
    const lines = text.split('\n');
    for (const key of keys) assert.match(lines[lines.indexOf(key) - 1] ?? '', /^\s*# /, `comment before "${key.trim()}"`);
  });

  const refusals: [string, Partial<ValuesRequest>, number, RegExp][] = [
    ['a version without CiliumNodeConfig', { ciliumVersion: '1.12.9' }, ExitCode.precondition, /no CiliumNodeConfig \(added in 1\.13\)/],
    ['Cilium 1.13 (end of life; its CNI config comes from a postStart script, not the CiliumNodeConfig)', { ciliumVersion: '1.13.4' }, ExitCode.precondition, /1\.13 is end of life.*postStart script.*05-cilium\.conf/],
    ['a malformed version', { ciliumVersion: 'latest' }, ExitCode.usage, /not a version/],
    ['the legacy tunnel port', { tunnelPort: 8472 }, ExitCode.usage, /the legacy CNI's VXLAN port too/],
  ];
  for (const [name, extra, code, message] of refusals) {
    it(`refuses ${name}`, () => assert.throws(() => valuesYaml(req(extra)), (e: unknown) => (e as CliError).exitCode === code && message.test((e as Error).message)));
  }
  it('refuses a malformed CIDR as a usage error', () =>
    assert.throws(() => valuesYaml(req({ ciliumCidr: '10.245.0.0/40' })), (e: unknown) => (e as CliError).exitCode === ExitCode.usage && /--cilium-cidr: .* is not a CIDR/.test((e as Error).message)));
});
