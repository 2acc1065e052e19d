// Draining a node, ours against real `kubectl drain`, on work that takes time: pods that need their
// whole grace period to stop, replacements Ready only some seconds after they are scheduled, and a
// PodDisruptionBudget that lets 5 of its 20 pods go at a time, so evictions meet 429s (asserted:
// a run without one measures nothing about the budget and fails). 100 and 500 pods on the node,
// several runs each, ours and kubectl alternating on the same control plane.
//
// The time is split from what the API server shows both clients alike (a watch on the pods): when
// the last eviction of an unguarded pod was accepted (sending the evictions), when the last pod
// under the budget was (the waits for the budget), when the last evicted pod was gone
// (termination), and when the drain returned. Requests per client from the API server's own
// counters (a FlowSchema per client user), 429s and eviction requests from apiserver_request_total.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { defaultDrainFlags } from '../cmd/cluster/drain-filter.js';
import { systemClock } from '../lib/clock.js';
import { defaultDrainOptions, drainNode } from '../cmd/engine/drain.js';
import { kubeEngineCluster } from '../cmd/cluster/kube-cluster.js';
import { defaultBinDir, startControlPlane, type ControlPlane } from '../lab/control-plane.js';
import { connect } from '../lib/kube.js';
import { liteCredentials, liteKube } from '../lib/kube-lite.js';
import { apiserverMetrics, countedUser, dispatchedByFlowSchema, sumMetric, waitFor } from './apiserver-requests.js';
import { benchKwokStages, readyAfterAnnotation } from './kwok-stages.js';
import { createRealisticNodes, realisticDeployment } from './realistic-objects.js';
import { benchRun, controlPlaneVersions, median, spread, updateSection } from './report.js';
import { removeOnExit } from '../lab/process.js';

const runs = Number(process.env.BENCH_RUNS ?? 3);
const sizes = (process.env.BENCH_DRAIN_PODS ?? '100,500').split(',').map(Number);
/** Every pod takes this long to stop once evicted (its whole grace period). */
const graceSeconds = Number(process.env.BENCH_GRACE_SECONDS ?? 5);
/** A replacement pod is Ready this long after it is scheduled. */
const readyAfterSeconds = Number(process.env.BENCH_READY_AFTER_SECONDS ?? 3);
const guarded = 20;
const maxUnavailable = 5;
const target = 'drain-a';
const others = ['drain-b', 'drain-c'];
const log = (l: string) => process.stderr.write(`[drain] ${l}\n`);

interface PodEvent { uid: string; app: string; node: string; acceptedAt?: number; goneAt?: number }

/** Follows every pod in default: when its deletion was accepted (deletionTimestamp) and when it was gone. */
function podObserver(cp: ControlPlane) {
  const kube = liteKube(liteCredentials(cp.kubeconfig));
  const pods = new Map<string, PodEvent>();
  const ctl = new AbortController();
  const run = async () => {
    while (!ctl.signal.aborted) {
      const list = await kube.request('GET', '/api/v1/namespaces/default/pods');
      const body = list.body as { metadata: { resourceVersion: string }; items: PodObj[] };
      for (const p of body.items) see('ADDED', p);
      await kube.watch(`/api/v1/namespaces/default/pods?watch=1&resourceVersion=${body.metadata.resourceVersion}`, (e) => {
        const { type, object } = e as { type: string; object: PodObj };
        if (type !== 'BOOKMARK' && type !== 'ERROR') see(type, object);
      }, ctl.signal).catch(() => {});
    }
  };
  type PodObj = { metadata: { uid: string; labels?: Record<string, string>; deletionTimestamp?: string }; spec: { nodeName?: string } };
  const see = (type: string, p: PodObj) => {
    const now = Date.now();
    const e = pods.get(p.metadata.uid) ?? { uid: p.metadata.uid, app: p.metadata.labels?.app ?? '', node: p.spec.nodeName ?? '' };
    e.node ||= p.spec.nodeName ?? '';
    if (p.metadata.deletionTimestamp && e.acceptedAt === undefined) e.acceptedAt = now;
    if (type === 'DELETED') e.goneAt ??= now;
    pods.set(p.metadata.uid, e);
  };
  void run();
  return { pods, stop: () => ctl.abort() };
}

async function populate(cp: ControlPlane, size: number): Promise<void> {
  await cp.kubectl(['delete', 'deployment,pdb', '--all', '-n', 'default', '--wait=true'], { timeoutMs: 600_000 });
  await waitFor('the old pods to go', async () => (await cp.get<{ items: unknown[] }>('/api/v1/namespaces/default/pods')).items.length === 0, 600_000);
  await cp.kubectl(['uncordon', target]);
  for (const n of others) await cp.kubectl(['cordon', n]);
  const opts = { graceSeconds, annotations: { [readyAfterAnnotation]: `${readyAfterSeconds}s` } };
  const docs = [
    realisticDeployment('free', size - guarded, opts),
    realisticDeployment('guarded', guarded, opts),
    { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { name: 'guarded', namespace: 'default' }, spec: { maxUnavailable, selector: { matchLabels: { app: 'guarded' } } } },
  ];
  await cp.kubectl(['apply', '-f', '-'], { input: docs.map((d) => stringify(d)).join('---\n') });
  await waitFor(`${size} pods Ready on ${target}`, async () => {
    const pods = await cp.get<{ items: { spec: { nodeName?: string }; status: { conditions?: { type: string; status: string }[] } }[] }>('/api/v1/namespaces/default/pods');
    return pods.items.filter((p) => p.spec.nodeName === target && p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).length === size;
  }, 600_000, 1000);
  await waitFor('the budget computed', async () => (await cp.get<{ status?: { disruptionsAllowed?: number } }>('/apis/policy/v1/namespaces/default/poddisruptionbudgets/guarded')).status?.disruptionsAllowed === maxUnavailable);
  for (const n of others) await cp.kubectl(['uncordon', n]);
}

interface Measured {
  seconds: number;
  unguardedAccepted: number;
  guardedAccepted: number;
  lastGone: number;
  requests: number;
  evictions: number;
  tooMany: number;
}

async function measure(cp: ControlPlane, observer: ReturnType<typeof podObserver>, user: string, drain: () => Promise<void>): Promise<Measured> {
  const before = await apiserverMetrics(cp);
  const dispatched = (await dispatchedByFlowSchema(cp)).get(user) ?? 0;
  const onNode = [...observer.pods.values()].filter((p) => p.node === target && p.goneAt === undefined && p.acceptedAt === undefined);
  const t0 = Date.now();
  await drain();
  const seconds = (Date.now() - t0) / 1000;
  const after = await apiserverMetrics(cp);
  const at = (pred: (p: PodEvent) => boolean, field: 'acceptedAt' | 'goneAt') => {
    const times = onNode.filter(pred).map((p) => p[field]);
    if (times.some((t) => t === undefined)) throw new Error(`a pod of ${target} has no ${field} after the drain`);
    return (Math.max(...(times as number[])) - t0) / 1000;
  };
  const evictions = (text: string, ...f: string[]) => sumMetric(text, 'apiserver_request_total', 'resource="pods"', 'subresource="eviction"', ...f);
  return {
    seconds,
    unguardedAccepted: at((p) => p.app === 'free', 'acceptedAt'),
    guardedAccepted: at((p) => p.app === 'guarded', 'acceptedAt'),
    lastGone: at(() => true, 'goneAt'),
    requests: ((await dispatchedByFlowSchema(cp)).get(user) ?? 0) - dispatched,
    evictions: evictions(after) - evictions(before),
    tooMany: evictions(after, 'code="429"') - evictions(before, 'code="429"'),
  };
}

async function main(): Promise<void> {
  const run = benchRun();
  const stageDir = mkdtempSync(join(tmpdir(), 'bench-drain-stages-'));
  removeOnExit(stageDir);
  // A /22 per node: the drained node holds up to 500 pods, each with an IP of its node's range.
  const cp = await startControlPlane({ kwokStages: benchKwokStages(defaultBinDir(), stageDir), nodeCidrMaskSize: 22, progress: log });
  const observer = podObserver(cp);
  try {
    await createRealisticNodes(cp, [target, ...others].map((name) => ({ name, role: 'worker' as const })), { podsCapacity: 1000 });
    const oursConfig = await countedUser(cp, 'bench-ours');
    const kubectlConfig = await countedUser(cp, 'bench-kubectl');
    const ours = kubeEngineCluster(connect({ kubeconfig: oursConfig }));
    const rows: string[] = [];
    const verdicts: string[] = [];
    for (const size of sizes) {
      const results = { ours: [] as Measured[], kubectl: [] as Measured[] };
      for (let i = 0; i < runs; i++) {
        await populate(cp, size);
        results.ours.push(await measure(cp, observer, 'bench-ours', async () => {
          await ours.patchNode(target, { unschedulable: true });
          await drainNode(ours, target, { ...defaultDrainFlags, ...defaultDrainOptions, deleteEmptyDirData: true, timeoutMs: 30 * 60_000 }, systemClock, () => {});
        }));
        log(`${size} pods, run ${i + 1}, ours: ${JSON.stringify(results.ours.at(-1))}`);
        await populate(cp, size);
        results.kubectl.push(await measure(cp, observer, 'bench-kubectl', async () => {
          await cp.kubectl(['--kubeconfig', kubectlConfig, 'drain', target, '--ignore-daemonsets', '--delete-emptydir-data', '--timeout=30m'], { timeoutMs: 31 * 60_000, env: { ...process.env, KUBECONFIG: kubectlConfig } });
        }));
        log(`${size} pods, run ${i + 1}, kubectl: ${JSON.stringify(results.kubectl.at(-1))}`);
        for (const [who, r] of [['ours', results.ours.at(-1)!], ['kubectl drain', results.kubectl.at(-1)!]] as const) {
          if (r.tooMany < 1) throw new Error(`${who}, ${size} pods, run ${i + 1}: no eviction was answered 429, so the budget never held the drain back; the run measures nothing about it`);
        }
      }
      for (const [who, rs] of [['ours', results.ours], ['kubectl drain', results.kubectl]] as const) {
        const col = (f: (r: Measured) => number, d = 1) => spread(rs.map(f), d);
        rows.push(`| ${size} | ${who} | ${col((r) => r.unguardedAccepted)} | ${col((r) => r.guardedAccepted)} | ${col((r) => r.lastGone)} | ${col((r) => r.seconds)} | ${col((r) => r.evictions, 0)} | ${col((r) => r.tooMany, 0)} | ${col((r) => r.requests, 0)} |`);
      }
      const m = (rs: Measured[], f: (r: Measured) => number) => median(rs.map(f));
      const time = m(results.ours, (r) => r.seconds) / m(results.kubectl, (r) => r.seconds);
      const reqs = m(results.ours, (r) => r.requests) / m(results.kubectl, (r) => r.requests);
      verdicts.push(`${size} pods: time ours/kubectl ${time.toFixed(2)} (${time <= 1.05 ? 'met' : 'MISSED'}), requests ${reqs.toFixed(2)} (${reqs < 1 ? 'met' : 'MISSED'})`);
    }
    const body = [
      `Command: \`make bench-drain\` (bench/drain.ts), ${runs} runs per size, ours and kubectl alternating on the same control plane. Medians with min-max.`,
      run.machine(controlPlaneVersions),
      `The work: three kwok nodes (realistic Node objects, bench/realistic-objects.ts); on the drained one a Deployment of N-${guarded} pods and one of ${guarded} pods under a PodDisruptionBudget with maxUnavailable ${maxUnavailable}. Every pod has terminationGracePeriodSeconds ${graceSeconds} and is deleted only when it is over (kwok stage bench/kwok-stages/pod-delete.yaml, as a process that needs its whole grace period to stop); a replacement is Ready ${readyAfterSeconds} s after it is scheduled (kwok's pod-ready with a delay, bench/kwok-stages.ts), so the budget frees a slot only when a replacement is Ready elsewhere. Every run met at least one 429 (checked).`,
      'Both evict pods with emptyDir volumes (the pods have a /tmp emptyDir, as many services do). Ours: the engine\'s cordon and `drainNode` with its defaults (10 evictions in flight, UID preconditions, at least 5 s after a 429, one LIST of the node\'s pods per second while waiting). kubectl: `kubectl drain NODE --ignore-daemonsets --delete-emptydir-data --timeout=30m`, whose client is limited to 5 requests per second with bursts of 10 (client-go\'s defaults; kubectl drain has no flag to raise them, and kubectl\'s global flags have none either: only its discovery client gets 50/s), sends one eviction per pod, retries a 429 after 5 s and polls each evicted pod with a GET every second until it is gone.',
      'Columns: seconds from the start of the drain (the cordon) until the last eviction of an unguarded pod was accepted (sending the evictions), until the last pod under the budget was (the waits for the budget), until the last evicted pod was gone (termination), and until the drain returned; all from a watch on the pods, the same for both clients. Eviction requests and 429s: `apiserver_request_total` for pods/eviction during the drain. Requests: everything the API server dispatched for that client (`apiserver_flowcontrol_dispatched_requests_total`, a FlowSchema per client user), watches and GETs included.',
      'Not covered: real kubelets and containers (kwok simulates them; a real process may stop before its grace period is over, which shortens termination for both drains alike), PodDisruptionBudgets spread over several nodes, DaemonSet pods (none here), network latency to a remote API server (both ran on loopback).',
      '',
      '| pods | drain | unguarded evictions accepted, s | guarded evictions accepted, s | last pod gone, s | drain returned, s | eviction requests | of them 429 | API requests |',
      '|---|---|---|---|---|---|---|---|---|',
      ...rows,
      '',
      `Target: no slower than kubectl drain and fewer requests: ${verdicts.join('; ')}.`,
    ].join('\n');
    process.stdout.write(`${body}\n`);
    updateSection('Drain: ours against kubectl drain, on pods that take time to stop', body);
  } finally {
    observer.stop();
    await cp.stop();
    rmSync(stageDir, { recursive: true, force: true });
  }
}

await main();
