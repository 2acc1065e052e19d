// The lab's pure parts: the migration order and the waiting loop; and the path mapping that keeps
// the node cleanup test's host script inside its directory (test/harness/host-sandbox.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { seedOrder } from '../../lab/demo.js';
import { kubectlEnv } from '../../lab/scenario.js';
import { helmEnv } from '../../lab/node/cilium-install.js';
import { inotifyShortage } from '../../lab/node/inotify.js';
import { waitUntil } from '../../lab/wait.js';
import { nodeHostPaths } from '../harness/host-sandbox.js';

describe('nodeHostPaths', () => {
  it('maps the node\'s CNI and Flannel directories under the node\'s directory, and nothing else', () => {
    const script = 'cd /etc/cni/net.d\nrm -f /etc/cni/net.d/*.cilium_bak "/etc/cni/net.d/10-flannel.conflist"\nrm -rf /run/flannel /etc/cnix /usr/etc/cni';
    assert.equal(nodeHostPaths(script, '/S/n1'), 'cd /S/n1/etc/cni/net.d\nrm -f /S/n1/etc/cni/net.d/*.cilium_bak "/S/n1/etc/cni/net.d/10-flannel.conflist"\nrm -rf /S/n1/run/flannel /etc/cnix /usr/etc/cni');
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

describe('lab up: room in the machine\'s inotify budget (one for all of root\'s processes)', () => {
  it('refuses when the instances left are fewer than the nodes need, naming the limit, the use and the fix it leaves to the person', () => {
    const s = inotifyShortage(3, 128, 81);
    assert.ok(s);
    assert.match(s.message, /^this machine allows root 128 inotify instances \(fs\.inotify\.max_user_instances\) and 81 are in use: a lab of 3 nodes needs about 51/);
    assert.match(s.hint, /sysctl -w fs\.inotify\.max_user_instances=512/);
    assert.match(s.hint, /the lab never changes the machine's sysctls/);
  });
  it('lets a lab start with room, and when the limit cannot be read', () => {
    assert.equal(inotifyShortage(3, 128, 0), undefined);
    assert.equal(inotifyShortage(5, 128, 40), undefined);
    assert.equal(inotifyShortage(5, undefined, 500), undefined);
  });
});

describe('the scenario\'s kubectl', () => {
  it('keeps its discovery cache in the lab\'s state directory, which lab down removes, unless KUBECACHEDIR says where', () => {
    // Without it, make demo and the lab benchmarks left ~/.kube/cache behind on the machine.
    assert.equal(kubectlEnv('/tmp/lab-x', { PATH: '/bin' }).KUBECACHEDIR, '/tmp/lab-x/kube-cache');
    assert.equal(kubectlEnv('/tmp/lab-x', { PATH: '/bin', KUBECACHEDIR: '/tmp/suite/kube-cache' }).KUBECACHEDIR, '/tmp/suite/kube-cache');
    assert.equal(kubectlEnv('/tmp/lab-x', { PATH: '/bin' }).PATH, '/bin');
  });
});

describe('the lab\'s helm (lab up\'s install of Cilium, finalize --apply\'s upgrade)', () => {
  it('keeps its homes and its discovery cache in the lab\'s state directory', () => {
    // Without KUBECACHEDIR, lab up's helm install left ~/.kube/cache/discovery behind on the machine.
    const env = helmEnv('/tmp/lab-x');
    assert.equal(env.KUBECACHEDIR, '/tmp/lab-x/kube-cache');
    for (const [k, v] of Object.entries(env)) assert.ok(v!.startsWith('/tmp/lab-x/'), `${k}=${v}`);
  });
});
