// The step machines' safety rules against an in-memory fake of the engine's cluster interface:
// only our own cordon is undone, nothing evictable is on a node when its restart is requested, a
// restart is requested once whatever the command's exit status, stragglers are evicted (never
// deleted), and rollback keeps an admin's cordon too.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defaultDrainFlags } from '../../cmd/cluster/drain-filter.js';
import { defaultDrainOptions } from '../../cmd/engine/drain.js';
import { migrateNode, RestartRefusedError, type BoundaryHook, type EngineOptions } from '../../cmd/engine/migrate-node.js';
import { RestartRequestError, type NodeRestarter } from '../../cmd/engine/restart.js';
import { rollbackNode } from '../../cmd/engine/rollback-node.js';
import { readState } from '../../lib/node-state.js';
import { ExitCode, PreconditionError, TimeoutError } from '../../lib/errors.js';
import { ciliumNamespace, FakeEngineCluster, fakeRestarter, instantClock, passingGate } from '../harness/fake-engine-cluster.js';

const label = 'io.cilium.migration/cilium-default';
const quiet = { line: () => {}, status: () => {} };

function options(restarter: NodeRestarter, extra: Partial<EngineOptions> = {}): EngineOptions {
  return {
    runId: 'run-1', labelKey: label, ciliumNamespace, restarter, restartStragglers: false, verifyNamespace: 'default', verifyImage: 'pause',
    drain: { ...defaultDrainFlags, ...defaultDrainOptions, timeoutMs: 60_000 },
    timeoutsMs: { agentRestart: 60_000, nodeRestart: 60_000, verify: 60_000, gate: 60_000 },
    gate: { rounds: 1, intervalMs: 1000 }, pollMs: 1000, dryRun: false, ...extra,
  };
}

/** A boundary hook that stops the run (as a SIGKILL would) once at `at`. */
class Killed extends Error {}
const killAt = (at: string): BoundaryHook => {
  let done = false;
  return (_node, step, when) => {
    if (!done && `${step}:${when}` === at) {
      done = true;
      throw new Killed(at);
    }
  };
};

const migrate = (c: FakeEngineCluster, restarter: NodeRestarter, extra: Partial<EngineOptions> = {}, boundary?: BoundaryHook, runId = 'run-1') =>
  migrateNode(c, passingGate, 'w1', { ...options(restarter, extra), runId }, instantClock(), quiet, undefined, boundary);

describe('uncordon only what we cordoned', () => {
  it('cordons a schedulable node and uncordons it at the end', async () => {
    const c = new FakeEngineCluster();
    await migrate(c, fakeRestarter(c).restarter);
    assert.equal(c.node('w1').unschedulable, false);
    assert.deepEqual(c.log.filter((l) => l.includes('unschedulable')), ['patch w1 unschedulable=true', 'patch w1 unschedulable=false']);
  });

  it('leaves a node its admin had cordoned cordoned', async () => {
    const c = new FakeEngineCluster();
    c.node('w1').unschedulable = true;
    const r = await migrate(c, fakeRestarter(c).restarter);
    assert.equal(c.node('w1').unschedulable, true);
    assert.match(r.steps.find((s) => s.step === 'uncordon')!.message, /cordoned by someone else/);
  });

  it('keeps the cordon an admin made between a stopped run and its resume, though the cordon\'s intent was recorded', async () => {
    const c = new FakeEngineCluster();
    await assert.rejects(migrate(c, fakeRestarter(c).restarter, {}, killAt('cordon:intent')), Killed);
    assert.equal(c.node('w1').unschedulable, false, 'stopped before its cordon');
    c.node('w1').unschedulable = true; // the admin's kubectl cordon
    await migrate(c, fakeRestarter(c).restarter, {}, undefined, 'run-2');
    assert.equal(c.node('w1').unschedulable, true, 'the admin\'s cordon stays');
    assert.equal(readState(c.node('w1').annotations)?.cordonedByUs, false);
  });

  it('knows its own cordon after a stop right after it (the cordon and its record are one patch)', async () => {
    const c = new FakeEngineCluster();
    await assert.rejects(migrate(c, fakeRestarter(c).restarter, {}, killAt('drain:intent')), Killed);
    assert.equal(c.node('w1').unschedulable, true);
    await migrate(c, fakeRestarter(c).restarter, {}, undefined, 'run-2');
    assert.equal(c.node('w1').unschedulable, false, 'ours, so undone');
  });

  it('keeps the cordon an admin made while the baseline gate ran (after the run\'s first write)', async () => {
    const c = new FakeEngineCluster();
    const gate = { ...passingGate, baseline: async () => ((c.node('w1').unschedulable = true), passingGate.baseline()) };
    const r = await migrateNode(c, gate, 'w1', options(fakeRestarter(c).restarter), instantClock(), quiet);
    assert.equal(r.steps.find((s) => s.step === 'cordon')!.outcome, 'not-needed');
    assert.equal(c.node('w1').unschedulable, true, 'the admin\'s cordon stays');
    assert.deepEqual(c.log.filter((l) => l.includes('unschedulable')), [], 'never patched by us');
  });

  it('judges the cordon and the drain on their intent\'s write: no read of the node before either', async () => {
    // Each write of the record answers with the node as it is then, so a GET before the intent
    // only widens the gap between the look and the record (and costs a request per step).
    const c = new FakeEngineCluster();
    const lines: { text: string; reads: number }[] = [];
    const report = { line: (_s: string, text: string) => void lines.push({ text, reads: c.nodeReads }), status: () => {} };
    await migrateNode(c, passingGate, 'w1', options(fakeRestarter(c).restarter), instantClock(), report);
    const readsAt = (re: RegExp) => lines.find((l) => re.test(l.text))!.reads;
    assert.equal(readsAt(/^cordon: started$/), readsAt(/^baseline-gate: (?!started)/), 'no read between the baseline gate and the cordon');
    assert.equal(readsAt(/^drain: started$/), readsAt(/^cordon: (?!started)/), 'no read between the cordon and the drain');
  });

  it('cordons again, as its own, a node someone made schedulable while the run was stopped', async () => {
    const c = new FakeEngineCluster();
    await assert.rejects(migrate(c, fakeRestarter(c).restarter, {}, killAt('drain:intent')), Killed);
    c.node('w1').unschedulable = false; // kubectl uncordon
    c.addWorkload('w1', 'web-late');
    c.log = [];
    await migrate(c, fakeRestarter(c).restarter, {}, undefined, 'run-2');
    assert.ok(c.log.indexOf('patch w1 unschedulable=true') < c.log.indexOf('evict app/web-late'), 'cordoned before it drained');
    assert.equal(c.node('w1').unschedulable, false);
  });
});

describe('nothing evictable on the node when its restart is requested', () => {
  it('evicts, through the Eviction API, a pod that arrived after the drain, before requesting the restart', async () => {
    const c = new FakeEngineCluster();
    c.addWorkload('w1', 'web-1');
    const { restarter, requests } = fakeRestarter(c);
    // After the label (the drain is done), a pod lands on the node (a nodeName set by hand, a toleration).
    let landed = false;
    const hook: BoundaryHook = (_n, step, when) => {
      if (!landed && step === 'label' && when === 'done') {
        landed = true;
        c.addWorkload('w1', 'web-late');
      }
    };
    await migrate(c, restarter, {}, hook);
    assert.equal(requests.length, 1);
    assert.ok(c.log.indexOf('evict app/web-late') >= 0 && c.log.indexOf('evict app/web-late') < c.log.indexOf('restart w1'), c.log.join('\n'));
    assert.deepEqual(c.workloadsOn('w1'), []);
  });

  it('refuses the restart while a PodDisruptionBudget keeps such a pod: the node stays cordoned, the phase is recorded, nothing restarted', async () => {
    const c = new FakeEngineCluster();
    const { restarter, requests } = fakeRestarter(c);
    const hook: BoundaryHook = (_n, step, when) => {
      if (step === 'restart-agent' && when === 'intent' && !c.workloadsOn('w1').includes('guarded')) c.addWorkload('w1', 'guarded', { app: 'guarded' });
    };
    c.evictionAnswer = (pod) => (pod.name === 'guarded' ? { kind: 'blocked', retryAfterSeconds: 0, message: 'The disruption budget guarded needs 1 healthy pods and has 1 currently' } : { kind: 'evicted' });
    await assert.rejects(migrate(c, restarter, {}, hook), (e: unknown) => e instanceof TimeoutError && /app\/guarded: The disruption budget guarded/.test(e.message));
    assert.equal(requests.length, 0, 'no restart was requested');
    assert.equal(c.node('w1').unschedulable, true);
    assert.equal(c.node('w1').annotations['cilium-migrate.io/phase'], 'restart-node');
    // Once the budget allows it, the rerun evicts the pod and restarts.
    c.evictionAnswer = () => ({ kind: 'evicted' });
    await migrate(c, restarter, {}, undefined, 'run-2');
    assert.equal(requests.length, 1);
    assert.ok(c.log.indexOf('evict app/guarded') < c.log.indexOf('restart w1'));
  });

  it('refuses the restart when a pod the drain may not evict arrived (no controller): nothing restarted', async () => {
    const c = new FakeEngineCluster();
    const { restarter, requests } = fakeRestarter(c);
    const hook: BoundaryHook = (_n, step, when) => {
      if (step === 'restart-agent' && when === 'done' && !c.pods.some((p) => p.name === 'bare')) c.addPod({ namespace: 'app', name: 'bare', nodeName: 'w1' });
    };
    await assert.rejects(migrate(c, restarter, {}, hook), (e: unknown) => e instanceof RestartRefusedError && e.exitCode === ExitCode.precondition && /app\/bare \(not managed by a controller/.test(e.message));
    assert.equal(requests.length, 0);
    assert.equal(c.node('w1').unschedulable, true);
  });

  it('cordons again a node someone uncordoned before its restart', async () => {
    const c = new FakeEngineCluster();
    const { restarter } = fakeRestarter(c);
    const hook: BoundaryHook = (_n, step, when) => {
      if (step === 'restart-agent' && when === 'done') c.node('w1').unschedulable = false;
    };
    let cordonedAtRequest: boolean | undefined;
    const watching: NodeRestarter = { method: 'exec', request: (n, id) => ((cordonedAtRequest = c.node('w1').unschedulable), restarter.request(n, id)) };
    await migrate(c, watching, {}, hook);
    assert.equal(cordonedAtRequest, true);
  });

  it('with --pod-selector, refuses before touching anything when pods outside it would be stopped by the restart', async () => {
    const c = new FakeEngineCluster();
    c.addWorkload('w1', 'web-1', { app: 'web' });
    c.addWorkload('w1', 'db-1', { app: 'db' });
    const { restarter, requests } = fakeRestarter(c);
    await assert.rejects(migrate(c, restarter, { drain: { ...options(restarter).drain, podSelector: 'app=web' } }), (e: unknown) => e instanceof PreconditionError && /--pod-selector app=web leaves 1 pod on w1 .*app\/db-1/.test(e.message));
    assert.deepEqual(c.log, [], 'nothing changed');
    assert.equal(requests.length, 0);
  });

  it('with --pod-selector and --restart none, evicts only the selected pods (no restart stops the others)', async () => {
    const c = new FakeEngineCluster();
    c.addWorkload('w1', 'web-1', { app: 'web' });
    c.addWorkload('w1', 'db-1', { app: 'db' });
    const none: NodeRestarter = { method: 'none', request: async () => assert.fail('no restart') };
    await migrate(c, none, { drain: { ...options(none).drain, podSelector: 'app=web' } });
    assert.deepEqual(c.workloadsOn('w1'), ['db-1']);
  });
});

describe('a restart is requested once, whatever the command says', () => {
  it('records a failed request (ssh exits 255 when the host goes down) and waits for the node, which comes back', async () => {
    const c = new FakeEngineCluster();
    const { restarter, requests } = fakeRestarter(c, () => ({ detail: 'cmd', failure: 'the restart command for w1 exited 255: Connection closed by remote host' }));
    const lines: string[] = [];
    await migrateNode(c, passingGate, 'w1', options(restarter), instantClock(), { line: (_n, t) => lines.push(t), status: () => {} });
    assert.equal(requests.length, 1);
    assert.ok(lines.some((l) => /restart-node: warning: the restart command for w1 exited 255.*waiting for w1 to come back all the same/.test(l)));
    assert.equal(c.node('w1').annotations['cilium-migrate.io/phase'], 'migrated');
  });

  it('a failed request whose node never comes back is a typed error with the command\'s output, and a rerun does not request again', async () => {
    const c = new FakeEngineCluster();
    const { restarter, requests } = fakeRestarter(c, () => ({ detail: 'cmd', failure: 'the restart command for w1 exited 1: sudo: a password is required', restarts: false }));
    const run = (id: string) => migrate(c, restarter, {}, undefined, id);
    await assert.rejects(run('run-1'), (e: unknown) => e instanceof RestartRequestError && e.exitCode === ExitCode.timeout && /exited 1: sudo: a password is required, and w1 did not come back within 60s/.test(e.message) && /restart w1 by hand/.test(e.hint ?? ''));
    const state = readState(c.node('w1').annotations)!;
    assert.ok(state.steps['restart-node']?.data?.requested, 'the request is recorded');
    assert.match(String(state.steps['restart-node']?.data?.requestFailure), /sudo: a password is required/);
    await assert.rejects(run('run-2'), RestartRequestError);
    assert.equal(requests.length, 1, 'never a second request');
    // Restarted by hand: the rerun sees it and goes on.
    c.node('w1').bootID = 'boot-by-hand';
    await run('run-3');
    assert.equal(requests.length, 1);
  });

  it('a command that never ran (not found) stops at once as a typed error, recorded, not repeated', async () => {
    const c = new FakeEngineCluster();
    const { restarter, requests } = fakeRestarter(c, () => ({ detail: 'cmd', failure: 'the restart command for w1 exited 127: sh: 1: shh: not found', notRun: true, restarts: false }));
    await assert.rejects(migrate(c, restarter), (e: unknown) => e instanceof RestartRequestError && e.exitCode === ExitCode.precondition && /exited 127: sh: 1: shh: not found: the node was not restarted/.test(e.message));
    await assert.rejects(migrate(c, restarter, {}, undefined, 'run-2'), RestartRequestError);
    assert.equal(requests.length, 1);
  });

  it('asks again with the same request id when the run stopped before recording the request (the reboot pod is found, not doubled)', async () => {
    const c = new FakeEngineCluster();
    const { restarter, requests } = fakeRestarter(c, () => ({ detail: 'cmd', restarts: false }));
    c.failPatchMatching = /\\"requested\\"/;
    await assert.rejects(migrate(c, restarter), /connection reset/);
    c.node('w1').bootID = 'boot-2';
    await migrate(c, restarter, {}, undefined, 'run-2');
    assert.equal(requests.length, 2);
    assert.equal(requests[0]!.id, requests[1]!.id, 'the same request, so a reboot pod of the first is taken as the request');
    assert.match(requests[0]!.id, /^run-1@/);
  });
});

describe('--restart-stragglers', () => {
  it('evicts the pods left on the legacy network (PodDisruptionBudgets honoured), never deletes them', async () => {
    const c = new FakeEngineCluster();
    // A DaemonSet pod that kept its legacy address through the restart.
    c.addPod({ namespace: 'app', name: 'ds-legacy', nodeName: 'w1', controller: { kind: 'DaemonSet', name: 'logs' }, podIP: '10.244.1.7' });
    await migrate(c, fakeRestarter(c).restarter, { restartStragglers: true });
    assert.ok(c.log.includes('evict app/ds-legacy'), c.log.join('\n'));
    assert.ok(!c.log.includes('delete app/ds-legacy'));
  });
});

describe('rollback: uncordon only what we cordoned', () => {
  const rollback = (c: FakeEngineCluster, boundary?: BoundaryHook, runId = 'rb-1') =>
    rollbackNode(c, 'w1', {
      runId, labelKey: label, ciliumNamespace, drain: options(fakeRestarter(c).restarter).drain, restarter: fakeRestarter(c).restarter,
      hostImage: 'alpine', verifyNamespace: 'default', verifyImage: 'pause', timeoutsMs: { hostCommand: 60_000, agentRestart: 60_000, nodeRestart: 60_000, verify: 60_000 }, pollMs: 1000,
    }, instantClock(), quiet, undefined, boundary);

  it('keeps the cordon an admin made between a stopped rollback and its resume', async () => {
    const c = new FakeEngineCluster();
    c.node('w1').labels[label] = 'true';
    await assert.rejects(rollback(c, killAt('rollback-cordon:intent')), Killed);
    c.node('w1').unschedulable = true;
    c.newPodIp = '10.244.1.9';
    const r = await rollback(c, undefined, 'rb-2');
    assert.equal(c.node('w1').unschedulable, true);
    assert.match(r.steps.find((s) => s.step === 'uncordon')!.message, /cordoned by someone else/);
  });

  it('undoes its own cordon', async () => {
    const c = new FakeEngineCluster();
    c.node('w1').labels[label] = 'true';
    c.newPodIp = '10.244.1.9';
    await rollback(c);
    assert.equal(c.node('w1').unschedulable, false);
    assert.deepEqual(c.log.filter((l) => l.includes('unschedulable')), ['patch w1 unschedulable=true', 'patch w1 unschedulable=false']);
  });
});

describe('dry runs: every step and why, nothing changed', () => {
  it('rollback --dry-run describes each of its steps and writes nothing', async () => {
    const c = new FakeEngineCluster();
    c.node('w1').labels[label] = 'true';
    c.addWorkload('w1', 'web-1');
    const lines: string[] = [];
    const r = await rollbackNode(c, 'w1', {
      runId: 'rb-1', labelKey: label, ciliumNamespace, drain: options(fakeRestarter(c).restarter).drain, restarter: fakeRestarter(c).restarter, dryRun: true,
      hostImage: 'alpine', verifyNamespace: 'default', verifyImage: 'pause', timeoutsMs: { hostCommand: 60_000, agentRestart: 60_000, nodeRestart: 60_000, verify: 60_000 }, pollMs: 1000,
    }, instantClock(), { line: (_n, l) => lines.push(l), status: () => {} });
    assert.equal(r.result, 'dry-run');
    assert.deepEqual(r.steps.map((s) => s.step), ['cordon', 'drain', 'unlabel', 'restart-agent', 'restore-cni', 'restart-node', 'verify', 'uncordon']);
    assert.deepEqual(c.log, [], 'nothing changed');
    assert.deepEqual(c.events, []);
    assert.deepEqual(c.node('w1').annotations, {});
    for (const expected of [/^cordon: would cordon w1/, /^drain: would evict 1 pod: app\/web-1/, /^unlabel: would remove io\.cilium\.migration\/cilium-default/, /^restart-agent: would delete the Cilium agent pod on w1 and wait for a new one to be Ready \(it no longer applies the CiliumNodeConfig, so it leaves restored CNI files alone\)/, /^restore-cni: would run a privileged pod of alpine on w1/, /^restart-node: would restart the node \(--restart exec\)/, /^verify: would start a pod on w1 and check its IP is on the legacy network/, /^uncordon: would uncordon w1/]) {
      assert.ok(lines.some((l) => expected.test(l)), `${expected}: ${lines.join('\n')}`);
    }
  });

  it('a migration\'s dry run shows the steps a resumed run would skip as done before', async () => {
    const c = new FakeEngineCluster();
    await assert.rejects(migrate(c, fakeRestarter(c).restarter, {}, killAt('label:intent')), Killed);
    const before = structuredClone(c.node('w1'));
    c.log = [];
    const r = await migrate(c, fakeRestarter(c).restarter, { dryRun: true }, undefined, 'run-2');
    assert.deepEqual(r.steps.filter((s) => s.outcome === 'done-before').map((s) => s.step), ['baseline-gate', 'cordon', 'drain']);
    assert.deepEqual(c.log, []);
    assert.deepEqual(c.node('w1'), before);
  });
});

describe('restart-node judges the node back by its restart method', () => {
  /**
   * `docker restart` of a kind node keeps its bootID, its pod UIDs and its Ready transition: only
   * the container's start time, kubelet's Starting event and a fresh Ready heartbeat move. The
   * fake's node never changes bootID here, so the reboot rule would wait until the timeout.
   */
  function kindNode(c: FakeEngineCluster) {
    const restartedAt = new Date('2026-06-01T00:00:00Z'); // after the fake clock's time
    let started = new Date('2025-12-01T00:00:00Z');
    let kubelet: Date | undefined;
    const restarter: NodeRestarter = {
      method: 'kind',
      async request(node) {
        c.log.push(`restart ${node.name}`);
        started = restartedAt;
        kubelet = restartedAt;
        c.node(node.name).readyHeartbeat = new Date(restartedAt.getTime() + 1000);
        return { detail: 'docker restart' };
      },
      containerStartedAt: async () => started,
    };
    Object.assign(c, { lastKubeletStart: async () => kubelet });
    return restarter;
  }

  it('a migration with --restart kind completes on the container\'s start and kubelet\'s Starting event', async () => {
    const c = new FakeEngineCluster();
    const r = await migrate(c, kindNode(c));
    assert.equal(r.result, 'migrated');
    assert.equal(c.node('w1').bootID, 'boot-1', 'the bootID never changed');
    assert.match(r.steps.find((s) => s.step === 'restart-node')!.message, /restarted \(kind\): its container started at 2026-06-01T00:00:00\.000Z and kubelet announced its start/);
    assert.equal(c.log.filter((l) => l.startsWith('restart ')).length, 1);
  });

  it('a rollback with --restart kind completes the same way', async () => {
    const c = new FakeEngineCluster();
    c.node('w1').labels[label] = 'true';
    c.newPodIp = '10.244.1.9';
    const restarter = kindNode(c);
    const r = await rollbackNode(c, 'w1', {
      runId: 'rb-1', labelKey: label, ciliumNamespace, drain: options(restarter).drain, restarter,
      hostImage: 'alpine', verifyNamespace: 'default', verifyImage: 'pause', timeoutsMs: { hostCommand: 60_000, agentRestart: 60_000, nodeRestart: 60_000, verify: 60_000 }, pollMs: 1000,
    }, instantClock(), quiet);
    assert.equal(r.result, 'rolled-back');
    assert.match(r.steps.find((s) => s.step === 'restart-node')!.message, /restarted \(kind\): its container started at 2026-06-01T00:00:00\.000Z and kubelet announced its start/);
  });

  it('a kind node whose container did not start again is not back, however Ready it looks', async () => {
    const c = new FakeEngineCluster();
    const restarter: NodeRestarter = { ...kindNode(c), request: async () => ({ detail: 'docker restart' }) };
    await assert.rejects(migrate(c, restarter), TimeoutError);
    assert.equal(c.node('w1').annotations['cilium-migrate.io/phase'], 'restart-node');
  });
});
