// plan, run and status on a cluster shaped like the seed's: the order, a run killed half way and
// resumed without redoing finished nodes, and the status before and after.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { PlannedNode, ClusterStatus } from '../../cmd/migration/cluster-view.js';
import type { ControlPlane } from '../../lab/control-plane.js';
import { startMigrationCluster } from '../harness/migration-cluster.js';
import { runPlugin } from '../harness/plugin.js';
import { progress } from '../harness/shared-cluster.js';

describe('plan, run and status', () => {
  let cp: ControlPlane;
  const env = () => ({ PATH: process.env.PATH ?? '', HOME: cp.rootDir });
  const plugin = (...args: string[]) => runPlugin([...args, '--kubeconfig', cp.kubeconfig], { env: env() });
  // kwok nodes run no probe agents: the gate that needs none (the matrix gate has its own tests).
  const runArgs = ['run', '--restart', 'none', '--gate', 'cluster-state', '--gate-rounds', '1', '--gate-interval', '1s'];

  before(async () => {
    cp = await startMigrationCluster(progress, 2);
  });
  after(() => cp?.stop());

  it('status shows every node pending before the migration', async () => {
    const r = await plugin('status');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^NODE\s+ROLE\s+PHASE\s+OVERLAY\s+PODS LEGACY\s+PODS CILIUM\s+AGENT$/m);
    assert.match(r.stdout, /^kind-control-plane\s+control-plane\s+pending\s+legacy\s/m);
    assert.match(r.stdout, /^0 of 3 nodes migrated, /m);
    const json = JSON.parse((await plugin('status', '-o', 'json')).stdout) as ClusterStatus;
    assert.deepEqual(json.nodes.map((n) => [n.node, n.phase, n.agent]), [['kind-control-plane', 'pending', 'missing'], ['kind-worker', 'pending', 'missing'], ['kind-worker2', 'pending', 'missing']]);
    assert.equal(json.nodes.reduce((s, n) => s + n.pods.legacy + n.pods.cilium, 0), 10, 'the 10 nginx pods are counted');
  });

  it('plan orders the workers first and the control plane last, with what each drain evicts', async () => {
    const r = await plugin('plan', '-o', 'json');
    assert.equal(r.code, 0, r.stderr);
    const plan = JSON.parse(r.stdout) as PlannedNode[];
    assert.deepEqual(plan.map((p) => p.node), ['kind-worker', 'kind-worker2', 'kind-control-plane']);
    assert.equal(plan[0]!.evicts.length + plan[1]!.evicts.length, 10, 'the workers hold the 10 nginx pods');
    assert.deepEqual(plan[2]!.evicts, [], 'nothing to evict on the tainted control plane');
    assert.deepEqual(plan.map((p) => p.blockers.length), [0, 0, 0]);
    const waves = JSON.parse((await plugin('plan', '--max-unavailable', '2', '-o', 'json')).stdout) as PlannedNode[];
    assert.deepEqual(waves.map((p) => p.wave), [1, 1, 2]);
  });

  it('plan names a PodDisruptionBudget that blocks a drain now', async () => {
    await cp.kubectl(['create', 'poddisruptionbudget', 'strict', '--selector', 'app=nginx', '--max-unavailable', '0']);
    try {
      // The budget blocks once the disruption controller has computed its status.
      let plan: PlannedNode[] = [];
      for (let i = 0; i < 40; i++) {
        plan = JSON.parse((await plugin('plan', '-o', 'json')).stdout) as PlannedNode[];
        if (plan[0]!.blockers.length) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      assert.match(plan[0]!.blockers.join(), /PodDisruptionBudget default\/strict allows no disruption now/);
      const table = await plugin('plan');
      assert.match(table.stdout, /would stop on a blocker now/);
    } finally {
      await cp.kubectl(['delete', 'pdb', 'strict']);
    }
  });

  it('run, killed on the second node, resumes with the nodes left and never redoes the first', async () => {
    const killed = await runPlugin([...runArgs, '--kubeconfig', cp.kubeconfig], { env: { ...env(), CILIUM_MIGRATE_TEST_KILL_AT: 'kind-worker2/drain:done' } });
    assert.equal(killed.signal, 'SIGKILL', killed.stderr);
    assert.match(killed.stderr, /migrating 3 nodes in this order: kind-worker, kind-worker2, kind-control-plane/);
    const resumed = await plugin(...runArgs, '-o', 'json');
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, /migrating 2 nodes in this order: kind-worker2, kind-control-plane/);
    assert.doesNotMatch(resumed.stderr, /\[kind-worker\]/, 'kind-worker is not touched again');
    const results = JSON.parse(resumed.stdout) as { node: string; steps: { step: string; outcome: string }[] }[];
    assert.deepEqual(results.map((r) => r.node), ['kind-worker2', 'kind-control-plane']);
    assert.equal(results[0]!.steps.find((s) => s.step === 'drain')?.outcome, 'done-before');
  });

  it('status reports every node migrated, and run has nothing left to do', async () => {
    const r = await plugin('status', '-o', 'wide');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^3 of 3 nodes migrated, /m);
    assert.match(r.stdout, /LEGACY CIDR\s+CILIUM CIDR\s+CORDONED/);
    assert.match(r.stdout, /^kind-worker\s+worker\s+migrated\s+cilium\s/m);
    const again = await plugin(...runArgs);
    assert.equal(again.code, 0);
    assert.match(again.stderr, /every node is migrated: nothing to do/);
  });
});
