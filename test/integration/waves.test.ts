// run --max-unavailable on 50 simulated nodes: a watcher on the Node collection (LIST then WATCH)
// sees every cordon as it happens and proves that the run never has more than 5 nodes cordoned at
// once, and that it does run nodes side by side.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ControlPlane } from '../../lab/control-plane.js';
import { liteCredentials, liteKube } from '../../lib/kube-lite.js';
import { reflect, type KubeObject } from '../../lib/kube-watch.js';
import { startMigrationCluster } from '../harness/migration-cluster.js';
import { runPlugin } from '../harness/plugin.js';
import { progress } from '../harness/shared-cluster.js';

describe('run --max-unavailable 5 on 50 nodes', () => {
  let cp: ControlPlane;

  before(async () => {
    cp = await startMigrationCluster(progress, 49);
  });
  after(() => cp?.stop());

  it('never has more than 5 nodes cordoned at once, runs them side by side, and migrates every node', async () => {
    const cordoned = new Set<string>();
    let most = 0;
    const watcher = reflect(liteKube(liteCredentials(cp.kubeconfig)), '/api/v1/nodes', {
      onChange(items: Map<string, KubeObject>) {
        cordoned.clear();
        for (const n of items.values()) if ((n as { spec?: { unschedulable?: boolean } }).spec?.unschedulable) cordoned.add(n.metadata?.name ?? '');
        most = Math.max(most, cordoned.size);
      },
    });
    let r;
    try {
      // Simulated nodes run no probe agents: the gate that needs none (--gate cluster-state).
      r = await runPlugin(['run', '--max-unavailable', '5', '--restart', 'none', '--gate', 'cluster-state', '--gate-rounds', '1', '--gate-interval', '1s', '-o', 'json', '--kubeconfig', cp.kubeconfig], { env: { PATH: process.env.PATH ?? '', HOME: cp.rootDir }, timeoutMs: 540_000 });
    } finally {
      watcher.stop();
    }
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    assert.match(r.stderr, /migrating 50 nodes in this order: .* \(11 waves of up to 5\)/);
    assert.ok(watcher.synced(), 'the watcher saw the nodes');
    assert.ok(most <= 5, `at most 5 nodes cordoned at once, saw ${most}`);
    assert.ok(most >= 2, `nodes of a wave are migrated side by side (saw at most ${most} cordoned at once)`);
    assert.equal((JSON.parse(r.stdout) as unknown[]).length, 50);
    const status = await runPlugin(['status', '--kubeconfig', cp.kubeconfig], { env: { PATH: process.env.PATH ?? '', HOME: cp.rootDir } });
    assert.match(status.stdout, /^50 of 50 nodes migrated, /m);
  });
});
