// The seed's migration on the real-node lab, as `make demo` runs it (lab up, nginx and the agents,
// preflight, values, prepare, three nodes with --restart kind, finalize --apply, lab down), several times: the time of the
// migration part (from prepare to the end of finalize, each step followed by a green matrix on
// fresh evidence), the whole run, and the agents' probes sent and failed meanwhile.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchRun, spread } from './report.js';
import { updateSection } from './report.js';

const runs = Number(process.env.BENCH_RUNS ?? 3);
const labJs = join(import.meta.dirname, '..', 'dist', 'lab.js');

function demo(stateDir: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [labJs, 'demo', '--state-dir', stateDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('exit', (code) => resolve({ code: code ?? 1, out }));
  });
}

async function main(): Promise<void> {
  const run = benchRun();
  const migration: number[] = [];
  const total: number[] = [];
  const sent: number[] = [];
  const failed: number[] = [];
  for (let i = 0; i < runs; i++) {
    const stateDir = mkdtempSync(join(tmpdir(), 'bench-lab-'));
    try {
      const r = await demo(stateDir);
      if (r.code !== 0) throw new Error(`make demo failed (exit ${r.code}):\n${r.out.slice(-3000)}`);
      const at = (title: RegExp) => Number(new RegExp(`==> ${title.source}.*\\[\\+(\\d+)s\\]`).exec(r.out)?.[1] ?? NaN);
      migration.push(at(/kubectl cilium-migrate prepare/) >= 0 ? at(/summary/) - at(/kubectl cilium-migrate prepare/) : NaN);
      total.push(Number(/total time: (\d+)s/.exec(r.out)?.[1] ?? NaN));
      const probes = /probes sent: (\d+), failed: (\d+)/.exec(r.out);
      sent.push(Number(probes?.[1] ?? NaN));
      failed.push(Number(probes?.[2] ?? NaN));
      process.stderr.write(`run ${i + 1}: migration ${migration.at(-1)} s, total ${total.at(-1)} s, probes ${sent.at(-1)} sent, ${failed.at(-1)} failed\n`);
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
    }
  }
  const body = [
    `Command: \`make bench-lab\` (bench/lab-scenario.ts): \`make demo\`'s program (\`node dist/lab.js demo\`) ${runs} time${runs === 1 ? '' : 's'}${runs === 1 ? ' (BENCH_RUNS=1)' : ''}.`,
    run.machine(),
    'The lab: the real-node lab (`lab up`): the real control plane, three nodes with real kubelets and containerd, kube-proxy, Flannel from its manifest (VXLAN 8472), real Cilium 1.18.3 from its chart through helm in migration mode (VXLAN 8473), nginx with 10 replicas, a real probe agent per node. The migration part runs from `prepare` to the end of `finalize --apply` (three `node` runs with the default `--restart kind` through the lab\'s docker; the real `helm upgrade` to the final values, the agents restarted, Flannel removed; each step followed by `connectivity` until it passes on fresh evidence). Probes: every agent\'s probes of every peer (ICMP and HTTP) during the whole run, from the agents\' own counters; failed probes include those to pods while they were being drained and restarted.',
    '',
    '| figure | median (min-max) |',
    '|---|---|',
    `| migration part, s | ${spread(migration, 0)} |`,
    `| whole demo (lab up to summary), s | ${spread(total, 0)} |`,
    `| probes sent | ${spread(sent, 0)} |`,
    `| probes failed | ${spread(failed, 0)} |`,
    '',
    'The end-to-end test (test/integration/lab-e2e.test.ts) adds a traffic checker requesting every nginx pod from pods on both overlays during the same sequence and asserts that, during the node steps, no request failed except those to pods being drained, across the overlay the test breaks on purpose, from a node in its own step, or refused in a new nginx replica\'s first seconds (it has no readiness probe); failures during finalize\'s agent restarts are counted and shown, not asserted zero. The time of each node\'s steps is in "Per-node time on the lab".',
    'Not covered: more than three nodes; the set-up of the lab itself is in "Real-node lab".',
  ].join('\n');
  process.stdout.write(`${body}\n`);
  updateSection('Lab scenario: the seed migration on the local lab', body);
}

await main();
