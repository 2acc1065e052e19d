// The whole migration of a large simulated cluster with the plugin's defaults: `run
// --max-unavailable 50` with the matrix gate (2 passing rounds 10 s apart, 3 fresh samples per
// focus cell, 95 %), where things take the time they take on real nodes:
// - Cilium's agent pod is Ready 20 s after it is created (kwok's pod-ready with a delay);
// - a node restart takes 60 s: `--restart exec` runs a command that sets an annotation on the Node,
//   and a kwok stage (bench/kwok-stages/node-restart.yaml) reports a new boot ID a minute later,
//   which is what the engine waits for (cmd/engine/restart.ts);
// - application pods take their 5 s grace period to stop, and are Ready 3 s after they start;
// - the probe agents are simulated: one HTTP server in a lab network namespace that owns every pod
//   IP serves each agent's row, with as many samples since the asked time as an agent at its
//   defaults would have taken (a focus cell every 2 s, or slower when the wave's focus cells exceed
//   the focus budget of 30 probes/s; others every 5 s), all reachable, focus nodes probed by every
//   agent. The API server reaches it through the lab's egress proxy, as in the integration tests.
// Measured: the total time, the time per wave, and the reads of the matrix (pod-proxy GETs).
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAgentConfig } from '../agent/config.js';
import { defaultBinDir, type ControlPlane } from '../lab/control-plane.js';
import { createTopology, type Topology } from '../lab/netns.js';
import { agentNamespace, agentPodSelector, defaultConnectivity, defaultGate, migrationLabel } from '../lib/defaults.js';
import { liteCredentials, liteKube } from '../lib/kube-lite.js';
import { reflect, type KubeObject } from '../lib/kube-watch.js';
import { runPlugin } from '../test/harness/plugin.js';
import { apiserverMetrics, sumMetric } from './apiserver-requests.js';
import { benchKwokStages, readyAfterAnnotation, restartBootIdAnnotation, restartDurationAnnotation } from './kwok-stages.js';
import { startScaleCluster } from './scale-cluster.js';
import { benchRun, controlPlaneVersions, median, updateSection } from './report.js';
import { removeOnExit } from '../lab/process.js';

const nodeCount = Number(process.env.BENCH_NODES ?? 1000);
const maxUnavailable = Number(process.env.BENCH_MAX_UNAVAILABLE ?? 50);
const podsPerNode = Number(process.env.BENCH_PODS_PER_NODE ?? 10);
// Diagnostics: the plugin's log with the seconds since the run started (BENCH_PLUGIN_LOG, a file),
// and its CPU profile (BENCH_CPU_PROF, a directory for node --cpu-prof).
const pluginLog = process.env.BENCH_PLUGIN_LOG;
const cpuProfileDir = process.env.BENCH_CPU_PROF;
const agentReadySeconds = 20;
const restartSeconds = 60;
const targetSeconds = 2 * 3600;
const repoRoot = join(import.meta.dirname, '..');
const log = (l: string) => process.stderr.write(`[e2e-scale] ${l}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// The simulated agents. state.json (written by the benchmark from a watch on the Nodes) says which
// nodes are labelled for Cilium and which are in focus; samples are counted from the asked time.
const rowServer = `
const http = require('node:http');
const fs = require('node:fs');
const [agentsFile, stateFile, cfgJson] = process.argv.slice(2);
const cfg = JSON.parse(cfgJson);
const agents = JSON.parse(fs.readFileSync(agentsFile, 'utf8'));
const byIp = new Map(agents.map((a, i) => [a.ip, i]));
let state = { cilium: [], focus: [] };
let cilium = new Set();
let focus = new Set();
const load = () => { try { state = JSON.parse(fs.readFileSync(stateFile, 'utf8')); cilium = new Set(state.cilium); focus = new Set(state.focus); } catch {} };
load();
fs.watchFile(stateFile, { interval: 200 }, load);
// The agents have been running for a while when the migration starts.
const startedAt = Date.now() - 600000;
const iso = (t) => new Date(t).toISOString();
const overlay = (node) => (cilium.has(node) ? 'cilium' : 'legacy');
http.createServer((req, res) => {
  const i = byIp.get(req.socket.localAddress.replace(/^::ffff:/, ''));
  const url = new URL(req.url, 'http://x');
  if (i === undefined || url.pathname !== '/v1/row') { res.writeHead(404).end(); return; }
  const now = Date.now();
  const sinceText = url.searchParams.get('since');
  const since = sinceText ? Date.parse(sinceText) : now - cfg.windowMs;
  const a = agents[i];
  // Focus cells come at the focus interval, or as fast as the focus budget allows for all of them.
  const focusPeriod = Math.max(cfg.focusIntervalMs, (2 * Math.max(1, focus.size) / (cfg.maxPerSecond * cfg.focusShare)) * 1000);
  const peers = new Set();
  for (let k = 1; k <= cfg.ringSize * 2; k++) peers.add(agents[(i + k) % agents.length]);
  for (const b of agents) if (focus.has(b.node)) peers.add(b);
  peers.delete(a);
  const cells = [];
  for (const p of peers) {
    const inFocus = focus.has(p.node) || focus.has(a.node);
    const period = inFocus ? focusPeriod : cfg.intervalMs;
    const from = Math.max(since, startedAt, now - cfg.windowMs);
    const n = Math.max(0, Math.floor((now - from) / period));
    const stats = ['icmp', 'http'].map((protocol) => n === 0
      ? { protocol, samples: 0, successes: 0, successRatio: null, rttP50Ms: null, rttP90Ms: null, rttP99Ms: null, firstSampleAt: null, lastSampleAt: null, lastSuccessAt: null, lastFailureAt: null, lastError: null }
      : { protocol, samples: n, successes: n, successRatio: 1, rttP50Ms: 0.3, rttP90Ms: 0.5, rttP99Ms: 0.8, firstSampleAt: iso(from + 1), lastSampleAt: iso(from + n * period), lastSuccessAt: iso(from + n * period), lastFailureAt: null, lastError: null });
    cells.push({ peer: { node: p.node, pod: p.pod, ip: p.ip, overlay: overlay(p.node) }, focus: inFocus, stats });
  }
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ schema: 'cilium-migrate.io/row/v1', identity: { node: a.node, pod: a.pod, namespace: a.namespace, ip: a.ip, overlay: overlay(a.node), expectedOverlay: overlay(a.node), version: 'bench' },
    generation: 1, generatedAt: iso(now), startedAt: iso(startedAt), intervalMs: cfg.intervalMs, windowMs: cfg.windowMs, ...(sinceText ? { since: iso(since) } : {}), cells }));
}).listen(8080, '0.0.0.0');
`;

/** Phases in which a node is not being migrated (agent/view.ts). */
const idlePhases = new Set(['pending', 'migrated', 'finalized']);

async function main(): Promise<void> {
  const run = benchRun();
  const dir = mkdtempSync(join(tmpdir(), 'bench-end-to-end-'));
  removeOnExit(dir);
  let topo: Topology | undefined;
  let cp: ControlPlane | undefined;
  let nodesWatch: { stop(): void } | undefined;
  try {
    topo = await createTopology(1);
    const netns = topo.nodes[0]!.netns;
    const route = await topo.exec(netns, ['ip', 'route', 'add', 'local', '10.0.0.0/8', 'dev', 'lo']);
    if (route.code !== 0) throw new Error(`ip route add local: ${route.stderr}`);
    const socket = join(dir, 'egress.sock');
    topo.spawn(netns, [process.execPath, join(repoRoot, 'dist', 'lab', 'egress-proxy.js'), '--socket', socket], undefined, join(dir, 'egress-proxy.log'));
    cp = await startScaleCluster({
      nodes: nodeCount,
      podsPerNode,
      clusterEgressSocket: socket,
      kwokStages: benchKwokStages(defaultBinDir(), join(dir, 'stages'), { nodeRestart: true }),
      ciliumPodAnnotations: { [readyAfterAnnotation]: `${agentReadySeconds}s` },
      log,
    });
    const agents = (await cp.get<{ items: { metadata: { name: string; namespace: string }; spec: { nodeName: string }; status: { podIP: string } }[] }>(`/api/v1/namespaces/${agentNamespace}/pods?labelSelector=${encodeURIComponent(agentPodSelector)}`)).items
      .map((p) => ({ node: p.spec.nodeName, pod: p.metadata.name, namespace: p.metadata.namespace, ip: p.status.podIP }));
    const agentsFile = join(dir, 'agents.json');
    const stateFile = join(dir, 'state.json');
    writeFileSync(agentsFile, JSON.stringify(agents));
    writeFileSync(stateFile, JSON.stringify({ cilium: [], focus: [] }));
    // What the agents would see of the Nodes: labelled for Cilium, and in focus (phase).
    nodesWatch = reflect(liteKube(liteCredentials(cp.kubeconfig)), '/api/v1/nodes', {
      metadataOnly: true,
      onChange(items: Map<string, KubeObject>) {
        const cilium: string[] = [];
        const focus: string[] = [];
        for (const n of items.values() as Iterable<KubeObject & { metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> } }>) {
          const phase = n.metadata?.annotations?.['cilium-migrate.io/phase'];
          if (n.metadata?.labels?.[migrationLabel] === 'true' || phase === 'finalized') cilium.push(n.metadata?.name ?? '');
          if (phase && !idlePhases.has(phase)) focus.push(n.metadata?.name ?? '');
        }
        writeFileSync(stateFile, JSON.stringify({ cilium, focus }));
      },
    });
    const agentCfg = await parseAgentConfig([], { NODE_NAME: 'x', POD_NAME: 'x', POD_NAMESPACE: 'x', POD_IP: '10.0.0.1' });
    const cfg = { intervalMs: agentCfg.intervalMs, focusIntervalMs: agentCfg.focusIntervalMs, windowMs: agentCfg.windowMs, maxPerSecond: agentCfg.maxPerSecond, focusShare: agentCfg.focusShare, ringSize: agentCfg.ringSize };
    writeFileSync(join(dir, 'row-server.cjs'), rowServer);
    topo.spawn(netns, [process.execPath, join(dir, 'row-server.cjs'), agentsFile, stateFile, JSON.stringify(cfg)], undefined, join(dir, 'row-server.log'));
    await sleep(1000);

    const kubectl = join(cp.binDir, 'kubectl');
    const restartCommand = `${kubectl} --kubeconfig ${cp.kubeconfig} annotate node {node} --overwrite ${restartDurationAnnotation}=${restartSeconds}s ${restartBootIdAnnotation}=$(cat /proc/sys/kernel/random/uuid) >/dev/null`;
    const proxyGets = (t: string) => sumMetric(t, 'apiserver_request_total', 'resource="pods"', 'subresource="proxy"');
    const before = await apiserverMetrics(cp);
    const started = Date.now();
    const waveStarts: number[] = [];
    log(`run --max-unavailable ${maxUnavailable} on ${nodeCount} nodes`);
    let scanned = 0;
    const r = await runPlugin(['run', '--max-unavailable', String(maxUnavailable), '--restart', 'exec', '--restart-command', restartCommand, '--delete-emptydir-data', '--kubeconfig', cp.kubeconfig], {
      env: { PATH: process.env.PATH ?? '', HOME: cp.rootDir, ...(cpuProfileDir ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${cpuProfileDir}` } : {}) },
      timeoutMs: 4 * 3600_000,
      // The plugin's whole log so far, each time it grows: only its new whole lines are looked at
      // (rescanning megabytes of log at every chunk would take this machine's CPU from the run).
      onStderr: (text) => {
        const end = text.lastIndexOf('\n') + 1;
        if (end <= scanned) return;
        const fresh = text.slice(scanned, end);
        scanned = end;
        const at = ((Date.now() - started) / 1000).toFixed(1);
        if (pluginLog) appendFileSync(pluginLog, fresh.split('\n').filter(Boolean).map((l) => `${at} ${l}\n`).join(''));
        for (const m of fresh.matchAll(/wave (\d+) of (\d+)/g)) {
          if (Number(m[1]) <= waveStarts.length) continue;
          waveStarts.push(Date.now());
          log(`wave ${m[1]} of ${m[2]} after ${((Date.now() - started) / 1000).toFixed(0)} s`);
        }
      },
    });
    const total = (Date.now() - started) / 1000;
    if (r.code !== 0) throw new Error(`run exited ${r.code} after ${total.toFixed(0)} s: ${r.stderr.slice(-3000)}`);
    const after = await apiserverMetrics(cp);
    const gets = proxyGets(after) - proxyGets(before);
    const status = JSON.parse((await runPlugin(['status', '-o', 'json', '--kubeconfig', cp.kubeconfig], { env: { PATH: process.env.PATH ?? '', HOME: cp.rootDir } })).stdout) as { summary: { migrated: number; nodes: number } };
    if (status.summary.migrated !== nodeCount) throw new Error(`only ${status.summary.migrated} of ${nodeCount} nodes migrated`);
    const waves = [...waveStarts, started + total * 1000].slice(1).map((t, i) => (t - waveStarts[i]!) / 1000);
    const waveCount = waveStarts.length;
    const fullWaves = Math.ceil(1000 / maxUnavailable);
    const projected = (median(waves) * fullWaves) / 60;
    const body = [
      `Command: \`make bench-end-to-end\` (bench/e2e-scale.ts; \`make bench-scale\` runs it at 1,000 nodes)${nodeCount !== 1000 ? `, here with BENCH_NODES=${nodeCount} BENCH_MAX_UNAVAILABLE=${maxUnavailable} BENCH_PODS_PER_NODE=${podsPerNode}` : ''}.`,
      run.machine(controlPlaneVersions),
      `The cluster (bench/scale-cluster.ts): ${nodeCount} kwok nodes with realistic Node objects, a CiliumNode each, Cilium's and the probe agent's DaemonSets, ${podsPerNode} application pods per node (5 s grace period, Ready 3 s after they start), the CiliumNodeConfig. What takes time as on real nodes: Cilium's agent pod is Ready ${agentReadySeconds} s after it is created (and the one it replaces takes the default grace period of 30 s to stop, where Cilium's chart sets 1 s: each agent restart here is about 29 s longer than with the chart); a node restart takes ${restartSeconds} s (\`--restart exec\` sets an annotation; a kwok stage, bench/kwok-stages/node-restart.yaml, reports a new boot ID a minute later, which is what the engine waits for). The probe agents are simulated by one HTTP server serving every agent's row, with the samples an agent at its defaults would have taken since the asked time (focus cells every ${cfg.focusIntervalMs / 1000} s, or as the focus budget of ${cfg.maxPerSecond * cfg.focusShare} probes/s allows for all of them; others every ${cfg.intervalMs / 1000} s), all reachable.`,
      `Command run: \`kubectl-cilium_migrate run --max-unavailable ${maxUnavailable} --restart exec --restart-command ... --delete-emptydir-data\`, every other setting at its default: the matrix gate, ${defaultGate.rounds} passing rounds ${defaultGate.intervalSeconds} s apart, ${defaultConnectivity.minSamples} samples per focus cell since the restart, ${defaultConnectivity.successThreshold * 100} %, ${defaultConnectivity.concurrency} rows in flight.`,
      '',
      '| figure | value |',
      '|---|---|',
      `| nodes migrated | ${status.summary.migrated} of ${nodeCount}, in ${waveCount} waves |`,
      `| total time | ${(total / 60).toFixed(1)} min |`,
      `| one wave, median (min-max) | ${median(waves).toFixed(0)} s (${Math.min(...waves).toFixed(0)}-${Math.max(...waves).toFixed(0)}) |`,
      `| matrix reads: pod-proxy GETs | ${gets} (${(gets / total).toFixed(1)}/s; ${(gets / nodeCount).toFixed(1)} per agent) |`,
      '',
      nodeCount === 1000
        ? `Target: 1,000 nodes under 2 hours: ${total < targetSeconds ? 'MET' : `MISSED (${(total / 60).toFixed(0)} min)`}.`
        : `Target: 1,000 nodes under 2 hours: not measured at 1,000 nodes here. At the median wave above, ${fullWaves} waves of 50 would take ${projected.toFixed(0)} min; reading the matrix of 1,000 agents adds about a second per read ("Plugin: reading the matrix of 1,000 agents").`,
      'Not covered: real kubelets, containers and Cilium (kwok simulates them); real probe agents (their rows are simulated from the agents\' schedule); the drain of pods under PodDisruptionBudgets (measured in the drain section).',
    ].join('\n');
    process.stdout.write(`${body}\n`);
    updateSection('End to end at 1,000 nodes', body);
  } finally {
    nodesWatch?.stop();
    await cp?.stop();
    await topo?.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
