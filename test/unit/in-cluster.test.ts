// run --in-cluster on this side of the API: the objects it creates (the Job a drain may evict
// without failing the run, the ServiceAccount bound to the plugin's own roles), the flags the pod
// gets, the follower over a fake of its narrow RunSource, the run pod's progress record and the
// lines `status` prints.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { followRun, type RunSource } from '../../cmd/in-cluster/follow.js';
import { forwardedArgs, hopelessExitCodes, objectsYaml, runObjects } from '../../cmd/in-cluster/objects.js';
import { foldLine, progressIo, readProgress, type RunProgress } from '../../cmd/in-cluster/progress.js';
import { describeRunStatus, runStatus } from '../../cmd/in-cluster/status.js';
import { refuseStrandedWaves, strandedMessage, strandedWaves } from '../../cmd/in-cluster/room.js';
import type { NodeView } from '../../cmd/cluster/cluster.js';
import { normalizeArgv } from '../../cmd/cli.js';
import { inClusterRun, migrationLabel } from '../../lib/defaults.js';
import { ExitCode, PreconditionError } from '../../lib/errors.js';
import { stateAnnotation } from '../../lib/node-state.js';
import type { JobView, RunPodView } from '../../lib/kube-jobs.js';
import { repoRoot } from '../harness/plugin.js';

const options = { namespace: 'cilium-migrate', ciliumNamespace: 'kube-system', verifyNamespace: 'default', image: 'cilium-migrate-agent:0.1.0', args: ['run', '--restart', 'none'], labelKey: migrationLabel };

describe('run --in-cluster: the flags the run pod gets', () => {
  it('are the run flags as typed, without what concerns this machine or the in-cluster command', () => {
    const argv = normalizeArgv(['--kubeconfig', '/home/me/kc', 'run', '--in-cluster', '--context=prod', '--restart', 'reboot', '--yes', '-n', 'x', '--image', 'reg/img:1', '--max-unavailable', '3', '--drain-timeout', '-5s', '--dry-run=false', '-o', 'json', '-v']);
    assert.deepEqual(forwardedArgs(argv), ['run', '--restart', 'reboot', '--yes', '--max-unavailable', '3', '--drain-timeout=-5s', '-o', 'json', '--verbose=1']);
  });
  it('keep a value that happens to read "run"', () => {
    assert.deepEqual(forwardedArgs(['run', '--in-cluster', '--restart', 'exec', '--restart-command', 'run {node}']), ['run', '--restart', 'exec', '--restart-command', 'run {node}']);
  });
});

describe('run --in-cluster: the objects', () => {
  const objects = runObjects(options);
  const job = objects.find((o) => o.kind === 'Job') as unknown as { metadata: { name: string; namespace: string }; spec: Record<string, unknown> & { template: { spec: Record<string, unknown> & { containers: { name: string; image: string; command: string[]; args: string[]; env: { name: string; valueFrom?: { fieldRef: { fieldPath: string } } }[] }[] } } } };

  it('a Job that runs the plugin from the project image, one pod at a time, with the run flags', () => {
    assert.equal(job.metadata.name, inClusterRun.name);
    assert.equal(job.metadata.namespace, 'cilium-migrate');
    assert.equal(job.spec.parallelism, 1);
    assert.equal(job.spec.completions, 1);
    const pod = job.spec.template.spec;
    assert.equal(pod.restartPolicy, 'Never', 'a pod failure policy needs it; a new pod (elsewhere) resumes');
    assert.equal(pod.serviceAccountName, inClusterRun.name);
    assert.equal(pod.terminationGracePeriodSeconds, inClusterRun.terminationGraceSeconds);
    const c = pod.containers[0]!;
    assert.equal(c.image, options.image);
    assert.deepEqual(c.command, ['node', inClusterRun.pluginPath]);
    assert.deepEqual(c.args, options.args);
    // The pod UID tells the lock two run pods apart (cmd/engine/lock.ts machineIdentity).
    assert.equal(c.env.find((e) => e.name === inClusterRun.env.podUid)?.valueFrom?.fieldRef.fieldPath, 'metadata.uid');
  });

  it('an eviction (its own drain) does not count as a failure; bad flags fail the Job at once', () => {
    const rules = (job.spec.podFailurePolicy as { rules: { action: string; onPodConditions?: { type: string }[]; onExitCodes?: { containerName: string; operator: string; values: number[] } }[] }).rules;
    assert.deepEqual(rules[0], { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget' }] }, 'the first rule: evictions are ignored');
    assert.deepEqual(rules[1], { action: 'FailJob', onExitCodes: { containerName: 'run', operator: 'In', values: [ExitCode.usage, ExitCode.config] } });
    assert.deepEqual(hopelessExitCodes, [ExitCode.usage, ExitCode.config]);
    assert.ok(typeof job.spec.backoffLimit === 'number' && job.spec.backoffLimit >= 3, 'other failures are retried: each retry resumes');
  });

  it('prefers nodes already migrated (they are not drained again)', () => {
    const affinity = job.spec.template.spec.affinity as { nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: { preference: { matchExpressions: unknown[] } }[] } };
    assert.deepEqual(affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0]!.preference.matchExpressions, [{ key: migrationLabel, operator: 'In', values: ['true'] }]);
  });

  it('binds the ServiceAccount to exactly the roles manifests/rbac/plugin.yaml defines, in their namespaces', () => {
    const plugin = parseAllDocuments(readFileSync(join(repoRoot, 'manifests', 'rbac', 'plugin.yaml'), 'utf8')).map((d) => d.toJS() as { kind: string; metadata: { name: string; namespace?: string } });
    const roles = new Set(plugin.filter((o) => o.kind === 'Role' || o.kind === 'ClusterRole').map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`));
    const bindings = objects.filter((o) => o.kind.endsWith('Binding')) as unknown as { kind: string; metadata: { namespace?: string }; roleRef: { kind: string; name: string }; subjects: { kind: string; name: string; namespace: string }[] }[];
    const bound = bindings.filter((b) => b.roleRef.name === 'cilium-migrate').map((b) => `${b.roleRef.kind}/${b.metadata.namespace ?? ''}/${b.roleRef.name}`);
    assert.deepEqual(new Set(bound), roles);
    for (const b of bindings) assert.deepEqual(b.subjects, [{ kind: 'ServiceAccount', name: inClusterRun.name, namespace: 'cilium-migrate' }]);
    // Beyond the plugin's roles: only get and patch of its own Job (its progress).
    const own = objects.find((o) => o.kind === 'Role') as unknown as { rules: unknown[] };
    assert.deepEqual(own.rules, [{ apiGroups: ['batch'], resources: ['jobs'], resourceNames: [inClusterRun.name], verbs: ['get', 'patch'] }]);
  });

  it('manifests/rbac/in-cluster.yaml lets the group apply exactly these objects, by name, and follow the Job', () => {
    type Rule = { apiGroups: string[]; resources: string[]; resourceNames?: string[]; verbs: string[] };
    const docs = parseAllDocuments(readFileSync(join(repoRoot, 'manifests', 'rbac', 'in-cluster.yaml'), 'utf8')).map((d) => d.toJS() as { kind: string; metadata: { name: string; namespace?: string }; rules?: Rule[]; subjects?: unknown[] });
    const grants = docs.flatMap((d) => (d.rules ?? []).flatMap((r) => r.resources.flatMap((res) => r.verbs.flatMap((v) => (r.resourceNames ?? ['*']).map((n) => `${v} ${r.apiGroups[0]}/${res} ns=${d.metadata.namespace ?? '*'} name=${n}`)))));
    const plural: Record<string, string> = { ServiceAccount: 'serviceaccounts', ClusterRoleBinding: 'clusterrolebindings', RoleBinding: 'rolebindings', Role: 'roles', Job: 'jobs' };
    for (const o of objects) {
      const group = o.apiVersion.includes('/') ? o.apiVersion.split('/')[0] : '';
      for (const verb of ['get', 'create', 'patch']) {
        const want = `${verb} ${group}/${plural[o.kind]} ns=${o.metadata.namespace ?? '*'} name=${o.metadata.name}`;
        assert.ok(grants.includes(want), `${want} (server-side apply of ${o.kind} ${o.metadata.name})`);
      }
    }
    assert.ok(grants.includes(`delete batch/jobs ns=cilium-migrate name=${inClusterRun.name}`), 'a finished run is replaced');
    assert.ok(grants.includes('get /pods/log ns=cilium-migrate name=*'), 'the follower reads the log');
    // Nothing by wildcard name but the log, nothing beyond these resources.
    assert.deepEqual(grants.filter((g) => g.endsWith('name=*')), ['get /pods/log ns=cilium-migrate name=*']);
    for (const d of docs.filter((x) => x.kind.endsWith('Binding'))) assert.deepEqual(d.subjects, [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'cilium-migrate' }]);
  });

  it('prints as a YAML stream kubectl reads, without anchors', () => {
    const text = objectsYaml(objects);
    assert.doesNotMatch(text, /[&*]a\d/);
    const docs = parseAllDocuments(text).map((d) => d.toJS() as { kind: string });
    assert.deepEqual(docs.map((d) => d.kind), objects.map((o) => o.kind));
  });
});

const jobView = (over: Partial<JobView> = {}): JobView => ({ name: inClusterRun.name, namespace: 'cilium-migrate', uid: 'j1', createdAt: new Date('2026-11-25T10:00:00Z'), annotations: {}, suspended: false, active: 1, failed: 0, args: [], ...over });
const podView = (name: string, over: Partial<RunPodView> = {}): RunPodView => ({ name, uid: `uid-${name}`, node: 'kind-worker', phase: 'Running', createdAt: new Date('2026-11-25T10:00:00Z'), deleting: false, started: true, ...over });

/** A RunSource that plays a script: each poll takes the next (job, pods); logs come from `logs`. */
function scripted(steps: { job?: JobView; pods: RunPodView[] }[], logs: Record<string, string[]>) {
  let i = 0;
  const followed: string[] = [];
  const source: RunSource = {
    job: async () => steps[Math.min(i, steps.length - 1)]!.job,
    pods: async () => steps[Math.min(i++, steps.length - 1)]!.pods,
    followLog: async (pod, onLine, signal) => {
      followed.push(pod);
      for (const l of logs[pod] ?? []) if (!signal.aborted) onLine(l);
    },
  };
  return { source, followed };
}
const instant = { sleep: async () => {} };

describe('following an in-cluster run', () => {
  it('says each pod change once, streams each pod\'s log, and ends with the Job: an evicted pod is followed by its successor', async () => {
    const a = podView('run-a');
    const { source, followed } = scripted(
      [
        { job: jobView(), pods: [podView('run-a', { phase: 'Pending', started: false, node: '' })] },
        { job: jobView(), pods: [a] },
        { job: jobView(), pods: [a] },
        { job: jobView(), pods: [{ ...a, deleting: true, disruption: 'EvictionByEvictionAPI: Eviction API: evicting' }] },
        { job: jobView(), pods: [{ ...a, phase: 'Failed', exitCode: 130, disruption: 'EvictionByEvictionAPI: Eviction API: evicting' }, podView('run-b', { node: 'kind-worker2' })] },
        { job: jobView({ active: 0, finished: { outcome: 'Complete', reason: 'CompletionsReached', message: '' } }), pods: [{ ...a, phase: 'Failed', exitCode: 130, disruption: 'EvictionByEvictionAPI: Eviction API: evicting' }, podView('run-b', { node: 'kind-worker2', phase: 'Succeeded', exitCode: 0 })] },
      ],
      { 'run-a': ['[kind-worker] drain: evicting 11 pods'], 'run-b': ['[kind-worker] drain: done', 'every node migrated'] },
    );
    const lines: string[] = [];
    const r = await followRun(source, (l) => lines.push(l), instant, new AbortController().signal, 1);
    assert.equal(r.end, 'complete');
    assert.deepEqual(followed, ['run-a', 'run-b'], 'each pod\'s log once');
    assert.deepEqual(lines, [
      'pod run-a (not scheduled yet): Pending',
      'pod run-a on kind-worker: Running',
      '[kind-worker] drain: evicting 11 pods',
      'pod run-a on kind-worker: stopped by the cluster (EvictionByEvictionAPI: Eviction API: evicting); it stops at a safe point and the Job starts another pod, which resumes',
      'pod run-b on kind-worker2: Running',
      '[kind-worker] drain: done',
      'every node migrated',
      'pod run-b on kind-worker2: finished (exit 0)',
    ]);
  });

  it('detaches on Ctrl-C without touching the run', async () => {
    const stop = new AbortController();
    const { source } = scripted([{ job: jobView(), pods: [podView('run-a')] }], {});
    let polls = 0;
    const r = await followRun({ ...source, job: async () => (++polls === 3 && stop.abort(), jobView()) }, () => {}, instant, stop.signal, 1);
    assert.equal(r.end, 'detached');
  });

  it('a cancelled run ends once its pod has stopped; a failed one carries its last pod\'s exit code', async () => {
    const stopping = scripted([
      { job: jobView({ suspended: true }), pods: [podView('run-a', { deleting: true })] },
      { job: jobView({ suspended: true, active: 0 }), pods: [] },
    ], {});
    assert.equal((await followRun(stopping.source, () => {}, instant, new AbortController().signal, 1)).end, 'cancelled');
    const failed = scripted([{ job: jobView({ finished: { outcome: 'Failed', reason: 'BackoffLimitExceeded', message: '' } }), pods: [podView('run-a', { phase: 'Failed', exitCode: 8 })] }], {});
    const r = await followRun(failed.source, () => {}, instant, new AbortController().signal, 1);
    assert.equal(r.end, 'failed');
    assert.equal(r.lastPod?.exitCode, ExitCode.gateFail);
    assert.equal((await followRun(scripted([{ pods: [] }], {}).source, () => {}, instant, new AbortController().signal, 1)).end, 'gone');
  });

  it('on --attach, replays no log of pods that had ended before, only the current pod\'s', async () => {
    const { source, followed } = scripted([{ job: jobView(), pods: [podView('old', { phase: 'Failed', exitCode: 130 }), podView('now')] }, { job: jobView({ finished: { outcome: 'Complete', reason: '', message: '' } }), pods: [podView('old', { phase: 'Failed', exitCode: 130 }), podView('now', { phase: 'Succeeded' })] }], {});
    await followRun(source, () => {}, instant, new AbortController().signal, 1);
    assert.deepEqual(followed, ['now']);
  });
});

describe('the run pod\'s progress on its Job', () => {
  const t = new Date('2026-11-25T10:00:00Z');
  const start: RunProgress = { pod: 'run-a', podNode: 'kind-worker', message: 'starting', at: t.toISOString() };

  it('folds the run\'s lines: its wave, the node a line is about, the last message', () => {
    let p = foldLine(start, 'migrating 3 nodes in this order: kind-worker, kind-worker2, kind-control-plane (2 waves of up to 2)', t);
    assert.equal(p.message, 'migrating 3 nodes in this order: kind-worker, kind-worker2, kind-control-plane (2 waves of up to 2)');
    p = foldLine(p, 'wave 1 of 2: kind-worker, kind-worker2', t);
    assert.deepEqual(p.wave, { index: 1, of: 2 });
    p = foldLine(p, '\r\x1b[K[kind-worker2] drain: waiting for 3 pods to go', t);
    assert.equal(p.node, 'kind-worker2');
    assert.equal(p.message, 'drain: waiting for 3 pods to go');
    assert.deepEqual(foldLine(p, '   ', t), p, 'blank lines change nothing');
  });

  it('passes every line through, writes the latest state at most every interval, and the end once more', async () => {
    const out: string[] = [];
    const written: RunProgress[] = [];
    let now = 0;
    const p = progressIo({ isTTY: false, out: (s) => out.push(s), err: (s) => out.push(s) }, { pod: 'run-a', podNode: 'kind-worker' }, async (x) => void written.push(x), { now: () => now }, 60_000);
    p.io.err('[kind-worker] cordon: done\n');
    await new Promise((r) => setTimeout(r, 20));
    p.io.err('[kind-worker] drain: evicting 11 pods\n');
    p.io.err('[kind-worker] drain: ');
    now = 1000;
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(written.length, 1, 'one write within the interval');
    assert.equal(written[0]!.message, 'cordon: done');
    await p.close('stopped: SIGTERM');
    assert.deepEqual(out, ['[kind-worker] cordon: done\n', '[kind-worker] drain: evicting 11 pods\n', '[kind-worker] drain: '], 'the log is unchanged');
    assert.equal(written.length, 2);
    assert.equal(written[1]!.message, 'stopped: SIGTERM');
    assert.equal(written[1]!.node, 'kind-worker');
    assert.equal(readProgress({ [inClusterRun.progressAnnotation]: JSON.stringify(written[1]) })?.message, 'stopped: SIGTERM');
    assert.equal(readProgress({ [inClusterRun.progressAnnotation]: '{bad' }), undefined);
  });

  it('a progress write that fails is said once and never stops the run', async () => {
    const errs: string[] = [];
    const p = progressIo({ isTTY: false, out: () => {}, err: (s) => errs.push(s) }, { pod: 'a', podNode: 'n' }, async () => { throw new Error('forbidden'); }, { now: () => 0 }, 0);
    p.io.err('x\n');
    await new Promise((r) => setTimeout(r, 20));
    p.io.err('y\n');
    await p.close();
    assert.equal(errs.filter((e) => e.startsWith('warning: could not record')).length, 1);
  });
});

describe('status: the in-cluster run', () => {
  it('names the Job, its pod and node, the wave, node and last message the run recorded', () => {
    const progress: RunProgress = { pod: 'run-b', podNode: 'kind-worker2', wave: { index: 2, of: 3 }, node: 'kind-worker', message: 'drain: evicting 2 pods', at: '2026-11-25T10:05:00.000Z' };
    const s = runStatus(jobView({ annotations: { [inClusterRun.progressAnnotation]: JSON.stringify(progress) } }), [podView('run-a', { phase: 'Failed', disruption: 'EvictionByEvictionAPI' }), podView('run-b', { node: 'kind-worker2' })]);
    assert.equal(s.state, 'running');
    assert.deepEqual(s.pod, { name: 'run-b', node: 'kind-worker2', phase: 'Running' });
    assert.equal(
      describeRunStatus(s),
      'in-cluster run: job cilium-migrate/cilium-migrate-run, running (started 2026-11-25T10:00:00.000Z, 2 pods)\n' +
        '  pod run-b on kind-worker2: Running\n' +
        '  wave 2 of 3, node kind-worker: drain: evicting 2 pods (2026-11-25T10:05:00.000Z, from pod run-b)\n',
    );
  });
  it('tells a cancelled run (suspended, pod gone) from one still stopping, and shows why a failed one failed', () => {
    assert.equal(runStatus(jobView({ suspended: true }), [podView('a', { deleting: true })]).state, 'stopping');
    assert.equal(runStatus(jobView({ suspended: true }), []).state, 'cancelled');
    const failed = runStatus(jobView({ finished: { outcome: 'Failed', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' } }), []);
    assert.equal(failed.state, 'failed');
    assert.match(describeRunStatus(failed), /BackoffLimitExceeded: Job has reached the specified backoff limit/);
  });
});

describe('run --in-cluster: every wave leaves the run pod a node to move to', () => {
  const node = (name: string, o: Partial<NodeView> = {}): NodeView => ({ name, uid: name, unschedulable: false, labels: {}, annotations: {}, providerID: '', bootID: '', ready: true, podCIDRs: [], controlPlane: false, taints: [], ...o });
  const cp = node('kind-control-plane', { controlPlane: true, taints: [{ key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' }] });
  const kind = [cp, node('kind-worker'), node('kind-worker2')];

  it('refuses a wave of every worker when the control plane is tainted (kind at --max-unavailable 2), and names the largest that works', () => {
    const stranded = strandedWaves([['kind-worker', 'kind-worker2'], ['kind-control-plane']], kind);
    assert.deepEqual(stranded.map((w) => w.wave), [1]);
    const { message, hint } = strandedMessage(stranded, 2);
    assert.match(message, /^wave 1 \(kind-worker, kind-worker2\) would cordon every node a run pod can run on \(kind-worker, kind-worker2\)/);
    assert.match(message, /; not for a run pod: kind-control-plane \(tainted node-role\.kubernetes\.io\/control-plane:NoSchedule\)$/);
    assert.match(hint, /--max-unavailable 1 or less/);
    assert.throws(() => refuseStrandedWaves([['kind-worker', 'kind-worker2'], ['kind-control-plane']], kind, 2), (e: Error & { exitCode?: number }) => e instanceof PreconditionError);
  });
  it('accepts one node at a time, and the control plane\'s own wave (the workers are hosts again)', () => {
    assert.deepEqual(strandedWaves([['kind-worker'], ['kind-worker2'], ['kind-control-plane']], kind), []);
  });
  it('a single worker: no wave can hand over; the hint says to run from a terminal', () => {
    const stranded = strandedWaves([['kind-worker'], ['kind-control-plane']], [cp, node('kind-worker')]);
    assert.deepEqual(stranded.map((w) => w.wave), [1]);
    assert.match(strandedMessage(stranded, 1).hint, /run it from a terminal/);
  });
  it('a node cordoned by its admin, NotReady or with NoExecute is no host; PreferNoSchedule is', () => {
    const nodes = [node('a'), node('b', { unschedulable: true }), node('c', { ready: false }), node('d', { taints: [{ key: 'x', effect: 'NoExecute' }] })];
    assert.deepEqual(strandedWaves([['a']], nodes).map((w) => w.hosts), [['a']]);
    assert.deepEqual(strandedWaves([['a']], [...nodes, node('e', { taints: [{ key: 'y', effect: 'PreferNoSchedule' }] })]), []);
  });
  it('a node our migration cordoned is a host again once its wave is done; one its admin cordoned is not', () => {
    const ours = node('a', { unschedulable: true, annotations: { [stateAnnotation]: JSON.stringify({ v: 1, startedBy: 'r', lastRun: 'r', startedAt: '2026-01-01T00:00:00Z', wasUnschedulable: false, cordonedByUs: true, bootID: '', steps: {} }) } });
    assert.deepEqual(strandedWaves([['a'], ['b']], [ours, node('b')]), []);
    // The node controller taints a cordoned node (node.kubernetes.io/unschedulable) and a NotReady
    // one, mid-restart: those follow the cordon and readiness, which end with the wave.
    const tainted = { ...ours, ready: false, taints: [{ key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' }, { key: 'node.kubernetes.io/not-ready', effect: 'NoExecute' }] };
    assert.deepEqual(strandedWaves([['a'], ['b']], [tainted, node('b')]), []);
    // Cilium taints a node while its restarted agent is not Ready yet (a cancel mid-restart-agent).
    const agentRestarting = { ...ours, taints: [{ key: 'node.cilium.io/agent-not-ready', effect: 'NoSchedule' }] };
    assert.deepEqual(strandedWaves([['a'], ['b']], [agentRestarting, node('b')]), []);
    assert.deepEqual(strandedWaves([['a'], ['b']], [node('a', { unschedulable: true }), node('b')]).map((w) => w.wave), [2]);
  });
});
