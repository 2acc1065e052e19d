// The engine's cost per node beyond the drain: `kubectl cilium-migrate node` on five kwok nodes at
// once with --restart none and the cluster-state gate passing at once (one round), first on nodes
// holding no evictable pod (only the Cilium agent pod of its DaemonSet), then on nodes holding 20
// pods each. Wall time per node, and the requests the API server dispatched for the plugin's user.
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { installCiliumCrds } from '../lab/cluster-objects.js';
import { createSimulatedNodes } from '../lab/cluster-objects.js';
import { startControlPlane, type ControlPlane } from '../lab/control-plane.js';
import { ciliumStandIn, createCiliumNodes } from '../test/harness/migration-cluster.js';
import { repoRoot, runPlugin } from '../test/harness/plugin.js';
import { countedUser, dispatchedByFlowSchema, waitFor } from './apiserver-requests.js';
import { benchRun, controlPlaneVersions, spread } from './report.js';
import { updateSection } from './report.js';
import { requestKinds } from './request-kinds.js';

const runs = Number(process.env.BENCH_RUNS ?? 3);
const perRun = 5;


async function main(): Promise<void> {
  const run = benchRun();
  const cp: ControlPlane = await startControlPlane({ progress: (l) => process.stderr.write(`${l}\n`) });
  try {
    const names = (podsPerNode: number, run: number) => Array.from({ length: perRun }, (_, i) => `n${podsPerNode}-r${run}-${i}`);
    const all = [0, 20].flatMap((p) => Array.from({ length: runs }, (_, r) => names(p, r)).flat());
    await installCiliumCrds(cp);
    await createSimulatedNodes(cp, all.map((name) => ({ name, role: 'worker' as const })));
    await cp.kubectl(['apply', '-f', '-'], { input: ciliumStandIn() });
    await createCiliumNodes(cp, (_n, podCIDR) => [podCIDR]);
    await cp.kubectl(['apply', '--server-side', '-f', join(repoRoot, 'manifests', 'ciliumnodeconfig.yaml')]);
    // 20 pods on each node of the "20 pods" runs: one Deployment per node, pinned by nodeName.
    for (const n of all.filter((x) => x.startsWith('n20-'))) {
      await cp.kubectl(['create', 'deployment', n, '--image', 'nginx', '--replicas', '20']);
      await cp.kubectl(['patch', 'deployment', n, '-p', JSON.stringify({ spec: { template: { spec: { nodeSelector: { 'kubernetes.io/hostname': n } } } } })]);
    }
    await waitFor('pods and agents Running', async () => {
      const ds = await cp.get<{ status: { numberReady?: number } }>('/apis/apps/v1/namespaces/kube-system/daemonsets/cilium');
      const pods = await cp.get<{ items: { status: { phase?: string } }[] }>('/api/v1/namespaces/default/pods');
      return ds.status.numberReady === all.length && pods.items.filter((p) => p.status.phase === 'Running').length === 20 * perRun * runs;
    }, 300_000);
    const kubeconfig = await countedUser(cp, 'bench-plugin');
    const rows: string[] = [];
    const verdicts: string[] = [];
    // Each row's requests by kind, from the first run's trace (the plugin's own record of what it sent).
    const kinds: { pods: number; kinds: [string, number][]; total: number }[] = [];
    for (const pods of [0, 20]) {
      const seconds: number[] = [];
      const drains: number[] = [];
      const requests: number[] = [];
      for (let r = 0; r < runs; r++) {
        const before = (await dispatchedByFlowSchema(cp)).get('bench-plugin') ?? 0;
        const trace = join(cp.rootDir, `requests-${pods}-${r}.log`);
        rmSync(trace, { force: true });
        const started = performance.now();
        const res = await runPlugin(['node', ...names(pods, r), '--restart', 'none', '--gate', 'cluster-state', '--gate-rounds', '1', '-o', 'json', '--kubeconfig', kubeconfig], {
          env: { PATH: process.env.PATH ?? '', HOME: cp.rootDir, NODE_OPTIONS: `--import=${join(repoRoot, 'bench', 'request-trace.mjs')}`, BENCH_REQUEST_TRACE: trace },
          timeoutMs: 600_000,
        });
        if (res.code !== 0) throw new Error(`node failed: ${res.stderr}`);
        if (r === 0) {
          const lines = readFileSync(trace, 'utf8').split('\n').filter((l) => l.length > 0);
          kinds.push({ pods, kinds: requestKinds(lines, perRun), total: lines.length / perRun });
        }
        const wall = (performance.now() - started) / 1000;
        const drainSeconds = (JSON.parse(res.stdout) as { steps: { step: string; durationMs: number }[] }[]).reduce((sum, n) => sum + (n.steps.find((x) => x.step === 'drain')?.durationMs ?? 0) / 1000, 0);
        drains.push(drainSeconds / perRun);
        seconds.push((wall - drainSeconds) / perRun);
        requests.push((((await dispatchedByFlowSchema(cp)).get('bench-plugin') ?? 0) - before) / perRun);
        process.stderr.write(`${pods} pods, run ${r + 1}: ${seconds.at(-1)!.toFixed(2)} s beyond a ${drains.at(-1)!.toFixed(2)} s drain and ${requests.at(-1)} requests per node\n`);
      }
      rows.push(`| ${pods} | ${spread(seconds, 2)} | ${spread(drains, 2)} | ${spread(requests, 1)} | ${50 + 2 * pods} |`);
      const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
      verdicts.push(`${pods} pods: time ${med(seconds) < 2 ? 'met' : 'MISSED'}, requests ${med(requests) < 50 + 2 * pods ? 'met' : 'MISSED'}`);
    }
    const body = [
      `Command: \`make bench-node\` (bench/node-overhead.ts), ${runs} runs per row, each \`kubectl cilium-migrate node\` over ${perRun} kwok nodes one after another (the figure is per node: the run's total divided by ${perRun}, so the plugin's start and the lock are shared; "beyond the drain" is the wall time minus the drain steps' own durations from \`-o json\`).`,
      run.machine(controlPlaneVersions),
      'What this is: the engine\'s own cost per node, a ceiling for its speed, not the time a migration takes. Nothing here takes the time it takes on real nodes: `--restart none` (no restart), the cluster-state gate with one round (no probes, no waiting for samples), kwok\'s instant pods (a deleted pod is gone at once, a new one Ready at once). The time a migration takes is in "End to end at 1,000 nodes" and "Per-node time on the lab".',
      'Engine settings: `--restart none`, `--gate cluster-state --gate-rounds 1` (simulated nodes run no probe agents; the cluster-state gate passes at its first round), defaults otherwise. Every step runs: preconditions, lock, baseline gate, cordon, drain, label, replacing the Cilium agent pod (kwok makes the new one Ready), verify pod, gate, uncordon, the Events and the state annotations. Requests: what the API server dispatched for the plugin\'s user (`apiserver_flowcontrol_dispatched_requests_total`, a FlowSchema for that user), watches included.',
      '',
      '| evictable pods on the node | seconds per node beyond the drain, median (min-max) | the drain step itself, s | API requests per node (drain included), median (min-max) | request target (50 + 2 per pod) |',
      '|---|---|---|---|---|',
      ...rows,
      '',
      `Target: under 2 s and under 50 requests plus 2 per pod: ${verdicts.join('; ')}.`,
      '',
      `The requests per node by kind, from the first run of each row as the plugin sent them (bench/request-trace.mjs, preloaded into the plugin, records each request it starts; ${kinds.map((k) => `${k.total.toFixed(1)} per node with ${k.pods} pods`).join(', ')}). LIST is a GET of a collection, WATCH a GET with ?watch=true, NAME one object:`,
      '',
      `| request | ${kinds.map((k) => `per node, ${k.pods} pods`).join(' | ')} |`,
      `|---|${kinds.map(() => '---|').join('')}`,
      ...[...new Set(kinds.flatMap((k) => k.kinds.map(([kind]) => kind)))].map((kind) => `| ${kind} | ${kinds.map((k) => { const n = k.kinds.find(([x]) => x === kind)?.[1] ?? 0; return n === 0 ? '-' : String(Number(n.toFixed(1))); }).join(' | ')} |`),
      '',
      'Requests per node with no pods: 49.0 on 2026-11-25, 51.2 from f6dc2b8 (found on 2026-11-26 by bisecting with this benchmark, one run per commit), whose safety work had the cordon and the drain each read the node right before recording their intent (a GET nodes/NAME each). Since b963a1a both are judged on their intent\'s write, which answers with the node as it is then: the same look, without the read and without the gap between the look and the record; the count fell by exactly those 2.0.',
    ].join('\n');
    process.stdout.write(`${body}\n`);
    updateSection('Engine overhead per node (a ceiling, not a migration time)', body);
  } finally {
    await cp.stop();
  }
}

await main();
