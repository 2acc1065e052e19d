// Benchmark: what the probe agent costs a node at 10, 100 and 1,000 peers (RSS, CPU, probes per
// second, metric series), without the API server: the bundled agent as a real process on loopback
// with a peers file (discovery through the API server at 1,000 nodes is bench/discovery-scale.ts).
// Peers are 127.1.x.y addresses (all local, so ICMP is answered; HTTP reaches the agent itself,
// which answers with the wrong pod, so those probes count as failures, exercising the capped
// per-peer series). Then the fixed part: each library the agent loads, imported one after another
// into an empty Node process. Rewrites its section of BENCHMARKS.md.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchRun, updateSection } from './report.js';

const peerCounts = (process.env.BENCH_PEERS ?? '10,100,1000').split(',').map(Number);
const runs = Number(process.env.BENCH_RUNS ?? 3);
const measureMs = Number(process.env.BENCH_MEASURE_MS ?? 20_000);
const warmupMs = 5000;
const port = 18_080;
const agentJs = join(import.meta.dirname, '..', 'dist', 'agent.js');
const clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

interface Sample {
  rssMiB: number;
  cpuPercent: number;
  probesPerSecond: number;
  series: number;
  selected: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cpuTicks = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]);
};
const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
const probesTotal = (metrics: string) =>
  metrics.split('\n').filter((l) => l.startsWith('cilium_migrate_probes_total{')).reduce((s, l) => s + Number(l.split(' ').at(-1)), 0);

async function measure(peers: number, dir: string): Promise<Sample> {
  const file = join(dir, `peers-${peers}.json`);
  const agents = Array.from({ length: peers }, (_, i) => ({ node: `node-${i + 1}`, pod: `agent-${i + 1}`, ip: `127.1.${(i >> 7) + (i % 2 ? 128 : 0)}.${(i & 127) + 1}` }));
  writeFileSync(file, JSON.stringify({ agents, nodes: [], ciliumNodeCidrs: {} }));
  const child = spawn(process.execPath, [agentJs, '--peers-file', file, '--port', String(port), '--legacy-cidrs', '127.1.0.0/17', '--cilium-cidrs', '127.1.128.0/17'], {
    env: { PATH: process.env.PATH ?? '', NODE_NAME: 'node-0', POD_NAME: 'agent-0', POD_NAMESPACE: 'bench', POD_IP: '127.1.127.1' },
    stdio: 'ignore',
  });
  try {
    await sleep(warmupMs);
    const pid = child.pid!;
    const metricsText = async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const t0 = Date.now();
    const c0 = cpuTicks(pid);
    const p0 = probesTotal(await metricsText());
    let peakRss = 0;
    while (Date.now() - t0 < measureMs) {
      peakRss = Math.max(peakRss, rssMiB(pid));
      await sleep(500);
    }
    const elapsed = (Date.now() - t0) / 1000;
    const text = await metricsText();
    const row = (await (await fetch(`http://127.0.0.1:${port}/v1/row`)).json()) as { cells: unknown[] };
    return {
      rssMiB: peakRss,
      cpuPercent: (((cpuTicks(pid) - c0) / clockTicks) / elapsed) * 100,
      probesPerSecond: (probesTotal(text) - p0) / elapsed,
      series: text.split('\n').filter((l) => l && !l.startsWith('#')).length,
      selected: row.cells.length,
    };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0]!, median: s[Math.floor(s.length / 2)]!, max: s.at(-1)! };
};
const fmt = (xs: number[], digits = 1) => {
  const { min, median, max } = stats(xs);
  return `${median.toFixed(digits)} (${min.toFixed(digits)}-${max.toFixed(digits)})`;
};

/** RSS of an empty Node process, then after importing each library in turn (cumulative). */
function libraryCosts(): { name: string; mib: number }[] {
  const libs = ['express', 'undici', 'yargs', 'yaml', 'ping', 'prom-client', '@kubernetes/client-node'];
  const script = `const rss = () => process.memoryUsage().rss / 1048576; const out = [['node', rss()]];
for (const l of ${JSON.stringify(libs)}) { await import(l); globalThis.gc?.(); out.push([l, rss()]); }
console.log(JSON.stringify(out));`;
  const text = execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { cwd: join(import.meta.dirname, '..'), encoding: 'utf8' });
  return (JSON.parse(text) as [string, number][]).map(([name, mib]) => ({ name, mib }));
}

const run = benchRun();
const dir = mkdtempSync(join(tmpdir(), 'bench-agent-'));
try {
  const lines = [
    '| peers known | peers probed | RSS MiB | CPU % of one core | probes/s | metric series |',
    '|---|---|---|---|---|---|',
  ];
  let worstRss = 0;
  for (const peers of peerCounts) {
    const samples: Sample[] = [];
    for (let r = 0; r < runs; r++) {
      const s = await measure(peers, dir);
      samples.push(s);
      process.stderr.write(`peers=${peers} run=${r + 1}: rss=${s.rssMiB.toFixed(1)}MiB cpu=${s.cpuPercent.toFixed(1)}% probes/s=${s.probesPerSecond.toFixed(1)} series=${s.series} probed=${s.selected}\n`);
    }
    worstRss = Math.max(worstRss, ...samples.map((s) => s.rssMiB));
    lines.push(`| ${peers} | ${samples[0]!.selected} | ${fmt(samples.map((s) => s.rssMiB))} | ${fmt(samples.map((s) => s.cpuPercent))} | ${fmt(samples.map((s) => s.probesPerSecond))} | ${fmt(samples.map((s) => s.series), 0)} |`);
  }
  const libs = libraryCosts();
  const agentLibs = libs.filter((l) => l.name !== '@kubernetes/client-node');
  const fixed = agentLibs.at(-1)!.mib;
  const clientNode = libs.at(-1)!.mib - fixed;
  const libText = libs.map((l, i) => (i === 0 ? `Node itself ${l.mib.toFixed(0)} MiB` : `${l.name} ${l.mib - libs[i - 1]!.mib >= 0 ? '+' : ''}${(l.mib - libs[i - 1]!.mib).toFixed(1)}`)).join(', ');
  const verdict =
    worstRss < 80
      ? `met (peak ${worstRss.toFixed(1)} MiB)`
      : `MISSED (peak ${worstRss.toFixed(1)} MiB). Why: nearly all of it is fixed cost, not per-peer cost (the 10-peer row costs about the same): the libraries the agent loads come to ${fixed.toFixed(0)} MiB in an empty process before it holds a single sample; the rest is the heap's working room. express, undici, prom-client and ping stay in use for what they do (the project's rules), so what the agent keeps is not where 80 MiB can be won: it would take a lighter runtime or V8 heap limits, which trade memory for garbage-collection CPU (not measured here)`;
  const body = [
    `Command: \`make bench-agent\` (bench/agent-resources.ts). ${runs} runs per row, each ${measureMs / 1000} s after a ${warmupMs / 1000} s warm-up; medians with min-max.`,
    run.machine(),
    'Agent defaults: interval 5 s, timeout 1 s, full mesh up to 50 peers, a ring of 5 per overlay above, ICMP + HTTP. No API server: peers come from a peers file (discovery at 1,000 nodes is in "Agent with 1,000-node discovery"); peers are loopback addresses, half of them in the "legacy" range and half in the "cilium" one, the agent itself on "legacy". "Peers known" is the cluster size the agent sees, "peers probed" the ones its ring selects. RSS is the peak VmRSS while measuring, CPU the agent process\'s user + system time.',
    '',
    ...lines,
    '',
    `The fixed part, each library imported in turn from node_modules (unbundled) into an empty Node process (\`node --expose-gc -e\`, RSS after each import and a collection): ${libText}. The agent does not load @kubernetes/client-node: its own list-and-watch client (lib/kube-lite.ts) saves those ${clientNode.toFixed(0)} MiB on every node.`,
    '',
    `Target: under 80 MiB RSS at 1,000 peers: ${verdict}. Series stay O(1) per agent (aggregates plus at most 50 failing-peer series), so O(N) for the cluster.`,
    'Not covered: discovery through an API server (peers come from a file here; with 1,000 nodes watched, see "Agent with 1,000-node discovery"), probes that time out (every peer answers on loopback), the icmp-large probe (off by default), a pod\'s cgroup accounting (page cache and the forked `ping` processes count there, not in the agent\'s RSS).',
  ].join('\n');
  updateSection('Agent: RSS, CPU and series by peer count', body);
  process.stdout.write(body + '\n');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
