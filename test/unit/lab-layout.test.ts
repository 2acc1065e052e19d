// The lab's layout (lab/layout.ts): `lab up`, `lab demo` and `make demo` take the pod CIDRs, both
// tunnel ports, the node count and Cilium's namespace, refuse a layout the lab cannot run before
// anything starts (one line, exit 2), and hand it to Flannel, Cilium's helm install, the probe agents
// and every plugin command the demo runs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { main } from '../../lab/cli.js';
import { probeAgentObjects } from '../../lab/lab-install.js';
import { checkLayout, defaultLayout, describeLayout, layoutArgs, pluginLayoutFlags, withLegacy, type LabLayout } from '../../lab/layout.js';
import { helmInstallArgs, initialValuesArgs } from '../../lab/node/cilium-install.js';

/** Runs the lab's command line in this process; what it wrote to stderr. */
async function lab(argv: string[]): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array) => ((stderr += String(chunk)), true)) as typeof process.stderr.write;
  try {
    const code = await main(['--state-dir', '/nonexistent/cilium-migrate-lab-unit', ...argv]);
    return { code, stderr };
  } finally {
    process.stderr.write = write;
  }
}

const nonDefault: LabLayout = { legacyCidr: '10.42.0.0/16', ciliumCidr: '10.200.0.0/16', legacyTunnelPort: 8555, ciliumTunnelPort: 8666, ciliumNamespace: 'cilium' };

describe('lab up / demo: the layout flags, refused at the edge', () => {
  const refused: [string[], RegExp][] = [
    [['--cilium-cidr', '10.244.128.0/17'], /^error: --cilium-cidr "10\.244\.128\.0\/17": expected a range that does not overlap --legacy-cidr 10\.244\.0\.0\/16 /],
    [['--legacy-cidr', '10.245.0.0/16'], /^error: --cilium-cidr "10\.245\.0\.0\/16": expected a range that does not overlap --legacy-cidr 10\.245\.0\.0\/16 /],
    [['--legacy-cidr', '10.0.0.0/8', '--cilium-cidr', '10.200.0.0/16'], /^error: --cilium-cidr "10\.200\.0\.0\/16": expected a range that does not overlap --legacy-cidr 10\.0\.0\.0\/8 /],
    [['--cilium-tunnel-port', '8472'], /^error: --cilium-tunnel-port 8472: expected a port other than --legacy-tunnel-port 8472 /],
    [['--legacy-tunnel-port', '8666', '--cilium-tunnel-port', '8666'], /^error: --cilium-tunnel-port 8666: expected a port other than --legacy-tunnel-port 8666 /],
    [['--legacy-tunnel-port', '0'], /^error: --legacy-tunnel-port "0": expected a port number from 1 to 65535$/m],
    [['--cilium-tunnel-port', '70000'], /^error: --cilium-tunnel-port "70000": expected a port number/],
    [['--legacy-cidr', '10.42.1.0/16'], /^error: --legacy-cidr "10\.42\.1\.0\/16": expected an IPv4 pod CIDR like 10\.42\.0\.0\/16 /],
    [['--cilium-cidr', 'fd00:10:245::/56'], /^error: --cilium-cidr "fd00:10:245::\/56": expected an IPv4 pod CIDR .*the lab is IPv4 only/],
    [['--cilium-cidr', '10.200.0.0/25'], /^error: --cilium-cidr "10\.200\.0\.0\/25": expected an IPv4 pod CIDR/],
    [['--nodes', '5', '--cilium-cidr', '10.200.0.0/23'], /^error: --cilium-cidr "10\.200\.0\.0\/23": has room for 2 nodes \(a \/24 each\) and the lab has 5/],
    [['--legacy-cidr', '172.16.0.0/12'], /^error: --legacy-cidr "172\.16\.0\.0\/12": expected a range that does not overlap 172\.18\.0\.0\/16 \(the lab's node network\)/],
    [['--cilium-cidr', '10.96.0.0/12'], /^error: --cilium-cidr "10\.96\.0\.0\/12": expected a range that does not overlap 10\.96\.0\.0\/16 \(the lab's service CIDR\)/],
    [['--cilium-namespace', 'Cilium'], /^error: --cilium-namespace "Cilium": expected a namespace name/],
    [['--cilium-namespace', 'kube-flannel'], /^error: --cilium-namespace "kube-flannel": expected a namespace other than kube-flannel \(Flannel's namespace, which finalize deletes\)/],
  ];
  for (const command of ['up', 'demo']) {
    for (const [args, message] of refused) {
      it(`${command} ${args.join(' ')}: exit 2, one line naming the flag`, async () => {
        const r = await lab([command, ...args]);
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, message);
        assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
      });
    }
  }

  it('with --legacy calico: Calico\'s pool 192.168.0.0/16 unless --legacy-cidr names one, VXLAN on 4789, any other legacy port refused', async () => {
    assert.deepEqual(withLegacy(defaultLayout, 'calico'), { ...defaultLayout, legacyCidr: '192.168.0.0/16', legacyTunnelPort: 4789 });
    assert.deepEqual(withLegacy(nonDefault, 'flannel'), nonDefault);
    assert.match(describeLayout(withLegacy(defaultLayout, 'calico'), 'calico'), /^Calico VXLAN 4789, pods in 192\.168\.0\.0\/16; Cilium in namespace kube-system/);
    assert.deepEqual(withLegacy({ ...nonDefault, legacyTunnelPort: 8472 }, 'calico'), { ...nonDefault, legacyTunnelPort: 4789 });
    const r = await lab(['up', '--legacy', 'calico', '--legacy-tunnel-port', '8555']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^error: --legacy-tunnel-port 8555: the lab's Calico runs VXLAN on 4789/);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
  });

  it('takes a non-default layout, and the defaults are the seed\'s', () => {
    assert.deepEqual(defaultLayout, { legacyCidr: '10.244.0.0/16', ciliumCidr: '10.245.0.0/16', legacyTunnelPort: 8472, ciliumTunnelPort: 8473, ciliumNamespace: 'kube-system' });
    assert.doesNotThrow(() => checkLayout(nonDefault, 5));
    assert.doesNotThrow(() => checkLayout(defaultLayout, 50));
    assert.deepEqual(layoutArgs(nonDefault), ['--legacy-cidr', '10.42.0.0/16', '--cilium-cidr', '10.200.0.0/16', '--legacy-tunnel-port', '8555', '--cilium-tunnel-port', '8666', '--cilium-namespace', 'cilium']);
  });
});

describe('the layout, followed by what the lab installs and runs', () => {
  it('helm installs Cilium into the layout\'s namespace (created when it is not kube-system), with values for its CIDR and ports', () => {
    const o = { chartDir: '/c', repoRoot: '/r', kubeconfig: '/k', apiServer: { host: '172.18.0.254', port: 6443 } };
    const args = helmInstallArgs({ ...o, layout: nonDefault });
    assert.deepEqual(args.slice(0, 6), ['install', 'cilium', '/c/chart', '--namespace', 'cilium', '--create-namespace']);
    assert.deepEqual(helmInstallArgs(o).slice(3, 6), ['--namespace', 'kube-system', '--kubeconfig']);
    assert.deepEqual(initialValuesArgs('v1.18.3', nonDefault), ['values', '--phase', 'initial', '--cilium-version', '1.18.3', '--cilium-cidr', '10.200.0.0/16', '--legacy-cidr', '10.42.0.0/16', '--tunnel-port', '8666', '--legacy-tunnel-port', '8555']);
  });

  it('the plugin gets --cilium-namespace on every command, the CIDR and port where it writes or judges them', () => {
    for (const c of ['status', 'connectivity', 'prepare', 'node', 'run', 'rollback', 'plan']) assert.deepEqual(pluginLayoutFlags(nonDefault, c), ['--cilium-namespace', 'cilium'], c);
    assert.deepEqual(pluginLayoutFlags(nonDefault, 'preflight'), ['--cilium-namespace', 'cilium', '--cilium-cidr', '10.200.0.0/16', '--service-cidr', '10.96.0.0/16']);
    // finalize --apply's helm upgrade writes tunnelPort and the cluster pool: the seed's would move Cilium's overlay.
    assert.deepEqual(pluginLayoutFlags(nonDefault, 'finalize'), ['--cilium-namespace', 'cilium', '--cilium-cidr', '10.200.0.0/16', '--tunnel-port', '8666']);
    assert.deepEqual(pluginLayoutFlags(nonDefault, 'version'), []);
  });

  it('the probe agents are told the layout\'s CIDRs', () => {
    const ds = probeAgentObjects('cilium-migrate', 'img', { legacyCidrs: ['10.42.0.0/16'], ciliumCidrs: ['10.200.0.0/16'] }).find((o) => o.kind === 'DaemonSet') as { spec: { template: { spec: { containers: { env: { name: string; value?: string }[] }[] } } } };
    const env = Object.fromEntries(ds.spec.template.spec.containers[0]!.env.filter((e) => e.value !== undefined).map((e) => [e.name, e.value]));
    assert.deepEqual(env, { LEGACY_CIDRS: '10.42.0.0/16', CILIUM_CIDRS: '10.200.0.0/16' });
  });
});
