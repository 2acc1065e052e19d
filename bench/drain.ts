// Draining a node with 100 pods (20 of them under a PodDisruptionBudget that lets 5 go at a time)
// on the real control plane: our drain (cordon + drainNode, as the engine's cordon and drain steps
// do) against real `kubectl drain`, back to back on the same cluster, several runs each. Wall
// time, and the requests the API server dispatched for each client (bench/apiserver-requests.ts).
import { hostname } from 'node:os';
import { cpus } from 'node:os';
import { createSimulatedNodes } from '../lab/cluster-objects.js';
import { startControlPlane, type ControlPlane } from '../lab/control-plane.js';
import { defaultDrainFlags } from '../cmd/cluster/drain-filter.js';
import { systemClock } from '../lib/clock.js';
import { defaultDrainOptions, drainNode } from '../cmd/engine/drain.js';
import { kubeEngineCluster } from '../cmd/cluster/kube-cluster.js';
import { connect } from '../lib/kube.js';
import { countedUser, dispatchedByFlowSchema, spread, waitFor } from './apiserver-requests.js';
import { updateSection } from './report.js';

const runs = Number(process.env.BENCH_RUNS ?? 3);
const target = 'drain-a';
const others = ['drain-b', 'drain-c'];


/** 80 free pods and 20 under a budget, all on the target node (the others cordoned meanwhile). */
async function populate(cp: ControlPlane): Promise<void> {
  await cp.kubectl(['delete', 'deployment,pdb', '--all', '-n', 'default', '--wait=true'], { timeoutMs: 180_000 });
  await waitFor('the old pods to go', async () => (await cp.get<{ items: unknown[] }>('/api/v1/namespaces/default/pods')).items.length === 0);
  await cp.kubectl(['uncordon', target]);
  for (const n of others) await cp.kubectl(['cordon', n]);
  await cp.kubectl(['create', 'deployment', 'free', '--image', 'nginx', '--replicas', '80']);
  await cp.kubectl(['create', 'deployment', 'guarded', '--image', 'nginx', '--replicas', '20']);
  await cp.kubectl(['create', 'pdb', 'guarded', '--selector', 'app=guarded', '--max-unavailable', '5']);
  await waitFor('100 pods Running on the target', async () => {
    const pods = await cp.get<{ items: { spec: { nodeName?: string }; status: { phase?: string } }[] }>('/api/v1/namespaces/default/pods');
    return pods.items.filter((p) => p.spec.nodeName === target && p.status.phase === 'Running').length === 100;
  });
  await waitFor('the budget computed', async () => (await cp.get<{ status?: { disruptionsAllowed?: number } }>('/apis/policy/v1/namespaces/default/poddisruptionbudgets/guarded')).status?.disruptionsAllowed === 5);
  for (const n of others) await cp.kubectl(['uncordon', n]);
}

async function measure(cp: ControlPlane, user: string, drain: () => Promise<void>): Promise<{ seconds: number; requests: number }> {
  const before = (await dispatchedByFlowSchema(cp)).get(user) ?? 0;
  const started = performance.now();
  await drain();
  const seconds = (performance.now() - started) / 1000;
  const after = (await dispatchedByFlowSchema(cp)).get(user) ?? 0;
  return { seconds, requests: after - before };
}

async function main(): Promise<void> {
  const cp = await startControlPlane({ progress: (l) => process.stderr.write(`${l}\n`) });
  try {
    await createSimulatedNodes(cp, [target, ...others].map((name) => ({ name, role: 'worker' as const })));
    const oursConfig = await countedUser(cp, 'bench-ours');
    const kubectlConfig = await countedUser(cp, 'bench-kubectl');
    const ours = kubeEngineCluster(connect({ kubeconfig: oursConfig }));
    const results = { ours: [] as { seconds: number; requests: number }[], kubectl: [] as { seconds: number; requests: number }[] };
    for (let i = 0; i < runs; i++) {
      await populate(cp);
      results.ours.push(await measure(cp, 'bench-ours', async () => {
        await ours.patchNode(target, { unschedulable: true });
        await drainNode(ours, target, { ...defaultDrainFlags, ...defaultDrainOptions }, systemClock, () => {});
      }));
      process.stderr.write(`run ${i + 1} ours: ${JSON.stringify(results.ours.at(-1))}\n`);
      await populate(cp);
      results.kubectl.push(await measure(cp, 'bench-kubectl', async () => {
        await cp.kubectl(['--kubeconfig', kubectlConfig, 'drain', target, '--ignore-daemonsets', '--timeout=10m'], { timeoutMs: 660_000, env: { ...process.env, KUBECONFIG: kubectlConfig } });
      }));
      process.stderr.write(`run ${i + 1} kubectl: ${JSON.stringify(results.kubectl.at(-1))}\n`);
    }
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const timeRatio = med(results.ours.map((r) => r.seconds)) / med(results.kubectl.map((r) => r.seconds));
    const reqRatio = med(results.ours.map((r) => r.requests)) / med(results.kubectl.map((r) => r.requests));
    const body = [
      `Command: \`make bench-drain\` (bench/drain.ts), ${runs} runs each, ours and kubectl alternating on the same control plane.`,
      `Machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'} (${hostname()}), Node ${process.version}; kube-apiserver, controller manager, scheduler, kubectl v1.36.5 and kwok v0.8.0 built from their Go modules.`,
      'Setup per run: three kwok nodes; on the drained one 80 pods of a Deployment and 20 of another under a PodDisruptionBudget with maxUnavailable 5 (so evictions meet 429s). Both drains cordon, evict through the Eviction API and wait until every evicted pod is gone. Ours: the engine\'s cordon and `drainNode` with its defaults (10 evictions in flight, at least 5 s after a 429). kubectl: `kubectl drain NODE --ignore-daemonsets`.',
      'Requests: what the API server dispatched for each client, read from its own `apiserver_flowcontrol_dispatched_requests_total` (a FlowSchema per client user), watches included.',
      '',
      '| drain | wall time s, median (min-max) | API requests, median (min-max) |',
      '|---|---|---|',
      `| ours | ${spread(results.ours.map((r) => r.seconds))} | ${spread(results.ours.map((r) => r.requests), 0)} |`,
      `| kubectl drain | ${spread(results.kubectl.map((r) => r.seconds))} | ${spread(results.kubectl.map((r) => r.requests), 0)} |`,
      '',
      `Ratio ours/kubectl (medians): time ${timeRatio.toFixed(2)}, requests ${reqRatio.toFixed(2)}. Target: no slower than kubectl and fewer requests: ${timeRatio <= 1.05 && reqRatio < 1 ? 'MET' : `MISSED (${timeRatio > 1.05 ? 'slower' : ''}${timeRatio > 1.05 && reqRatio >= 1 ? ', ' : ''}${reqRatio >= 1 ? 'not fewer requests' : ''})`}.`,
    ].join('\n');
    process.stdout.write(`${body}\n`);
    updateSection('Drain: 100 pods, ours against kubectl drain', body);
  } finally {
    await cp.stop();
  }
}

await main();
