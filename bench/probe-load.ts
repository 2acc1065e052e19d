// Probe load during a wave: what each agent sends and what a node being migrated receives, at
// 1,000 nodes with 50 of them in focus (--max-unavailable 50), and what a probe costs.
//
// 1. The schedule: the agent's own code (agent/view.ts picks the peers, agent/prober.ts paces the
//    probes) for every one of the 1,000 agents, on a virtual clock, with probes that answer at
//    once and are counted by source and destination. No network: this is what the agents ask of
//    the network, by construction, with the focus budget (--focus-probe-share) and without it.
// 2. The cost of a probe: the real agent (dist/agent.js) probing 100 loopback peers (a peers file)
//    with ICMP only, then HTTP only, at the same rate: its CPU, and the CPU of the `ping` processes
//    it forks (counted when they are reaped, as the pod's cgroup counts them).
// 3. The cost of being a focus node: the real agent answering /v1/ping at the rate part 1 says a
//    focus node receives (ICMP echo is answered by the kernel, not the agent).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAgentConfig } from '../agent/config.js';
import type { ClusterView } from '../agent/discovery.js';
import { MatrixStore, peerKey } from '../agent/matrix.js';
import { Prober, type Probes } from '../agent/prober.js';
import { identityOf, peersOf } from '../agent/view.js';
import { freePort } from '../lab/control-plane.js';
import { migrationLabel } from '../lib/defaults.js';
import { cpuSeconds, rssMiB } from './processes.js';
import { benchRun, median, updateSection } from './report.js';
import { removeOnExit } from '../lab/process.js';

const nodeCount = Number(process.env.BENCH_NODES ?? 1000);
const waveSizes = (process.env.BENCH_WAVES ?? '50,200').split(',').map(Number);
const simSeconds = Number(process.env.BENCH_SIM_SECONDS ?? 40);
const warmupSeconds = 10;
const tickMs = 100;
const measureMs = Number(process.env.BENCH_MEASURE_MS ?? 20_000);
const repoRoot = join(import.meta.dirname, '..');
const agentJs = join(repoRoot, 'dist', 'agent.js');
const log = (l: string) => process.stderr.write(`[probe-load] ${l}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface ScheduleResult {
  sentPerAgent: number[];
  focusSentPerAgent: number[];
  receivedByFocusNode: number[];
  receivedByOtherNode: number[];
  /** Non-focus cells whose longest gap between two probes exceeded two intervals (stale). */
  staleCells: number;
  otherCells: number;
  /** Mean time between two probes of a focus cell, per cell. */
  focusGapsS: number[];
}

/** Part 1: every agent's peer selection and prober on a virtual clock. */
async function schedule(waveSize: number, focusShare: number): Promise<ScheduleResult> {
  const env = { NODE_NAME: 'x', POD_NAME: 'x', POD_NAMESPACE: 'cilium-migrate', POD_IP: '10.244.0.1' };
  const cfg = await parseAgentConfig([], env);
  const name = (i: number) => `node-${String(i).padStart(4, '0')}`;
  // Half way through the migration: the first half on Cilium, the next `waveSize` being migrated
  // (their agents restarted on Cilium), the rest still on the legacy overlay.
  const migrated = (i: number) => i < nodeCount / 2;
  const inWave = (i: number) => i >= nodeCount / 2 && i < nodeCount / 2 + waveSize;
  const ip = (i: number) => `10.${migrated(i) || inWave(i) ? 245 : 244}.${Math.floor(i / 250)}.${(i % 250) + 1}`;
  const view: ClusterView = {
    agents: Array.from({ length: nodeCount }, (_, i) => ({ node: name(i), pod: `agent-${i}`, ip: ip(i) })),
    nodes: Array.from({ length: nodeCount }, (_, i) => ({
      name: name(i), addresses: [`172.20.${i >> 8}.${i & 255}`],
      labels: (migrated(i) || inWave(i) ? { [migrationLabel]: 'true' } : {}) as Record<string, string>,
      phase: migrated(i) ? 'migrated' : inWave(i) ? 'gate' : undefined,
    })),
    ciliumNodeCidrs: {},
  };
  const focusIps = new Set(Array.from({ length: nodeCount }, (_, i) => i).filter(inWave).map(ip));
  let now = 0;
  const measuring = () => now >= warmupSeconds * 1000;
  const sent = new Array<number>(nodeCount).fill(0);
  const focusSent = new Array<number>(nodeCount).fill(0);
  const received = new Map<string, number>();
  const last = new Map<string, number>();
  const maxGap = new Map<string, number>();
  const gaps = new Map<string, { sum: number; n: number }>();
  const probers: Prober[] = [];
  const otherCells: string[] = [];
  for (let i = 0; i < nodeCount; i++) {
    const self = { node: name(i), pod: `agent-${i}`, namespace: 'cilium-migrate', ip: ip(i), version: 'bench' };
    const identity = identityOf(self, view, cfg);
    const store = new MatrixStore(cfg.windowMs, 100, () => now);
    const peers = peersOf(self, identity, view, cfg);
    store.setPeers(peers);
    // A cell is in focus when either end is (an agent on a node in focus probes all its peers at the focus pace).
    if (!inWave(i)) for (const p of peers) if (!focusIps.has(p.ref.ip)) for (const protocol of p.protocols) otherCells.push(`${i}|${protocol === 'http' ? peerKey(p.ref) : p.ref.ip}|${protocol}`);
    const count = (dst: string, protocol: string, key: string) => {
      if (!measuring()) return;
      sent[i]!++;
      if (focusIps.has(dst)) focusSent[i]!++;
      received.set(dst, (received.get(dst) ?? 0) + 1);
      const cell = `${i}|${key}|${protocol}`;
      // The first gap runs from the start of the measurement.
      const prev = last.get(cell) ?? warmupSeconds * 1000;
      {
        maxGap.set(cell, Math.max(maxGap.get(cell) ?? 0, now - prev));
        if (last.has(cell)) {
          const g = gaps.get(cell) ?? { sum: 0, n: 0 };
          g.sum += now - prev;
          g.n++;
          gaps.set(cell, g);
        }
      }
      last.set(cell, now);
    };
    const probes: Probes = {
      icmp: async (dst) => (count(dst, 'icmp', dst), { ok: true, rttMs: 1 }),
      icmpLarge: async (dst) => (count(dst, 'icmp-large', dst), { ok: true, rttMs: 1 }),
      http: async (peer) => (count(peer.ip, 'http', peerKey(peer)), { ok: true, rttMs: 1 }),
    };
    probers.push(new Prober(store, probes, { intervalMs: cfg.intervalMs, focusIntervalMs: cfg.focusIntervalMs, timeoutMs: cfg.timeoutMs, maxPerSecond: cfg.maxPerSecond, focusShare, jitter: cfg.jitter }, undefined, () => now, Math.random));
  }
  for (now = 0; now <= simSeconds * 1000; now += tickMs) {
    for (const p of probers) p.runDue();
    await new Promise((r) => setImmediate(r));
  }
  const seconds = simSeconds - warmupSeconds;
  return {
    sentPerAgent: sent.map((n) => n / seconds),
    focusSentPerAgent: focusSent.map((n) => n / seconds),
    receivedByFocusNode: [...focusIps].map((a) => (received.get(a) ?? 0) / seconds),
    receivedByOtherNode: view.agents.filter((a) => !focusIps.has(a.ip)).map((a) => (received.get(a.ip) ?? 0) / seconds),
    // The last gap runs to the end of the measurement; a cell never probed is one long gap.
    staleCells: otherCells.filter((c) => Math.max(maxGap.get(c) ?? 0, simSeconds * 1000 - (last.get(c) ?? warmupSeconds * 1000)) > 2 * cfg.intervalMs).length,
    otherCells: otherCells.length,
    focusGapsS: [...gaps].filter(([c]) => focusIps.has(c.split('|')[1]!.split('@').pop()!) || inWave(Number(c.split('|')[0]))).map(([, g]) => g.sum / g.n / 1000),
  };
}

/** Starts the real agent on loopback with a peers file of `peers` loopback addresses. */
function startAgent(dir: string, port: number, peers: number, args: string[]): ChildProcess {
  const file = join(dir, `peers-${peers}.json`);
  const agents = Array.from({ length: peers }, (_, i) => ({ node: `node-${i + 1}`, pod: `agent-${i + 1}`, ip: `127.1.${i >> 7}.${(i & 127) + 1}` }));
  writeFileSync(file, JSON.stringify({ agents, nodes: [], ciliumNodeCidrs: {} }));
  return spawn(process.execPath, [agentJs, '--peers-file', file, '--port', String(port), '--cilium-cidrs', '127.2.0.0/16', '--full-mesh-max', String(peers + 1), ...args], {
    env: { PATH: process.env.PATH ?? '', NODE_NAME: 'node-0', POD_NAME: 'agent-0', POD_NAMESPACE: 'bench', POD_IP: '127.1.127.200' },
    stdio: 'ignore',
  });
}

async function stopAgent(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
}

const probesTotal = async (port: number) =>
  (await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).split('\n').filter((l) => l.startsWith('cilium_migrate_probes_total{')).reduce((s, l) => s + Number(l.split(' ').at(-1)), 0);

/** CPU of the agent (own, and its reaped children) and probes per second over `measureMs`. */
async function measureAgent(child: ChildProcess, port: number): Promise<{ own: number; children: number; probes: number; rss: number }> {
  await sleep(5000);
  const pid = child.pid!;
  const [own0, all0, p0, t0] = [cpuSeconds(pid), cpuSeconds(pid, true), await probesTotal(port), Date.now()];
  let rss = 0;
  while (Date.now() - t0 < measureMs) {
    rss = Math.max(rss, rssMiB(pid).now);
    await sleep(500);
  }
  const s = (Date.now() - t0) / 1000;
  const own = cpuSeconds(pid) - own0;
  return { own: own / s, children: (cpuSeconds(pid, true) - all0 - own) / s, probes: ((await probesTotal(port)) - p0) / s, rss };
}

async function main(): Promise<void> {
  const run = benchRun();
  const lines: string[] = [];
  // Part 1.
  const sched: Record<string, ScheduleResult> = {};
  for (const wave of waveSizes) {
    for (const share of [0.6, 1]) {
      log(`schedule of ${nodeCount} agents, ${wave} in focus, focus share ${share}`);
      sched[`${wave}/${share}`] = await schedule(wave, share);
    }
  }
  const cfg = await parseAgentConfig([], { NODE_NAME: 'x', POD_NAME: 'x', POD_NAMESPACE: 'x', POD_IP: '10.0.0.1' });
  const f1 = (xs: number[]) => `${median(xs).toFixed(1)} (max ${Math.max(...xs).toFixed(1)})`;
  lines.push(
    `### What the agents ask of the network (${nodeCount} nodes, a wave in focus)`,
    '',
    `The agents' own peer selection and prober (agent/view.ts, agent/prober.ts) for all ${nodeCount} agents on a virtual clock, ${simSeconds - warmupSeconds} s after ${warmupSeconds} s of warm-up; probes answer at once and are counted. Half the nodes migrated, a wave in its gate (in focus: ${waveSizes.join(' or ')} nodes, \`--max-unavailable\`), the rest on the legacy overlay; agent defaults: interval ${cfg.intervalMs / 1000} s, ${cfg.focusIntervalMs / 1000} s for focus cells, at most ${cfg.maxPerSecond} probes/s, ICMP and HTTP, a ring of ${cfg.ringSize} per overlay above ${cfg.fullMeshMax} peers plus every focus node. Medians over agents (nodes), max in brackets.`,
    '',
    '| in focus | focus budget | probes/s sent per agent | of them to focus nodes | probes/s received by a focus node | by another node | focus cell probed every, s | cells outside the focus stale (a gap over 2 intervals) |',
    '|---|---|---|---|---|---|---|---|',
    ...waveSizes.flatMap((wave) => [0.6, 1].map((share) => {
      const r = sched[`${wave}/${share}`]!;
      return `| ${wave} | ${share === 1 ? 'none (one global limit, as before)' : `${share} of the limit (default)`} | ${f1(r.sentPerAgent)} | ${f1(r.focusSentPerAgent)} | ${f1(r.receivedByFocusNode)} | ${f1(r.receivedByOtherNode)} | ${median(r.focusGapsS).toFixed(1)} | ${r.staleCells} of ${r.otherCells} |`;
    })),
    '',
    `Every agent probes every node in focus (the gate needs every cell towards it), so a focus node receives about (agents x 2 protocols) / (the focus cell interval) probes per second, and the focus budget is what bounds it. Other cells left stale: ${waveSizes.map((w) => `${w} in focus, ${sched[`${w}/1`]!.staleCells} without the budget and ${sched[`${w}/0.6`]!.staleCells} with it`).join('; ')}. A small overlay class is probed by every agent's ring for that class (the first Cilium node of a migration: about agents x 2 / 5 s).`,
    '',
  );

  // Parts 2 and 3.
  const dir = mkdtempSync(join(tmpdir(), 'bench-probe-cost-'));
  removeOnExit(dir);
  try {
    const port = await freePort();
    const cost: Record<string, Awaited<ReturnType<typeof measureAgent>>> = {};
    for (const protocols of ['icmp', 'http']) {
      // 100 peers every 4 s: 25 probes per second of one kind.
      const child = startAgent(dir, port, 100, ['--protocols', protocols, '--interval', '4s', '--max-probes-per-second', '100']);
      try {
        cost[protocols] = await measureAgent(child, port);
        log(`${protocols}: ${JSON.stringify(cost[protocols])}`);
      } finally {
        await stopAgent(child);
      }
    }
    const perProbe = (c: (typeof cost)[string]) => ((c.own + c.children) / c.probes) * 1000;
    const received = Math.round(median(sched[`${waveSizes[0]}/0.6`]!.receivedByFocusNode) / 2);
    // Part 3: a quiet agent (2 peers) answering `received` HTTP probes per second from 100 connections.
    const child = startAgent(dir, port, 2, []);
    let idle: Awaited<ReturnType<typeof measureAgent>>;
    let loaded: Awaited<ReturnType<typeof measureAgent>>;
    try {
      idle = await measureAgent(child, port);
      const load = spawn(process.execPath, ['--input-type=module', '-e', `
        import { Agent, request } from 'undici';
        const dispatcher = new Agent({ connections: 100 });
        const rate = ${received};
        const url = 'http://127.0.0.1:${port}/v1/ping';
        let next = performance.now();
        for (;;) {
          next += 1000 / rate;
          request(url, { dispatcher }).then((r) => r.body.dump(), () => {});
          const wait = next - performance.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        }`], { cwd: repoRoot, stdio: 'ignore' });
      try {
        loaded = await measureAgent(child, port);
      } finally {
        load.kill('SIGKILL');
      }
    } finally {
      await stopAgent(child);
    }
    const icmpShare = (cost.icmp!.own + cost.icmp!.children) / (cost.icmp!.own + cost.icmp!.children + cost.http!.own + cost.http!.children);
    lines.push(
      '### What a probe costs, measured',
      '',
      'The bundled agent (`dist/agent.js`) as a process, probing 100 peers on loopback addresses (a peers file, no API server) every 4 s with one kind of probe: 25 probes per second. ICMP: one `ping -c 1` process per probe, forked through the `ping` package; its CPU is the children\'s (cutime + cstime, counted as the processes are reaped, and counted by a pod\'s cgroup all the same). HTTP: undici to each peer\'s `/v1/ping`; the peers are the agent itself, so the figure includes serving the request (every agent in a cluster serves about as many as it sends; these answer with the wrong pod and count as failures, which changes nothing of the work). ' + `${measureMs / 1000} s measured after 5 s.`,
      '',
      '| probe | probes/s | agent CPU, % of a core | forked ping processes, % of a core | CPU per probe, ms |',
      '|---|---|---|---|---|',
      ...(['icmp', 'http'] as const).map((p) => `| ${p === 'icmp' ? 'ICMP (ping)' : 'HTTP'} | ${cost[p]!.probes.toFixed(1)} | ${(cost[p]!.own * 100).toFixed(1)} | ${(cost[p]!.children * 100).toFixed(1)} | ${perProbe(cost[p]!).toFixed(2)} |`),
      '',
      `A focus node's agent answering HTTP probes at ${received}/s (half of what part 1 says a focus node receives; the other half is ICMP, answered by the kernel) from 100 keep-alive connections: ${(loaded.own * 100).toFixed(1)} % of a core, against ${(idle.own * 100).toFixed(1)} % idle; RSS ${loaded.rss.toFixed(0)} MiB.`,
      '',
      `Forking \`ping\`: ICMP costs ${perProbe(cost.icmp!).toFixed(2)} ms of CPU per probe against ${perProbe(cost.http!).toFixed(2)} ms for HTTP (${(icmpShare * 100).toFixed(0)} % of the two together), ${perProbe(cost.icmp!) > 2 * perProbe(cost.http!) ? 'so the fork is the larger cost of a probe' : 'so the fork is not the larger cost of a probe'}. At the default budget an agent sends at most ${cfg.maxPerSecond} probes/s, half of them ICMP: about ${((perProbe(cost.icmp!) * cfg.maxPerSecond) / 2 / 10).toFixed(1)} % of a core for ICMP at the limit.`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const body = [
    `Command: \`make bench-probe-load\` (bench/probe-load.ts).`,
    run.machine(),
    '',
    ...lines,
    '',
    'Not covered: real networks (loss, latency, a probe that times out holds its slot for the timeout: 1 s), the icmp-large probe (off by default), several agents sharing a node\'s CPU.',
  ].join('\n');
  process.stdout.write(`${body}\n`);
  updateSection('Probe load during a wave, and what a probe costs', body);
}

await main();
