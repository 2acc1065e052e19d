// The drain loop against an in-memory DrainCluster and a virtual clock.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defaultDrainFlags, type DrainPod } from '../../cmd/cluster/drain-filter.js';
import type { Clock } from '../../lib/clock.js';
import type { DrainCluster } from '../../cmd/cluster/cluster.js';
import { defaultDrainOptions, drainNode, DrainRefusedError, type DrainOptions, type DrainProgress } from '../../cmd/engine/drain.js';
import { ExitCode, InterruptedError, TimeoutError } from '../../lib/errors.js';
import type { EvictionOutcome } from '../../lib/kube-objects.js';

const options: DrainOptions = { ...defaultDrainFlags, ...defaultDrainOptions };

function fakeClock(): Clock & { sleeps: number[] } {
  let t = 1_000_000;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => t,
    sleep: async (ms) => {
      sleeps.push(ms);
      t += ms;
      await Promise.resolve();
    },
  };
}

const rsPod = (name: string): DrainPod => ({ namespace: 'app', name, uid: `uid-${name}`, phase: 'Running', mirror: false, emptyDir: false, controller: { kind: 'ReplicaSet', name: 'rs' } });

/** Pods on one node; evictions answered by `answer`, evicted pods disappear after `lingerPolls` lists. */
function fakeCluster(pods: DrainPod[], answer: (pod: DrainPod, attempt: number) => EvictionOutcome, lingerPolls = 1) {
  const onNode = new Map(pods.map((p) => [p.name, p]));
  const attempts = new Map<string, number>();
  const evictedUids: string[] = [];
  const linger = new Map<string, number>();
  let lists = 0;
  const cluster: DrainCluster = {
    async listPodsOnNode() {
      lists++;
      for (const [name, left] of linger) {
        if (left <= 0) {
          onNode.delete(name);
          linger.delete(name);
        } else linger.set(name, left - 1);
      }
      return [...onNode.values()];
    },
    async daemonSetExists() {
      return true;
    },
    async evictPod(pod) {
      const n = (attempts.get(pod.name) ?? 0) + 1;
      attempts.set(pod.name, n);
      const outcome = answer(pod, n);
      if (outcome.kind === 'evicted') {
        evictedUids.push(pod.uid);
        linger.set(pod.name, lingerPolls);
      }
      return outcome;
    },
    async deletePod(pod) {
      evictedUids.push(pod.uid);
      linger.set(pod.name, 0);
    },
  };
  return { cluster, attempts, evictedUids, lists: () => lists };
}

describe('drainNode', () => {
  it('evicts every managed pod, with its UID, and waits until they are gone', async () => {
    const pods = [rsPod('a'), rsPod('b'), rsPod('c')];
    const f = fakeCluster(pods, () => ({ kind: 'evicted' }), 2);
    const progress: DrainProgress[] = [];
    const report = await drainNode(f.cluster, 'n1', options, fakeClock(), (p) => progress.push(p));
    assert.deepEqual(report.evicted.sort(), ['app/a', 'app/b', 'app/c']);
    assert.deepEqual(f.evictedUids.sort(), ['uid-a', 'uid-b', 'uid-c']);
    assert.equal(progress.at(-1)?.left, 0);
    assert.ok(progress.some((p) => p.phase === 'waiting' && p.left === 3), 'progress showed pods terminating');
  });

  it('refuses before evicting anything when a pod needs a flag', async () => {
    const bare = { ...rsPod('bare'), controller: undefined };
    const f = fakeCluster([rsPod('a'), bare], () => ({ kind: 'evicted' }));
    await assert.rejects(drainNode(f.cluster, 'n1', options, fakeClock()), (err: unknown) => {
      assert.ok(err instanceof DrainRefusedError);
      assert.match(err.message, /app\/bare: not managed by a controller.*needs --force/);
      assert.equal(err.exitCode, ExitCode.precondition);
      return true;
    });
    assert.equal(f.evictedUids.length, 0);
  });

  it('backs off at least 5 s on 429 even when Retry-After says less, and honours a longer one', async () => {
    const clock = fakeClock();
    const f = fakeCluster([rsPod('a'), rsPod('b')], (pod, n) =>
      n === 1 ? { kind: 'blocked', retryAfterSeconds: pod.name === 'a' ? 1 : 12, message: 'The disruption budget web needs 2 healthy pods' } : { kind: 'evicted' },
    );
    await drainNode(f.cluster, 'n1', { ...options, parallelism: 1 }, clock);
    assert.deepEqual(clock.sleeps.slice(0, 2), [5000, 12000]);
  });

  it('names the PDB that blocks while it blocks', async () => {
    const f = fakeCluster([rsPod('a')], (_p, n) => (n < 3 ? { kind: 'blocked', retryAfterSeconds: 0, message: 'The disruption budget web needs 2 healthy pods and has 2 currently' } : { kind: 'evicted' }));
    const progress: DrainProgress[] = [];
    await drainNode(f.cluster, 'n1', options, fakeClock(), (p) => progress.push(p));
    assert.ok(progress.some((p) => p.blocked.some((b) => b.pod === 'app/a' && /disruption budget web/.test(b.message))));
    assert.deepEqual(progress.at(-1)?.blocked, []);
  });

  it('times out with the pods left and what blocks them, leaving the rest to the caller', async () => {
    const f = fakeCluster([rsPod('a')], () => ({ kind: 'blocked', retryAfterSeconds: 0, message: 'The disruption budget web needs 1 healthy pods' }));
    await assert.rejects(drainNode(f.cluster, 'n1', { ...options, timeoutMs: 60_000 }, fakeClock()), (err: unknown) => {
      assert.ok(err instanceof TimeoutError);
      assert.match(err.message, /timed out after 60s with 1 pod left:\n  app\/a: The disruption budget web/);
      return true;
    });
  });

  it('stops on a pod that several PDBs cover (the 201-with-failure answer) with a clear error', async () => {
    const f = fakeCluster([rsPod('a'), rsPod('b')], (pod) => (pod.name === 'a' ? { kind: 'failed', message: 'This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.' } : { kind: 'evicted' }));
    await assert.rejects(drainNode(f.cluster, 'n1', { ...options, parallelism: 1 }, fakeClock()), /cannot evict app\/a: This pod has more than one PodDisruptionBudget/);
    assert.deepEqual(f.evictedUids, [], 'the worker stopped before evicting the next pod');
  });

  it('counts a pod replaced under the same name (409 on the UID precondition) or already gone (404) as done', async () => {
    const f = fakeCluster([rsPod('a'), rsPod('b')], (pod) => (pod.name === 'a' ? { kind: 'replaced' } : { kind: 'gone' }));
    const report = await drainNode(f.cluster, 'n1', options, fakeClock());
    assert.deepEqual(report.evicted.sort(), ['app/a', 'app/b']);
  });

  it('waits for deletion with one LIST per interval, not one request per pod', async () => {
    const pods = Array.from({ length: 50 }, (_, i) => rsPod(`p${i}`));
    const f = fakeCluster(pods, () => ({ kind: 'evicted' }), 3);
    await drainNode(f.cluster, 'n1', options, fakeClock());
    assert.ok(f.lists() <= 6, `${f.lists()} LISTs for 50 pods`);
  });

  it('stops at a safe point when interrupted', async () => {
    const stop = new AbortController();
    const f = fakeCluster([rsPod('a'), rsPod('b')], (_p, n) => {
      stop.abort();
      return n === 1 ? { kind: 'blocked', retryAfterSeconds: 0, message: 'pdb' } : { kind: 'evicted' };
    });
    await assert.rejects(drainNode(f.cluster, 'n1', { ...options, parallelism: 1 }, fakeClock(), undefined, stop.signal), InterruptedError);
  });

  it('stops waiting for a pod stuck terminating (a finalizer) once --skip-wait-for-delete-timeout has passed since its deletion', async () => {
    // The evicted pod gets its deletionTimestamp and never goes: a finalizer nobody removes.
    const stuck = (clock: Clock): DrainCluster => {
      let deletedAt: Date | undefined;
      return {
        listPodsOnNode: async () => [{ ...rsPod('held'), ...(deletedAt ? { deletionTimestamp: deletedAt } : {}) }],
        daemonSetExists: async () => true,
        evictPod: async () => ((deletedAt = new Date(clock.now())), { kind: 'evicted' }),
        deletePod: async () => {},
      };
    };
    const clock = fakeClock();
    const report = await drainNode(stuck(clock), 'n1', { ...options, skipWaitForDeleteTimeoutSeconds: 20 }, clock);
    assert.deepEqual(report.evicted, ['app/held']);
    assert.match(report.warnings.map((w) => `${w.pod}: ${w.reason}`).join('\n'), /app\/held: still terminating more than 20s after its deletion; not waited for/);
    // kubectl's rule: whole seconds strictly above the limit.
    assert.ok(clock.now() - 1_000_000 >= 21_000 && clock.now() - 1_000_000 < 23_000, `gave up after ${clock.now() - 1_000_000} ms`);
    // Without the flag the same pod holds the drain until its timeout.
    const clock2 = fakeClock();
    await assert.rejects(drainNode(stuck(clock2), 'n1', { ...options, timeoutMs: 60_000 }, clock2), TimeoutError);
  });

  it('handles an eviction refused because the namespace is being deleted as kubectl does: retried until the pod is marked deleted, then waited for', async () => {
    const clock = fakeClock();
    let attempts = 0;
    let listed = 0;
    const cluster: DrainCluster = {
      // Marked deleted by the namespace's deletion from the third look on, gone after the fifth.
      listPodsOnNode: async () => (++listed > 5 ? [] : [{ ...rsPod('a'), ...(listed >= 3 ? { deletionTimestamp: new Date(clock.now()) } : {}) }]),
      daemonSetExists: async () => true,
      evictPod: async () => (attempts++, { kind: 'namespace-terminating', message: 'pods "a" is forbidden: unable to create new content in namespace app because it is being terminated' }),
      deletePod: async () => assert.fail('never deleted'),
    };
    const progress: DrainProgress[] = [];
    const report = await drainNode(cluster, 'n1', options, clock, (p) => progress.push(p));
    assert.deepEqual(report.evicted, ['app/a']);
    assert.equal(attempts, 2, 'retried once while the pod was not marked deleted yet, then only waited for');
    assert.ok(progress.some((p) => p.blocked.some((b) => /namespace app is being deleted/.test(b.message))));
    assert.match(report.warnings.map((w) => w.reason).join('\n'), /its namespace is being deleted; waiting for the pod to go/);
  });

  it('deletes instead of evicting with --disable-eviction', async () => {
    const f = fakeCluster([rsPod('a')], () => assert.fail('no eviction expected'));
    const report = await drainNode(f.cluster, 'n1', { ...options, disableEviction: true }, fakeClock());
    assert.deepEqual(report.evicted, ['app/a']);
  });
});
