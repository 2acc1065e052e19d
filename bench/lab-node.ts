// Per-node time on the local lab (lab/: real kubelets, containerd, Flannel and Cilium from its
// chart): the seed's three nodes migrated one by one with `kubectl cilium-migrate node NODE -o json`
// at the plugin's defaults: restarted with `--restart kind` through the lab's `docker` (first on
// PATH, as for a kind cluster), the matrix gate (2 passing rounds 10 s apart) over the probe agents
// applied from manifests/agent. Each step's own duration comes from the plugin's JSON; the figures
// are the median over the three nodes (and over BENCH_RUNS labs).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentNamespace } from '../lib/defaults.js';
import { labDown, labUp } from '../lab/cli.js';
import { statePaths } from '../lab/daemon.js';
import { seedOrder } from '../lab/demo.js';
import { api } from '../lab/lab-api.js';
import { removeOnExit } from '../lab/process.js';
import { scenario } from '../lab/scenario.js';
import { waitUntil } from '../lab/wait.js';
import { benchRun, median, spread, updateSection } from './report.js';

const runs = Number(process.env.BENCH_RUNS ?? 1);
const repoRoot = join(import.meta.dirname, '..');
const steps = ['drain', 'restart-agent', 'restart-node', 'verify', 'gate'] as const;
const log = (l: string) => process.stderr.write(`[lab-node] ${l}\n`);

async function main(): Promise<void> {
  const run = benchRun();
  const per: Record<string, number[]> = Object.fromEntries([...steps, 'total'].map((s) => [s, []]));
  const path = process.env.PATH ?? '';
  for (let i = 0; i < runs; i++) {
    const stateDir = mkdtempSync(join(tmpdir(), 'bench-lab-node-'));
    removeOnExit(stateDir);
    try {
      const lab = await labUp({ stateDir, nodes: 3, progress: log, labJs: join(repoRoot, 'dist', 'lab.js') });
      // The plugin's `--restart kind` runs `docker`: the lab's, first on PATH.
      process.env.PATH = `${join(stateDir, 'bin')}:${path}`;
      const s = scenario({ kubeconfig: statePaths(stateDir).kubeconfig, distDir: join(repoRoot, 'dist'), stateDir });
      s.kubectl(['apply', '-k', join(repoRoot, 'manifests', 'agent')]);
      await waitUntil('the probe agents Ready', async () => {
        const ds = await api<{ status: { numberReady?: number; desiredNumberScheduled?: number } }>(s.kube, 'GET', `/apis/apps/v1/namespaces/${agentNamespace}/daemonsets/cilium-migrate-agent`);
        return (ds.status.desiredNumberScheduled ?? 0) > 0 && ds.status.numberReady === ds.status.desiredNumberScheduled ? true : undefined;
      }, 300_000);
      const prepare = await s.plugin(['prepare'], log);
      if (prepare.code !== 0) throw new Error(`prepare failed (exit ${prepare.code}): ${prepare.stderr.slice(-2000)}`);
      for (const node of seedOrder(lab.nodes.map((n) => n.name))) {
        const started = Date.now();
        const r = await s.plugin(['node', node, '-o', 'json']);
        if (r.code !== 0) throw new Error(`node ${node} failed (exit ${r.code}): ${r.stderr.slice(-2000)}`);
        const result = (JSON.parse(r.stdout) as { steps: { step: string; durationMs: number }[] }[])[0]!;
        for (const st of steps) per[st]!.push((result.steps.find((x) => x.step === st)?.durationMs ?? NaN) / 1000);
        per.total!.push((Date.now() - started) / 1000);
        log(`run ${i + 1}, ${node}: ${result.steps.map((x) => `${x.step} ${(x.durationMs / 1000).toFixed(1)}s`).join(', ')}`);
      }
    } finally {
      process.env.PATH = path;
      await labDown({ stateDir, progress: log }).catch((err: Error) => log(`lab down: ${err.message}`));
      rmSync(stateDir, { recursive: true, force: true });
    }
  }
  const body = [
    `Command: \`make bench-lab-node\` (bench/lab-node.ts), ${runs} lab${runs === 1 ? '' : 's'} of three nodes; medians over the nodes (min-max).`,
    run.machine(),
    'The lab as `lab up` makes it (real kubelets and containerd, kube-proxy, Flannel, Cilium in migration mode from its chart, nginx with 10 replicas), the probe agents from manifests/agent, `prepare`, then `kubectl cilium-migrate node NODE -o json` for kind-worker, kind-worker2, kind-control-plane at the defaults: `--restart kind` through the lab\'s `docker`, the matrix gate (2 rounds 10 s apart, 3 fresh samples per focus cell). Step durations from the plugin\'s own JSON; "node, whole" is the plugin process from start to exit.',
    '',
    '| step | seconds, median (min-max) |',
    '|---|---|',
    ...[...steps, 'total'].map((st) => `| ${st === 'total' ? 'node, whole' : st} | ${spread(per[st]!)} |`),
    '',
    `Slowest step by median: ${[...steps].sort((a, b) => median(per[b]!) - median(per[a]!))[0]}.`,
    'Not covered: nodes on separate machines (every node here shares the same 2 cores), more than three nodes.',
  ].join('\n');
  process.stdout.write(`${body}\n`);
  updateSection('Per-node time on the lab', body);
}

await main();
