// Per-node time on the local lab (lab/, the emulated nodes `make demo` runs): the seed's three nodes migrated one by one
// with `kubectl cilium-migrate node NODE -o json`, restarted through the lab (`--restart exec` with
// `lab restart-node`), every other setting at the plugin's defaults (the matrix gate: 2 passing
// rounds 10 s apart). Each step's own duration comes from the plugin's JSON; the figures are the
// median over the three nodes (and over BENCH_RUNS labs). What the steps measure is what the lab
// runs. The real-node lab (real kubelets and containerd) has no Cilium agent yet, so the migration
// cannot run on it; once it does (issue "real Cilium"), drop `emulated` and the same benchmark
// measures real steps.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { labDown, labUp } from '../lab/cli.js';
import { statePaths } from '../lab/daemon.js';
import { prepareStep, seedOrder } from '../lab/demo.js';
import { removeOnExit } from '../lab/process.js';
import { deployWorkloads, scenario } from '../lab/scenario.js';
import { benchRun, median, spread, updateSection } from './report.js';

const runs = Number(process.env.BENCH_RUNS ?? 1);
const repoRoot = join(import.meta.dirname, '..');
const steps = ['drain', 'restart-agent', 'restart-node', 'verify', 'gate'] as const;
const log = (l: string) => process.stderr.write(`[lab-node] ${l}\n`);

async function main(): Promise<void> {
  const run = benchRun();
  const per: Record<string, number[]> = Object.fromEntries([...steps, 'total'].map((s) => [s, []]));
  for (let i = 0; i < runs; i++) {
    const stateDir = mkdtempSync(join(tmpdir(), 'bench-lab-node-'));
    removeOnExit(stateDir);
    try {
      await labUp({ stateDir, nodes: 3, emulated: true, progress: log, labJs: join(repoRoot, 'dist', 'lab.js') });
      const s = scenario({ kubeconfig: statePaths(stateDir).kubeconfig, distDir: join(repoRoot, 'dist'), stateDir });
      await deployWorkloads(s);
      await prepareStep(s, log);
      for (const node of seedOrder(['kind-control-plane', 'kind-worker', 'kind-worker2'])) {
        const started = Date.now();
        const r = await s.plugin(['node', node, ...s.restartFlags(), '-o', 'json']);
        if (r.code !== 0) throw new Error(`node ${node} failed (exit ${r.code}): ${r.stderr.slice(-2000)}`);
        const result = (JSON.parse(r.stdout) as { steps: { step: string; durationMs: number }[] }[])[0]!;
        for (const st of steps) per[st]!.push((result.steps.find((x) => x.step === st)?.durationMs ?? NaN) / 1000);
        per.total!.push((Date.now() - started) / 1000);
        log(`run ${i + 1}, ${node}: ${result.steps.map((x) => `${x.step} ${(x.durationMs / 1000).toFixed(1)}s`).join(', ')}`);
      }
    } finally {
      await labDown({ stateDir, progress: log }).catch((err: Error) => log(`lab down: ${err.message}`));
      rmSync(stateDir, { recursive: true, force: true });
    }
  }
  const body = [
    `Command: \`make bench-lab-node\` (bench/lab-node.ts), ${runs} lab${runs === 1 ? '' : 's'} of three nodes; medians over the nodes (min-max).`,
    run.machine(),
    'The emulated lab `make demo` uses (`lab up --emulated`: the real control plane; kubelet, the container runtime and the CNI plugins emulated by lab/runtime.ts), nginx with 10 replicas and the probe agents, `prepare`, then `kubectl cilium-migrate node NODE -o json` for kind-worker, kind-worker2, kind-control-plane with `--restart exec --restart-command "lab restart-node {node}"` and the defaults otherwise (matrix gate, 2 rounds 10 s apart, 3 fresh samples per focus cell). Step durations from the plugin\'s own JSON; "node, whole" is the plugin process from start to exit.',
    '',
    '| step | seconds, median (min-max) |',
    '|---|---|',
    ...[...steps, 'total'].map((st) => `| ${st === 'total' ? 'node, whole' : st} | ${spread(per[st]!)} |`),
    '',
    `Slowest step by median: ${[...steps].sort((a, b) => median(per[b]!) - median(per[a]!))[0]}.`,
    'Not covered: real kubelets, containerd and the real Cilium agent. The real-node lab (real kubelets and containerd) runs no Cilium yet (issue "real Cilium"), so the migration runs on the emulated lab, whose node restart, agent restart and pod start are its own; rerun this section on the real lab once Cilium runs there.',
  ].join('\n');
  process.stdout.write(`${body}\n`);
  updateSection('Per-node time on the lab', body);
}

await main();
