// run --in-cluster against a real API server, controller manager (its Job controller) and scheduler,
// on kwok nodes (no kubelet: kwok stands in for it, pods are never really run), as a user bound to
// nothing but manifests/rbac/plugin.yaml and in-cluster.yaml. What this proves:
// the objects are accepted and do what they say (the Job controller starts one pod with the run's
// ServiceAccount and flags; an evicted pod is replaced without counting as a failure; a suspended
// Job's pod is stopped and no other started), the follower detaches, --attach, --cancel, the
// refusal of a second run, status, and --dry-run changing nothing.
//
// Then the run pod evicted by its own drain: since no kubelet runs the pod here, the test plays the
// kubelet's part for each of the Job's pods in turn: it runs the bundled plugin as that pod's program
// (the pod's identity in the Job's variables, the ServiceAccount's token as its credentials, the
// Job's own arguments), and sends it SIGTERM when the pod is marked for deletion, as a kubelet does.
// The process stops at a safe point and releases the lock; the Job controller starts the next pod,
// whose program resumes at once from the state on the nodes; every node ends migrated and no step
// is done twice.
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ControlPlane } from '../../lab/control-plane.js';
import { inClusterRun } from '../../lib/defaults.js';
import { ExitCode } from '../../lib/errors.js';
import { startMigrationCluster } from '../harness/migration-cluster.js';
import { repoRoot, runPlugin, type PluginRun } from '../harness/plugin.js';
import { progress } from '../harness/shared-cluster.js';
import { eventually } from '../harness/wait.js';

interface Pod {
  metadata: { name: string; uid: string; deletionTimestamp?: string };
  spec: { nodeName?: string; serviceAccountName?: string; containers: { args: string[] }[] };
  status: { phase?: string; conditions?: { type: string; status: string; reason?: string }[] };
}
interface Job {
  metadata: { uid: string; annotations?: Record<string, string> };
  spec: { suspend?: boolean };
  status: { active?: number; failed?: number; conditions?: { type: string; status: string }[] };
}

const ns = 'cilium-migrate';
const jobPath = `/apis/batch/v1/namespaces/${ns}/jobs/${inClusterRun.name}`;
const runFlags = ['--restart', 'none', '--gate', 'cluster-state', '--gate-rounds', '1', '--gate-interval', '1s', '--lock-ttl', '30s'];

describe('run --in-cluster on a real control plane', () => {
  let cp: ControlPlane;
  const env = () => ({ PATH: process.env.PATH ?? '', HOME: cp.rootDir });
  /** A user bound to nothing but manifests/rbac/plugin.yaml and in-cluster.yaml. */
  let operator: string;
  const plugin = (args: string[], opts: Parameters<typeof runPlugin>[1] = {}) => runPlugin([...args, '--kubeconfig', operator], { env: env(), ...opts });
  const job = () => cp.get<Job>(jobPath).catch(() => undefined);
  const pods = async () => (await cp.get<{ items: Pod[] }>(`/api/v1/namespaces/${ns}/pods?labelSelector=batch.kubernetes.io/job-name=${inClusterRun.name}`)).items;
  /** Runs until the follower says the pod runs, then Ctrl-C (once: a second one quits at once). */
  const detachOnRunning = () => {
    let sent = false;
    return (text: string, kill: (s: NodeJS.Signals) => void) => {
      if (!sent && /: Running\n/.test(text)) kill('SIGINT'), (sent = true);
    };
  };
  const startAndDetach = (args: string[]) => plugin(args, { onStderr: detachOnRunning() });
  /**
   * The kubelet's last word on a pod whose container ended: its phase and exit code. Without it
   * the Job controller, which judges a pod failure policy on terminal pods only, waits for ever.
   */
  const podEnded = async (name: string, exitCode: number) => {
    const at = new Date().toISOString();
    const status = { status: { phase: exitCode === 0 ? 'Succeeded' : 'Failed', containerStatuses: [{ name: 'run', image: 'cilium-migrate-agent:0.1.0', imageID: '', ready: false, restartCount: 0, started: false, state: { terminated: { exitCode, reason: exitCode === 0 ? 'Completed' : 'Error', startedAt: at, finishedAt: at } } }] } };
    await cp.kubectl(['-n', ns, 'patch', 'pod', name, '--subresource=status', '--type=merge', '-p', JSON.stringify(status)]);
  };
  /** Plays the kubelet for pods marked for deletion that no program runs for: their container stops with SIGTERM's 143. */
  const stopDeletedPods = async () => {
    for (const p of await pods()) {
      if (!p.metadata.deletionTimestamp || p.status.phase !== 'Running') continue;
      // kwok's own deletion stage may remove the pod between the list and the patch: then it has ended.
      await podEnded(p.metadata.name, 143).catch((err: Error) => {
        if (!/NotFound/.test(err.message)) throw err;
      });
    }
  };

  before(async () => {
    // A run pod runs until its program ends: kwok must not end Job pods by itself.
    cp = await startMigrationCluster(progress, 2, { kwokCompletesJobs: false });
    await cp.kubectl(['create', 'namespace', ns]);
    for (const file of ['plugin.yaml', 'in-cluster.yaml']) await cp.kubectl(['apply', '--server-side', '-f', join(repoRoot, 'manifests', 'rbac', file)]);
    operator = await cp.userKubeconfig('operator', ['cilium-migrate']);
  });
  after(() => cp?.stop());

  it('--dry-run prints the ServiceAccount, its bindings and the Job, and creates nothing', async () => {
    const r = await plugin(['run', '--in-cluster', '--dry-run', ...runFlags]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /kind: ServiceAccount\n/);
    assert.match(r.stdout, /kind: Job\n/);
    assert.match(r.stderr, /dry run: nothing was created/);
    // What it prints is what the API server accepts (a server-side dry run of every object).
    await cp.kubectl(['apply', '--server-side', '--dry-run=server', '-f', '-'], { input: r.stdout });
    assert.equal(await job(), undefined);
    await assert.rejects(cp.kubectl(['-n', ns, 'get', 'serviceaccount', inClusterRun.name]), /NotFound/);
  });

  it('refuses waves that would cordon every node a run pod can run on, before it creates anything', async () => {
    const nodes = (await cp.get<{ items: { metadata: { name: string; labels?: Record<string, string> }; spec: { taints?: { effect: string }[] } }[] }>('/api/v1/nodes')).items;
    const hosts = nodes.filter((n) => !(n.spec.taints ?? []).some((t) => t.effect === 'NoSchedule' || t.effect === 'NoExecute')).map((n) => n.metadata.name).sort();
    assert.ok(hosts.length >= 2, `two nodes a run pod can go to: ${hosts.join(', ')}`);
    const r = await plugin(['run', '--in-cluster', ...runFlags, '--max-unavailable', String(hosts.length)]);
    assert.equal(r.code, ExitCode.precondition, r.stderr);
    assert.match(r.stderr, new RegExp(`wave 1 \\(${hosts.join(', ')}\\) would cordon every node a run pod can run on`));
    assert.match(r.stderr, new RegExp(`--max-unavailable ${hosts.length - 1} or less`));
    assert.equal(await job(), undefined);
    await assert.rejects(cp.kubectl(['-n', ns, 'get', 'serviceaccount', inClusterRun.name]), /NotFound/);
  });

  it('starts the Job, follows it, detaches on Ctrl-C (the Job goes on), and refuses a second run', async () => {
    const r = await startAndDetach(['run', '--in-cluster', ...runFlags]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /job cilium-migrate\/cilium-migrate-run created/);
    assert.match(r.stderr, /detached: the run goes on in the cluster/);
    // Ctrl-C said what it does here (detach), not what it does elsewhere (stop the run).
    assert.match(r.stderr, /SIGINT: detaching; the run goes on in job cilium-migrate\/cilium-migrate-run/);
    assert.doesNotMatch(r.stderr, /stopping at the next safe point/);
    assert.match(r.stderr, /run --in-cluster --attach/);
    const j = await job();
    assert.ok(j && !j.spec.suspend, 'the Job goes on');
    const [pod] = await pods();
    assert.ok(pod, 'the Job controller started a pod');
    assert.equal(pod.spec.serviceAccountName, inClusterRun.name);
    assert.deepEqual(pod.spec.containers[0]!.args, ['run', ...runFlags], 'the run flags, without --kubeconfig or --in-cluster');

    const again = await plugin(['run', '--in-cluster', ...runFlags]);
    assert.equal(again.code, ExitCode.locked, again.stderr);
    assert.match(again.stderr, /a migration run is already in progress in the cluster \(job cilium-migrate\/cilium-migrate-run/);

    const attached = await plugin(['run', '--in-cluster', '--attach'], { onStderr: detachOnRunning() });
    assert.equal(attached.code, 0, attached.stderr);
    assert.match(attached.stderr, new RegExp(`pod ${pod.metadata.name} on ${pod.spec.nodeName}: Running`));
    assert.match(attached.stderr, /detached/);
  });

  it('the ServiceAccount may do what a run does, and write its progress on its own Job only', async () => {
    const sa = `system:serviceaccount:${ns}:${inClusterRun.name}`;
    const can = async (args: string[]) => (await cp.kubectl(['auth', 'can-i', '--as', sa, ...args]).catch((e: { stdout: string }) => e)).stdout.trim();
    assert.equal(await can(['patch', 'nodes']), 'yes');
    assert.equal(await can(['create', 'pods/eviction', '-n', 'default']), 'yes');
    assert.equal(await can(['update', 'leases/cilium-migrate', '-n', 'kube-system']), 'yes');
    assert.equal(await can(['patch', `jobs/${inClusterRun.name}`, '-n', ns]), 'yes');
    assert.equal(await can(['patch', 'jobs/other', '-n', ns]), 'no');
    assert.equal(await can(['get', 'secrets', '-n', 'kube-system']), 'no');
  });

  it('an evicted run pod is replaced on another node, and the eviction is not counted as a failure', async () => {
    const [pod] = await pods();
    assert.ok(pod?.spec.nodeName);
    const node = pod.spec.nodeName;
    // What the run's drain does to it: cordon, then the Eviction API; kubectl waits for it to go.
    const drained = cp.kubectl(['drain', node, '--pod-selector', `batch.kubernetes.io/job-name=${inClusterRun.name}`, '--timeout', '90s']);
    try {
      await eventually('the run pod marked for deletion', async () => ((await pods()).find((p) => p.metadata.uid === pod.metadata.uid)?.metadata.deletionTimestamp ? true : undefined));
      const evicted = (await pods()).find((p) => p.metadata.uid === pod.metadata.uid)!;
      assert.ok(evicted.status.conditions?.some((c) => c.type === 'DisruptionTarget' && c.status === 'True' && c.reason === 'EvictionByEvictionAPI'), 'the eviction marks the pod as disrupted');
      await podEnded(pod.metadata.name, 143);
      await drained;
      const next = await eventually('a new run pod', async () => (await pods()).find((p) => p.metadata.uid !== pod.metadata.uid && !p.metadata.deletionTimestamp && p.status.phase === 'Running'), 90_000);
      assert.notEqual(next.spec.nodeName, node, 'the cordoned node is not used');
      const j = (await job())!;
      assert.equal(j.status.failed ?? 0, 0, 'the eviction did not count towards the backoff limit');
      assert.ok(!j.status.conditions?.some((c) => c.type === 'Failed' && c.status === 'True'));
    } finally {
      await cp.kubectl(['uncordon', node]);
    }
  });

  it('status shows the Job, its pod and node, and what the run recorded', async () => {
    // As a run pod writes it, with the ServiceAccount's rights.
    const record = { pod: 'p', podNode: 'kind-worker2', wave: { index: 1, of: 2 }, node: 'kind-worker', message: 'drain: evicting 5 pods', at: '2026-11-25T10:00:00.000Z' };
    await cp.kubectl(['-n', ns, 'annotate', '--overwrite', '--as', `system:serviceaccount:${ns}:${inClusterRun.name}`, `job/${inClusterRun.name}`, `${inClusterRun.progressAnnotation}=${JSON.stringify(record)}`]);
    const pod = (await pods()).filter((p) => !p.metadata.deletionTimestamp).at(-1)!;
    const r = await plugin(['status']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^in-cluster run: job cilium-migrate\/cilium-migrate-run, running \(started [^)]*\)$/m);
    assert.match(r.stdout, new RegExp(`^  pod ${pod.metadata.name} on ${pod.spec.nodeName}: Running$`, 'm'));
    assert.match(r.stdout, /^  wave 1 of 2, node kind-worker: drain: evicting 5 pods \(2026-11-25T10:00:00.000Z, from pod p\)$/m);
    const json = JSON.parse((await plugin(['status', '-o', 'json'])).stdout) as { inClusterRun: { state: string; progress: { message: string } } };
    assert.equal(json.inClusterRun.state, 'running');
    assert.equal(json.inClusterRun.progress.message, 'drain: evicting 5 pods');
  });

  it('--cancel stops the pod and starts no other; a later run --in-cluster replaces the cancelled Job', async () => {
    const before = (await job())!;
    // The Job controller stops the suspended Job's pod; nothing runs in it here, so it ends at once.
    let ending = true;
    const kubelet = (async () => {
      while (ending) await stopDeletedPods().then(() => new Promise((res) => setTimeout(res, 200)));
    })();
    const r = await plugin(['run', '--in-cluster', '--cancel']).finally(() => (ending = false));
    await kubelet;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /asked the run in job cilium-migrate\/cilium-migrate-run to stop at its next safe point/);
    assert.match(r.stderr, /the run stopped at a safe point/);
    const j = (await job())!;
    assert.equal(j.spec.suspend, true);
    assert.ok(j.metadata.annotations?.[inClusterRun.cancelAnnotation]);
    assert.deepEqual((await pods()).filter((p) => !p.metadata.deletionTimestamp), []);
    assert.match((await plugin(['status'])).stdout, /^in-cluster run: job cilium-migrate\/cilium-migrate-run, cancelled /m);
    const attached = await plugin(['run', '--in-cluster', '--attach']);
    assert.equal(attached.code, ExitCode.interrupted, 'following a cancelled run says so');

    const again = await startAndDetach(['run', '--in-cluster', ...runFlags]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /replacing the cancelled run in job cilium-migrate\/cilium-migrate-run/);
    assert.notEqual((await job())!.metadata.uid, before.metadata.uid);
  });

  it('the run pod evicted by its own drain stops at a safe point, releases the lock, and the next pod resumes; nothing is done twice', async () => {
    // A kubeconfig with the run's ServiceAccount token: the pod's in-cluster credentials.
    const token = (await cp.kubectl(['-n', ns, 'create', 'token', inClusterRun.name, '--duration', '1h'])).stdout.trim();
    const saConfig = join(cp.rootDir, 'run-pod.kubeconfig');
    copyFileSync(cp.kubeconfig, saConfig);
    await cp.kubectl([`--kubeconfig=${saConfig}`, 'config', 'set-credentials', 'run-pod', `--token=${token}`]);
    await cp.kubectl([`--kubeconfig=${saConfig}`, 'config', 'set-context', '--current', '--user=run-pod']);

    const runs: { pod: string; node: string; result: PluginRun; sigterm: boolean }[] = [];
    for (let i = 0; i < 4; i++) {
      const pod = await eventually('the Job\'s next pod', async () => (await pods()).find((p) => !p.metadata.deletionTimestamp && p.status.phase === 'Running' && !runs.some((r) => r.pod === p.metadata.name)), 90_000);
      const args = pod.spec.containers[0]!.args;
      let sigterm = false;
      let stopWatch = false;
      let killer: ((s: NodeJS.Signals) => void) | undefined;
      // The kubelet's part: SIGTERM to the program once its pod is marked for deletion.
      const watch = (async () => {
        while (!stopWatch) {
          const now = (await pods()).find((p) => p.metadata.uid === pod.metadata.uid);
          if ((!now || now.metadata.deletionTimestamp) && killer) {
            sigterm = true;
            killer('SIGTERM');
            return;
          }
          await new Promise((r) => setTimeout(r, 200));
        }
      })();
      const result = await runPlugin([...args, '--kubeconfig', saConfig], {
        env: { ...env(), [inClusterRun.env.job]: inClusterRun.name, [inClusterRun.env.namespace]: ns, [inClusterRun.env.pod]: pod.metadata.name, [inClusterRun.env.podUid]: pod.metadata.uid, [inClusterRun.env.node]: pod.spec.nodeName ?? '' },
        onStderr: (_t, kill) => (killer = kill),
        timeoutMs: 300_000,
      });
      stopWatch = true;
      await watch;
      runs.push({ pod: pod.metadata.name, node: pod.spec.nodeName ?? '', result, sigterm });
      if (!sigterm) break;
      await podEnded(pod.metadata.name, result.code);
      // Stopped at a safe point: exit 130, the lock released for the successor.
      assert.equal(result.code, ExitCode.interrupted, result.stderr.slice(-2000));
      assert.match(result.stderr, /SIGTERM: stopping at the next safe point/);
      const lease = await cp.get<{ spec: { holderIdentity?: string } }>('/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/cilium-migrate').catch(() => undefined);
      assert.ok(!lease?.spec.holderIdentity, 'the lock was released');
      const recorded = JSON.parse((await job())!.metadata.annotations?.[inClusterRun.progressAnnotation] ?? '{}') as { message?: string; pod?: string };
      assert.equal(recorded.pod, pod.metadata.name);
      assert.match(recorded.message ?? '', /^stopped: /, 'its last progress says it stopped');
    }
    const last = runs.at(-1)!;
    progress(`run pods, in turn: ${runs.map((r) => `${r.pod} on ${r.node}: ${r.sigterm ? 'evicted, SIGTERM, ' : ''}exit ${r.result.code}`).join('; ')}`);
    assert.ok(runs.length >= 2, `the first run pod was evicted by its own drain (runs: ${runs.map((r) => `${r.pod}@${r.node} exit ${r.result.code}`).join(', ')})`);
    assert.ok(runs[0]!.sigterm && runs[0]!.result.stderr.includes(`[${runs[0]!.node}] drain: started`), 'the first pod stopped during the drain of its own node');
    assert.equal(last.result.code, 0, last.result.stderr.slice(-3000));
    for (const r of runs.slice(1)) assert.doesNotMatch(r.result.stderr, /watching for up to/, 'the successor took the released lock at once');
    assert.match((await plugin(['status'])).stdout, /^3 of 3 nodes migrated, /m);
    // Nothing done twice: each step of each node announced once.
    const events = (await cp.get<{ items: { reason: string; involvedObject: { name: string } }[] }>('/api/v1/namespaces/default/events')).items;
    for (const node of ['kind-control-plane', 'kind-worker', 'kind-worker2']) {
      for (const reason of ['MigrationCordon', 'MigrationDrain', 'MigrationLabel', 'MigrationUncordon', 'MigrationComplete']) {
        assert.equal(events.filter((e) => e.involvedObject.name === node && e.reason === reason).length, 1, `${node} ${reason} once`);
      }
    }
    assert.equal((await job())!.status.failed ?? 0, 0, 'no eviction counted as a failure');
    // The kubelet's part once more: the last pod's program exited 0, so its pod Succeeded.
    await podEnded(last.pod, 0);
    const attached = await plugin(['run', '--in-cluster', '--attach']);
    assert.equal(attached.code, 0, attached.stderr);
    assert.match(attached.stderr, /finished: every node is migrated/);
  });
});
