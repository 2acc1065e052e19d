// Every step boundary of a migration and of a rollback, as a table: the run is killed there (the
// boundary hook throws, as a SIGKILL right after that write would stop it), a rerun by another run
// completes, and the two together do each side effect exactly as often as one uninterrupted run:
// nothing twice, nothing left out. On the in-memory fake of the engine's own interfaces.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defaultDrainFlags } from '../../cmd/cluster/drain-filter.js';
import { defaultDrainOptions } from '../../cmd/engine/drain.js';
import { migrateNode, type BoundaryHook, type EngineOptions } from '../../cmd/engine/migrate-node.js';
import type { EngineReporter } from '../../cmd/engine/runner.js';
import { InterruptedError } from '../../lib/errors.js';
import type { NodeRestarter } from '../../cmd/engine/restart.js';
import { rollbackNode, type RollbackOptions } from '../../cmd/engine/rollback-node.js';
import { migrationSteps, nodePhase, phaseAnnotation, readRollback, readState, rollbackAnnotation, rollbackSteps, stateAnnotation } from '../../lib/node-state.js';
import { ciliumNamespace, FakeEngineCluster, fakeRestarter, instantClock, passingGate } from '../harness/fake-engine-cluster.js';

const label = 'io.cilium.migration/cilium-default';
const quiet = { line: () => {}, status: () => {} };

function migrationOptions(restarter: NodeRestarter, runId: string): EngineOptions {
  return {
    runId, labelKey: label, ciliumNamespace, restarter, restartStragglers: false, verifyNamespace: 'default', verifyImage: 'pause',
    drain: { ...defaultDrainFlags, ...defaultDrainOptions, timeoutMs: 60_000 },
    timeoutsMs: { agentRestart: 60_000, nodeRestart: 60_000, verify: 60_000, gate: 60_000 },
    gate: { rounds: 2, intervalMs: 1000 }, pollMs: 1000, dryRun: false,
  };
}

function rollbackOptions(restarter: NodeRestarter, runId: string): RollbackOptions {
  return {
    runId, labelKey: label, ciliumNamespace, restarter, hostImage: 'alpine', verifyNamespace: 'default', verifyImage: 'pause',
    drain: { ...defaultDrainFlags, ...defaultDrainOptions, timeoutMs: 60_000 },
    timeoutsMs: { hostCommand: 60_000, agentRestart: 60_000, nodeRestart: 60_000, verify: 60_000 }, pollMs: 1000,
  };
}

class Killed extends Error {}

/** Records every boundary in order; throws Killed at the `killAt`-th one (0-based). */
function boundaries(killAt?: number): { hook: BoundaryHook; seen: string[] } {
  const seen: string[] = [];
  return {
    seen,
    hook: (_node, step, at) => {
      seen.push(`${step}:${at}`);
      if (seen.length - 1 === killAt) throw new Killed(`${step}:${at}`);
    },
  };
}

/**
 * Every side effect the run had on the cluster, counted: cordons, labels, evictions, deletions,
 * pods created, restarts, Events. A host-command pod's name is hashed from its run: counted by purpose.
 */
function sideEffects(c: FakeEngineCluster): Record<string, number> {
  const tally: Record<string, number> = {};
  for (const e of [...c.log, ...c.events.map((e) => `event ${e}`)]) {
    const key = e.replace(/(cilium-migrate-(?:rollback|reboot|cleanup))-[0-9a-f]{12}$/, '$1-<run>');
    tally[key] = (tally[key] ?? 0) + 1;
  }
  return tally;
}

/** A node with two workloads and the Cilium agent, for the migration. */
function clusterToMigrate(): FakeEngineCluster {
  const c = new FakeEngineCluster();
  c.addWorkload('w1', 'web-1');
  c.addWorkload('w1', 'web-2');
  return c;
}

/** A migrated node, for the rollback: new pods get legacy addresses again. */
function clusterToRollBack(): FakeEngineCluster {
  const c = new FakeEngineCluster();
  const n = c.node('w1');
  n.labels[label] = 'true';
  n.annotations[stateAnnotation] = JSON.stringify({ v: 1, startedBy: 'm', lastRun: 'm', startedAt: 't', wasUnschedulable: false, cordonedByUs: true, bootID: 'boot-0', steps: {}, migratedAt: 't' });
  n.annotations[phaseAnnotation] = 'migrated';
  c.addWorkload('w1', 'web-1');
  c.newPodIp = '10.244.1.9';
  return c;
}

interface Case {
  procedure: string;
  steps: readonly string[];
  prefix: string;
  cluster(): FakeEngineCluster;
  run(c: FakeEngineCluster, restarter: NodeRestarter, runId: string, hook?: BoundaryHook, stop?: { signal: AbortSignal; report: EngineReporter }): Promise<unknown>;
  finished(c: FakeEngineCluster): void;
  /** The steps the node's record says are done. */
  done(c: FakeEngineCluster): string[];
}

const cases: Case[] = [
  {
    procedure: 'migration',
    steps: migrationSteps,
    prefix: '',
    cluster: clusterToMigrate,
    run: (c, restarter, runId, hook, stop) => migrateNode(c, passingGate, 'w1', migrationOptions(restarter, runId), instantClock(), stop?.report ?? quiet, stop?.signal, hook),
    done: (c) => Object.entries(readState(c.node('w1').annotations)?.steps ?? {}).filter(([, r]) => r.done).map(([s]) => s),
    finished(c) {
      assert.equal(nodePhase(c.node('w1').annotations), 'migrated');
      assert.equal(c.node('w1').labels[label], 'true');
      assert.equal(c.node('w1').unschedulable, false);
    },
  },
  {
    procedure: 'rollback',
    steps: rollbackSteps,
    prefix: 'rollback-',
    cluster: clusterToRollBack,
    run: (c, restarter, runId, hook, stop) => rollbackNode(c, 'w1', rollbackOptions(restarter, runId), instantClock(), stop?.report ?? quiet, stop?.signal, hook),
    done: (c) => Object.entries(readRollback(c.node('w1').annotations)?.steps ?? {}).filter(([, r]) => r.done).map(([s]) => s),
    finished(c) {
      const n = c.node('w1');
      assert.equal(n.labels[label], undefined);
      assert.deepEqual(Object.keys(n.annotations).filter((k) => k.startsWith('cilium-migrate.io/')), []);
      assert.equal(n.unschedulable, false);
    },
  },
];

for (const t of cases) {
  describe(`${t.procedure}: killed at every step boundary, the rerun completes and does nothing twice`, async () => {
    // One uninterrupted run: every boundary it passes, and every side effect it has.
    const clean = t.cluster();
    const cleanRestarts = fakeRestarter(clean);
    const all = boundaries();
    await t.run(clean, cleanRestarts.restarter, 'run-1', all.hook);

    it('an uninterrupted run passes an intent and then a done boundary of every step, in order', () => {
      t.finished(clean);
      assert.equal(cleanRestarts.requests.length, 1);
      assert.deepEqual([...new Set(all.seen)], t.steps.flatMap((s) => [`${t.prefix}${s}:intent`, `${t.prefix}${s}:done`]));
    });

    for (const [i, at] of all.seen.entries()) {
      it(`killed at ${at} (boundary ${i + 1} of ${all.seen.length})`, async () => {
        const c = t.cluster();
        const { restarter, requests } = fakeRestarter(c);
        await assert.rejects(t.run(c, restarter, 'run-1', boundaries(i).hook), Killed);
        await t.run(c, restarter, 'run-2');
        t.finished(c);
        assert.equal(requests.length, 1, 'one restart request in all');
        assert.deepEqual(sideEffects(c), sideEffects(clean), 'the same side effects as one uninterrupted run');
      });
    }
  });
}

for (const t of cases) {
  describe(`${t.procedure}: stopped at the safe point after each step (Ctrl-C, SIGTERM), its record says so and the rerun does nothing twice`, async () => {
    const clean = t.cluster();
    await t.run(clean, fakeRestarter(clean).restarter, 'run-1');

    for (const step of t.steps) {
      it(`stopped right after ${step}`, async () => {
        const c = t.cluster();
        const { restarter, requests } = fakeRestarter(c);
        const stop = new AbortController();
        // The runner reports a step's outcome once it is done and announced: the person's Ctrl-C lands there.
        const report: EngineReporter = { line: (_n, text) => void (text.startsWith(`${step}: `) && !text.startsWith(`${step}: started`) && stop.abort()), status: () => {} };
        const first = await t.run(c, restarter, 'run-1', undefined, { signal: stop.signal, report }).then(() => undefined, (e: unknown) => e);
        if (first !== undefined) {
          assert.ok(first instanceof InterruptedError, String(first));
          assert.ok(t.done(c).includes(step), `the record says ${step} is done: ${t.done(c).join(', ')}`);
        }
        if (first !== undefined) await t.run(c, restarter, 'run-2');
        t.finished(c);
        assert.equal(requests.length, 1, 'one restart request in all');
        assert.deepEqual(sideEffects(c), sideEffects(clean), 'the same side effects (Events included) as one uninterrupted run');
      });
    }
  });
}

describe('a node stopped mid-migration by the earlier plugin resumes', () => {
  it('from the record shape that plugin wrote (its restart requested, not yet seen back): no second request', async () => {
    const c = new FakeEngineCluster();
    const n = c.node('w1');
    // Exactly what the previous engine left after recording the restart request and stopping.
    const record = {
      v: 1, startedBy: '20261120T100000-abcdef', lastRun: '20261120T100000-abcdef', startedAt: '2026-11-20T10:00:00.000Z', wasUnschedulable: false, cordonedByUs: true, bootID: 'boot-1',
      steps: {
        'baseline-gate': { intent: '2026-11-20T10:00:00.000Z', done: '2026-11-20T10:00:01.000Z' },
        cordon: { intent: '2026-11-20T10:00:01.000Z', done: '2026-11-20T10:00:01.000Z' },
        drain: { intent: '2026-11-20T10:00:01.000Z', done: '2026-11-20T10:00:02.000Z' },
        label: { intent: '2026-11-20T10:00:02.000Z', done: '2026-11-20T10:00:02.000Z' },
        'restart-agent': { intent: '2026-11-20T10:00:02.000Z', data: { oldUids: ['uid-0'] }, done: '2026-11-20T10:00:03.000Z' },
        'restart-node': { intent: '2026-11-20T10:00:03.000Z', data: { baseline: { requestedAt: '2026-11-20T10:00:03.000Z', bootID: 'boot-1', daemonSetPods: {} }, requested: '2026-11-20T10:00:04.000Z' } },
      },
    };
    n.annotations[stateAnnotation] = JSON.stringify(record);
    n.annotations[phaseAnnotation] = 'restart-node';
    n.labels[label] = 'true';
    n.unschedulable = true;
    const { restarter, requests } = fakeRestarter(c);
    c.node('w1').bootID = 'boot-2'; // the node came back while no run watched
    const lines: string[] = [];
    const r = await migrateNode(c, passingGate, 'w1', migrationOptions(restarter, 'run-new'), instantClock(), { line: (_n, l) => lines.push(l), status: () => {} });
    assert.equal(requests.length, 0, 'the request the earlier run recorded is not repeated');
    assert.ok(lines.some((l) => /^resuming at restart-node \(started by run 20261120T100000-abcdef/.test(l)), lines.join('\n'));
    assert.deepEqual(r.steps.filter((s) => s.outcome === 'done-before').map((s) => s.step), ['baseline-gate', 'cordon', 'drain', 'label', 'restart-agent']);
    assert.equal(nodePhase(c.node('w1').annotations), 'migrated');
    assert.equal(readState(c.node('w1').annotations)?.startedBy, '20261120T100000-abcdef');
    assert.equal(c.node('w1').unschedulable, false, 'its own cordon, recorded by the earlier run, is undone');
  });

  it('from a restart of the Cilium agent recorded by UID only (the earlier shape): that pod is replaced, once', async () => {
    const c = new FakeEngineCluster();
    const agent = c.pods.find((p) => p.name === 'cilium-w1')!;
    const n = c.node('w1');
    n.annotations[stateAnnotation] = JSON.stringify({
      v: 1, startedBy: 'old', lastRun: 'old', startedAt: '2026-11-20T10:00:00.000Z', wasUnschedulable: false, cordonedByUs: true, bootID: 'boot-1',
      steps: { 'baseline-gate': { done: 'a' }, cordon: { done: 'a' }, drain: { done: 'a' }, label: { done: 'a' }, 'restart-agent': { intent: 'a', data: { oldUids: [agent.uid] } } },
    });
    n.labels[label] = 'true';
    n.unschedulable = true;
    await migrateNode(c, passingGate, 'w1', migrationOptions(fakeRestarter(c).restarter, 'run-new'), instantClock(), quiet);
    assert.deepEqual(c.log.filter((l) => l.startsWith('delete kube-system/')), ['delete kube-system/cilium-w1']);
    assert.equal(nodePhase(c.node('w1').annotations), 'migrated');
  });

  it('a rollback recorded in the earlier shape (runId) resumes, with its restart request under the same id', async () => {
    const c = clusterToRollBack();
    const n = c.node('w1');
    n.unschedulable = true;
    delete n.labels[label];
    n.annotations[rollbackAnnotation] = JSON.stringify({
      v: 1, runId: 'rb-old', startedAt: 't', wasUnschedulable: false, cordonedByUs: true,
      steps: { cordon: { intent: 'a', done: 'a' }, drain: { intent: 'a', done: 'a' }, unlabel: { intent: 'a', done: 'a' }, 'restore-cni': { intent: 'a', done: 'a' }, 'restart-agent': { intent: 'a', data: { oldUids: ['uid-0'] }, done: 'a' }, 'restart-node': { intent: 'a' } },
    });
    n.annotations[phaseAnnotation] = 'rollback-restart-node';
    const { restarter, requests } = fakeRestarter(c);
    const r = await rollbackNode(c, 'w1', rollbackOptions(restarter, 'rb-new'), instantClock(), quiet);
    assert.equal(requests.length, 1);
    assert.match(requests[0]!.id, /^rb-old@/, 'the request is named by the run that started the rollback, as before');
    // Its restore ran before the agent restart (the earlier order): it runs again after it (test/unit/rollback-order.test.ts).
    assert.deepEqual(r.steps.filter((s) => s.outcome === 'done-before').map((s) => s.step), ['cordon', 'drain', 'unlabel', 'restart-agent']);
    assert.match(r.steps.find((s) => s.step === 'restore-cni')!.message, /again: /);
    assert.equal(c.node('w1').unschedulable, false);
    assert.deepEqual(Object.keys(c.node('w1').annotations).filter((k) => k.startsWith('cilium-migrate.io/')), []);
  });
});
