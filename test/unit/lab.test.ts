// The lab's pure parts: which CNI config a node uses, which program an image runs, kubelet's $(VAR)
// expansion, the migration order and the matrix the agents' rows make.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { seedOrder } from '../../lab/demo.js';
import { containerLog, lastLines } from '../../lab/programs/kubelet-api.js';
import { activeCni, expandVars, nodeHostPaths, programFor } from '../../lab/runtime-rules.js';
import { waitUntil } from '../../lab/wait.js';

describe('activeCni', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lab-cni-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('says why there is none in an empty directory', () => {
    assert.match((activeCni(dir) as { error: string }).error, /no CNI configuration/);
  });

  it('takes the first file by name, as kubelet does: Flannel\'s, then Cilium\'s once written, ignoring *.cilium_bak', () => {
    writeFileSync(join(dir, '10-flannel.conflist'), JSON.stringify({ plugins: [{ type: 'flannel' }] }));
    assert.deepEqual(activeCni(dir), { file: '10-flannel.conflist', overlay: 'legacy' });
    writeFileSync(join(dir, '05-cilium.conflist'), JSON.stringify({ plugins: [{ type: 'cilium-cni' }] }));
    assert.deepEqual(activeCni(dir), { file: '05-cilium.conflist', overlay: 'cilium' });
    rmSync(join(dir, '05-cilium.conflist'));
    writeFileSync(join(dir, '00-other.conflist.cilium_bak'), '{}');
    assert.deepEqual(activeCni(dir), { file: '10-flannel.conflist', overlay: 'legacy' });
  });

  it('refuses a plugin type the lab does not have', () => {
    writeFileSync(join(dir, '01-calico.conflist'), JSON.stringify({ plugins: [{ type: 'calico' }] }));
    assert.match((activeCni(dir) as { error: string }).error, /plugin type "calico"/);
  });
});

describe('programFor', () => {
  const programs = { agentJs: '/d/agent.js', ciliumAgentJs: '/d/cilium.js', flanneldJs: '/d/flanneld.js', nginxJs: '/d/nginx.js', trafficCheckerJs: '/d/tc.js' };
  const table: [string, string[] | undefined, string[] | undefined, string][] = [
    ['nginx', undefined, undefined, 'nginx'],
    ['docker.io/library/nginx:1.27', undefined, undefined, 'nginx'],
    ['quay.io/cilium/cilium:v1.18.0', undefined, undefined, 'cilium agent'],
    ['ghcr.io/cilium-migrate/agent:dev', undefined, ['--interval', '1s'], 'probe agent'],
    ['registry.k8s.io/pause:3.10', undefined, undefined, 'idle'],
    ['ghcr.io/flannel-io/flannel:v0.26.4', undefined, ['--ip-masq'], 'flanneld'],
    ['alpine/curl', undefined, ['/bin/sh', '-c', 'curl -s $NGINX'], 'command'],
    ['alpine', ['sh', '-c'], ['ip addr'], 'command'],
    ['busybox', undefined, undefined, 'idle'],
    ['alpine:3.20', ['nsenter', '-t', '1', '-m', '-u', '-i', '-n', '-p', '--', 'systemctl', 'reboot'], undefined, 'node reboot'],
    ['alpine:3.20', ['nsenter', '-t', '1', '-m', '-n', '--', 'sh', '-c', 'ip link delete flannel.1'], undefined, 'host command'],
  ];
  for (const [image, command, args, role] of table) {
    it(`${image} ${[...(command ?? []), ...(args ?? [])].join(' ')} -> ${role}`, () => {
      const p = programFor({ name: 'c', image, ...(command ? { command } : {}), ...(args ? { args } : {}) }, programs);
      assert.equal(p.role, role);
      if (role === 'command') assert.deepEqual(p.argv, [...(command ?? []), ...(args ?? [])]);
      if (role === 'host command') assert.deepEqual(p.argv, ['sh', '-c', 'ip link delete flannel.1'], 'nsenter itself is never run');
      if (role === 'probe agent') assert.deepEqual(p.argv.slice(1), ['/d/agent.js', ...(args ?? [])]);
    });
  }
});

describe('nodeHostPaths', () => {
  it('maps the node\'s CNI and Flannel directories into the lab node, and nothing else', () => {
    const script = 'cd /etc/cni/net.d\nrm -f /etc/cni/net.d/*.cilium_bak "/etc/cni/net.d/10-flannel.conflist"\nrm -rf /run/flannel /etc/cnix /usr/etc/cni';
    assert.equal(nodeHostPaths(script, '/S/n1'), 'cd /S/n1/etc/cni/net.d\nrm -f /S/n1/etc/cni/net.d/*.cilium_bak "/S/n1/etc/cni/net.d/10-flannel.conflist"\nrm -rf /S/n1/run/flannel /etc/cnix /usr/etc/cni');
  });
});

describe('kubelet log API', () => {
  it('serves the last lines asked for (tailLines), all without it', () => {
    assert.equal(lastLines('a\nb\nc\n', 2), 'b\nc\n');
    assert.equal(lastLines('a\nb\nc\n', undefined), 'a\nb\nc\n');
    assert.equal(lastLines('a\nb\nc\n', 0), '');
  });

  it('finds the newest incarnation of a pod\'s container log', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lab-logs-'));
    try {
      for (const [d, t] of [['default_verify_aaaaaaaa', 1000], ['default_verify_bbbbbbbb', 2000], ['default_verify-2_cccccccc', 3000]] as const) {
        mkdirSync(join(dir, d));
        writeFileSync(join(dir, d, 'verify.log'), d);
        utimesSync(join(dir, d), t, t);
      }
      assert.equal(containerLog(dir, 'default', 'verify', 'verify'), join(dir, 'default_verify_bbbbbbbb', 'verify.log'));
      assert.equal(containerLog(dir, 'default', 'verify', 'other'), undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('expandVars', () => {
  it('expands $(VAR), keeps unknown references and $$ escapes, as kubelet does', () => {
    assert.equal(expandVars('http://$(NGINX):80/$(NOPE)/$$(NGINX)', { NGINX: '10.244.2.11' }), 'http://10.244.2.11:80/$(NOPE)/$(NGINX)');
  });
});

describe('seedOrder', () => {
  it('migrates the workers first and the control plane last', () => {
    assert.deepEqual(seedOrder(['kind-control-plane', 'kind-worker', 'kind-worker2']), ['kind-worker', 'kind-worker2', 'kind-control-plane']);
  });
});


describe('waitUntil (the lab\'s, the tests\' and the benchmarks\' waiting loop)', () => {
  it('returns the first value, an error on the way counting as not yet', async () => {
    let looks = 0;
    assert.equal(await waitUntil('a value', async () => {
      if (++looks === 1) throw new Error('not there yet');
      return looks === 3 ? 'ready' : undefined;
    }, 5000, 1), 'ready');
  });
  it('names what never came and the last error', async () => {
    await assert.rejects(waitUntil('the moon', async () => { throw new Error('no moon'); }, 30, 5), /timed out after 0\.03s waiting for the moon \(last error: no moon\)/);
  });
});
