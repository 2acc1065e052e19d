// The lab's pure parts: the migration order and the waiting loop; and the path mapping that keeps
// the node cleanup test's host script inside its directory (test/harness/host-sandbox.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { seedOrder } from '../../lab/demo.js';
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
