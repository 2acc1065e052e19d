// `status` and `plan` at 1,000 nodes with 30 application pods each, objects at realistic sizes
// (bench/scale-cluster.ts): the whole plugin process each time (start, kubeconfig, the LISTs, the
// computation, the table), its wall time and peak RSS, today's plugin against the one of
// BENCH_BASELINE_REF (before the LISTs were paginated and kept only the fields they use).
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { ControlPlane } from '../lab/control-plane.js';
import { bundleAt, describeRef } from './baseline.js';
import { timedNode } from './processes.js';
import { startScaleCluster } from './scale-cluster.js';
import { benchRun, controlPlaneVersions, median, spread, updateSection } from './report.js';

const nodeCount = Number(process.env.BENCH_NODES ?? 1000);
const podsPerNode = Number(process.env.BENCH_PODS_PER_NODE ?? 30);
const runs = Number(process.env.BENCH_RUNS ?? 3);
const baselineRef = process.env.BENCH_BASELINE_REF ?? '6e3241d';
const repoRoot = join(import.meta.dirname, '..');
const targetSeconds = 5;
const log = (l: string) => process.stderr.write(`[scale] ${l}\n`);

async function main(): Promise<void> {
  const run = benchRun();
  const baseline = await bundleAt(baselineRef, 'cmd/main.ts');
  let cp: ControlPlane | undefined;
  try {
    cp = await startScaleCluster({ nodes: nodeCount, podsPerNode, log });
    const pods = (await cp.get<{ items: unknown[]; metadata: { remainingItemCount?: number } }>('/api/v1/pods?limit=1'));
    const podCount = 1 + (pods.metadata.remainingItemCount ?? 0);
    const podBytes = Buffer.byteLength(JSON.stringify(pods.items[0]));
    const env = { PATH: process.env.PATH ?? '', HOME: cp.rootDir };
    const commands = [['status'], ['plan'], ['plan', '--max-unavailable', '50']];
    const rows: string[] = [];
    let slowest = 0;
    for (const [label, file] of [[`before (${baselineRef})`, baseline.file], ['after (today)', join(repoRoot, 'dist', 'kubectl-cilium_migrate')]] as const) {
      for (const args of commands) {
        const seconds: number[] = [];
        const peaks: number[] = [];
        for (let i = 0; i < runs; i++) {
          const r = await timedNode(file, [...args, '--kubeconfig', cp.kubeconfig], env);
          if (r.code !== 0) throw new Error(`${args.join(' ')} (${label}) exited ${r.code}: ${r.stderr.slice(-2000)}`);
          seconds.push(r.seconds);
          peaks.push(r.peakMiB);
          log(`${label.slice(0, 6)} ${args.join(' ')}: ${r.seconds.toFixed(2)} s, ${r.peakMiB.toFixed(0)} MiB`);
        }
        if (label.startsWith('after')) slowest = Math.max(slowest, median(seconds));
        rows.push(`| ${label} | \`${args.join(' ')}\` | ${spread(seconds, 2)} | ${spread(peaks, 0)} |`);
      }
    }
    const body = [
      `Command: \`make bench-scale-reads\` (bench/scale.ts; \`make bench-scale\` runs it at 1,000 nodes x 30 pods)${nodeCount !== 1000 || podsPerNode !== 30 ? `, here with BENCH_NODES=${nodeCount} BENCH_PODS_PER_NODE=${podsPerNode}` : ''}, ${runs} run${runs === 1 ? '' : 's'} of each command.`,
      run.machine(controlPlaneVersions),
      `The cluster (bench/scale-cluster.ts): ${nodeCount} kwok nodes (realistic Node objects, about 14 KiB of JSON each), a CiliumNode each, Cilium's and the probe agent's DaemonSets, the CiliumNodeConfig and ${podsPerNode * nodeCount} application pods in Deployments of 100 (env, probes, resources, volumes, managed fields: ${(podBytes / 1024).toFixed(1)} KiB of JSON a pod): ${podCount} pods in all. Each figure is the whole bundled plugin as a process: start, kubeconfig, the LISTs, the computation and the table; RSS is its peak (maxRSS, from the process\'s own resource usage at exit).`,
      `Before: the plugin of ${describeRef(baselineRef)}, which read every collection in one LIST through client-node's typed models. After: pods, nodes and CiliumNodes read in pages of 500 (limit/continue) as plain JSON, keeping only the fields the views use.`,
      '',
      '| plugin | command | wall time s, median (min-max) | peak RSS MiB |',
      '|---|---|---|---|',
      ...rows,
      '',
      `Target: each read under ${targetSeconds} s at ${nodeCount} nodes x ${podsPerNode} pods: ${slowest < targetSeconds ? 'MET' : `MISSED (slowest median ${slowest.toFixed(2)} s)`}. \`connectivity\` at this scale is measured in its own section; \`run\` in "End to end at 1,000 nodes".`,
      `Not covered: an API server over a network (here on loopback: a LIST of ${podCount} pods is mostly the API server's and the plugin's CPU), pods of more than one container, clusters with many namespaces of Secrets and ConfigMaps (not read).`,
    ].join('\n');
    process.stdout.write(`${body}\n`);
    updateSection(`status and plan at ${nodeCount.toLocaleString('en')} nodes x ${podsPerNode} pods`, body);
  } finally {
    await cp?.stop();
    rmSync(baseline.dir, { recursive: true, force: true });
  }
}

await main();
