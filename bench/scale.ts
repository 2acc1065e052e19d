// 1,000 simulated nodes (kwok) on the real control plane, shaped like a cluster half way through
// nothing yet: a cilium DaemonSet (1,000 agent pods), a CiliumNode per node, the CiliumNodeConfig
// and 1,000 nginx pods. Times `status` and `plan` (the whole plugin process, several runs), then
// lets `run --max-unavailable 50 --restart none` migrate for a fixed time and reports nodes per minute.
import { cpus, hostname } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { createSimulatedNodes, installCiliumCrds, scaleNodes } from '../lab/cluster-objects.js';
import { startControlPlane } from '../lab/control-plane.js';
import { ciliumDaemonSet } from '../test/harness/migration-cluster.js';
import { repoRoot, runPlugin } from '../test/harness/plugin.js';
import { waitFor } from './apiserver-requests.js';
import { spread } from './report.js';
import { updateSection } from './report.js';

const nodeCount = Number(process.env.BENCH_NODES ?? 1000);
const runs = Number(process.env.BENCH_RUNS ?? 3);
const runSeconds = Number(process.env.BENCH_RUN_SECONDS ?? 180);
const log = (l: string) => process.stderr.write(`${l}\n`);


async function main(): Promise<void> {
  // /26 per node: 1,024 node CIDRs fit in 10.244.0.0/16.
  const cp = await startControlPlane({ nodeCidrMaskSize: 26, progress: log });
  try {
    const setupStarted = Date.now();
    await installCiliumCrds(cp);
    await createSimulatedNodes(cp, scaleNodes(nodeCount), 600_000);
    log(`${nodeCount} nodes Ready after ${((Date.now() - setupStarted) / 1000).toFixed(0)}s`);
    const nodes = await cp.get<{ items: { metadata: { name: string }; spec: { podCIDR: string } }[] }>('/api/v1/nodes');
    for (let i = 0; i < nodes.items.length; i += 250) {
      const docs = nodes.items.slice(i, i + 250).map((n) => stringify({ apiVersion: 'cilium.io/v2', kind: 'CiliumNode', metadata: { name: n.metadata.name }, spec: { ipam: { podCIDRs: [n.spec.podCIDR] } } })).join('---\n');
      await cp.kubectl(['create', '-f', '-'], { input: docs, timeoutMs: 300_000 });
    }
    await cp.kubectl(['apply', '-f', '-'], { input: ciliumDaemonSet });
    await cp.kubectl(['apply', '--server-side', '-f', join(repoRoot, 'manifests', 'ciliumnodeconfig.yaml')]);
    await cp.kubectl(['create', 'deployment', 'nginx', '--image', 'nginx', '--replicas', String(nodeCount)]);
    await waitFor('agents and nginx Running', async () => {
      const ds = await cp.get<{ status: { numberReady?: number } }>('/apis/apps/v1/namespaces/kube-system/daemonsets/cilium');
      const dep = await cp.get<{ status: { availableReplicas?: number } }>('/apis/apps/v1/namespaces/default/deployments/nginx');
      log(`agents Ready ${ds.status.numberReady ?? 0}/${nodeCount}, nginx available ${dep.status.availableReplicas ?? 0}/${nodeCount}`);
      return ds.status.numberReady === nodeCount && dep.status.availableReplicas === nodeCount;
    }, 900_000);
    log(`cluster ready after ${((Date.now() - setupStarted) / 1000).toFixed(0)}s`);

    const env = { PATH: process.env.PATH ?? '', HOME: cp.rootDir };
    const timed = async (args: string[]) => {
      const started = performance.now();
      const r = await runPlugin([...args, '--kubeconfig', cp.kubeconfig], { env, timeoutMs: 300_000 });
      if (r.code !== 0) throw new Error(`${args.join(' ')} failed: ${r.stderr}`);
      return (performance.now() - started) / 1000;
    };
    const reads: Record<string, number[]> = { status: [], plan: [], 'plan --max-unavailable 50': [] };
    for (let i = 0; i < runs; i++) {
      reads.status!.push(await timed(['status']));
      reads.plan!.push(await timed(['plan']));
      reads['plan --max-unavailable 50']!.push(await timed(['plan', '--max-unavailable', '50']));
    }
    log(`reads: ${JSON.stringify(reads)}`);

    // `run` for a fixed time, then Ctrl-C: it stops at the next safe point of every node.
    const started = performance.now();
    let interrupted = false;
    const run = await runPlugin(['run', '--max-unavailable', '50', '--restart', 'none', '--gate', 'cluster-state', '--gate-rounds', '1', '--gate-interval', '1s', '--kubeconfig', cp.kubeconfig], {
      env,
      timeoutMs: (runSeconds + 300) * 1000,
      onStderr: (_t, kill) => {
        if (!interrupted && performance.now() - started > runSeconds * 1000) {
          interrupted = true;
          kill('SIGINT');
        }
      },
    });
    const elapsed = (performance.now() - started) / 1000;
    const status = JSON.parse((await runPlugin(['status', '-o', 'json', '--kubeconfig', cp.kubeconfig], { env })).stdout) as { summary: { migrated: number } };
    const migrated = status.summary.migrated;
    const perMinute = (migrated / elapsed) * 60;
    log(`run: exit ${run.code ?? run.signal}, ${migrated} migrated in ${elapsed.toFixed(0)}s`);

    const slowest = Math.max(...Object.values(reads).map((xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!));
    const body = [
      `Command: \`make bench-scale\` (bench/scale.ts), ${runs} runs of each read.`,
      `Machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'} (${hostname()}), Node ${process.version}; the real control plane (v1.36.5) with kwok v0.8.0 simulating the nodes on the same machine.`,
      `Cluster: ${nodeCount} kwok nodes (each with a /26 pod CIDR), a CiliumNode each, a cilium DaemonSet (${nodeCount} pods), the CiliumNodeConfig, and a ${nodeCount}-replica nginx Deployment: ${2 * nodeCount} pods. Each read is the whole plugin process (start, kubeconfig, the LISTs, the computation, the table).`,
      '',
      '| command | wall time s, median (min-max) |',
      '|---|---|',
      ...Object.entries(reads).map(([cmd, xs]) => `| \`${cmd}\` | ${spread(xs, 2)} |`),
      '',
      `\`run --max-unavailable 50 --restart none --gate-rounds 1\`: ${migrated} nodes migrated in ${elapsed.toFixed(0)} s (stopped with Ctrl-C after ${runSeconds} s, at the nodes' next safe point): **${perMinute.toFixed(0)} nodes per minute** (one run; kwok, the control plane and the plugin share the machine's ${cpus().length} cores).`,
      '',
      `Target: each read under 5 s: ${slowest < 5 ? 'MET' : `MISSED (slowest median ${slowest.toFixed(2)} s)`}. \`connectivity\` at this scale is measured in its own section.`,
    ].join('\n');
    process.stdout.write(`${body}\n`);
    updateSection(`Scale: ${nodeCount.toLocaleString('en')} simulated nodes`, body);
  } finally {
    await cp.stop();
  }
}

await main();
