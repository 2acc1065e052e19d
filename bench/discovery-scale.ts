// What discovery costs at 1,000 nodes, for the agent and for the API server, before and after the
// agent watched its nodes as metadata only.
//
// The cluster (bench/scale-cluster.ts): the real control plane, 1,000 kwok nodes with realistic
// Node objects, a CiliumNode each, Cilium's and the probe agent's DaemonSets (2,000 pods). A wave
// is the plugin's own `run --max-unavailable 50 --restart none --gate cluster-state` until its
// second wave starts: the annotation, label and cordon churn of 50 nodes migrated at once.
//
// 1. One real agent (the bundled agent, its discovery through the API server) in a lab network
//    namespace (pod IPs are local there, so its probes stay inside; the API server is reached
//    through a socket pair, bench/scale-cluster's forward): time to Ready, then RSS, CPU and bytes
//    received while idle and during a wave.
// 2. 1,000 agents' discovery: bench/watch-load.ts sends each agent's exact LISTs and WATCHes
//    1,000 times; the API server's CPU (/proc of its process), memory, and the watch events it sent
//    (its own metrics), idle and during a wave, with the fan-out per write to a Node.
//
// "Before" is the agent of BENCH_BASELINE_REF (default 6e3241d, before this change) with its
// requests; "after" is today's.
import { connect as netConnect } from 'node:net';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { ClusterView } from '../agent/discovery.js';
import { agentNamespace, agentPodSelector } from '../lib/defaults.js';
import { liteCredentials, liteKube } from '../lib/kube-lite.js';
import { metadataOnlyAccept } from '../lib/kube-watch.js';
import { phaseAnnotation } from '../lib/node-state.js';
import type { ControlPlane } from '../lab/control-plane.js';
import { createTopology, type Topology } from '../lab/netns.js';
import type { ManagedProcess } from '../lab/process.js';
import { forward } from '../lab/programs/tcp-forward.js';
import { runPlugin } from '../test/harness/plugin.js';
import { apiserverMetrics, sumMetric } from './apiserver-requests.js';
import { apiserverPid, bytesRead, cpuSeconds, rssMiB } from './processes.js';
import { bundleAt, describeRef } from './baseline.js';
import { startScaleCluster } from './scale-cluster.js';
import { benchRun, controlPlaneVersions, updateSection } from './report.js';
import { removeOnExit } from '../lab/process.js';

const nodeCount = Number(process.env.BENCH_NODES ?? 1000);
const watchers = Number(process.env.BENCH_WATCHERS ?? nodeCount);
const waveSize = Number(process.env.BENCH_WAVE ?? 50);
const idleMs = Number(process.env.BENCH_IDLE_MS ?? 30_000);
const baselineRef = process.env.BENCH_BASELINE_REF ?? '6e3241d';
// Also measure today's agent with these Node options (e.g. --max-semi-space-size=1).
const agentNodeOptions = process.env.BENCH_AGENT_NODE_OPTIONS ?? '';
// Which half to run: the one agent ("agent"), the 1,000 agents' watches ("api"), or both.
const part = process.env.BENCH_DISCOVERY_PART ?? 'all';
if (!['agent', 'api', 'all'].includes(part)) throw new Error(`BENCH_DISCOVERY_PART=${part}: use agent, api or all`);
const repoRoot = join(import.meta.dirname, '..');
const log = (l: string) => process.stderr.write(`[discovery] ${l}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (bytes: number) => bytes / 2 ** 20;

/** Samples a process's CPU, peak RSS and bytes read between start() and stop(). */
function sampler(pid: number) {
  let t0 = 0;
  let c0 = 0;
  let b0 = 0;
  let peak = 0;
  let timer: NodeJS.Timeout | undefined;
  return {
    start() {
      [t0, c0, b0, peak] = [Date.now(), cpuSeconds(pid), bytesRead(pid), rssMiB(pid).now];
      timer = setInterval(() => (peak = Math.max(peak, rssMiB(pid).now)), 250);
    },
    stop() {
      clearInterval(timer);
      const s = (Date.now() - t0) / 1000;
      peak = Math.max(peak, rssMiB(pid).now);
      return { seconds: s, cpuPercent: ((cpuSeconds(pid) - c0) / s) * 100, rssPeak: peak, readMiBps: mib(bytesRead(pid) - b0) / s };
    },
  };
}

/** The view an agent's discovery makes of the cluster, read once by the admin: for the agent's --peers-file. */
async function viewOf(cp: ControlPlane): Promise<ClusterView> {
  type Pod = { metadata: { name: string }; spec: { nodeName?: string }; status: { podIP?: string; phase?: string; hostIPs?: { ip: string }[] } };
  type Node = { metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> } };
  type CiliumNode = { metadata: { name: string }; spec?: { ipam?: { podCIDRs?: string[] } } };
  const pods = (await cp.get<{ items: Pod[] }>(`/api/v1/namespaces/${agentNamespace}/pods?labelSelector=${encodeURIComponent(agentPodSelector)}`)).items;
  const nodes = (await cp.get<{ items: Node[] }>('/api/v1/nodes')).items;
  const ciliumNodes = (await cp.get<{ items: CiliumNode[] }>('/apis/cilium.io/v2/ciliumnodes')).items;
  const addresses = new Map(pods.filter((p) => p.spec.nodeName).map((p) => [p.spec.nodeName!, (p.status.hostIPs ?? []).map((h) => h.ip)]));
  return {
    agents: pods.filter((p) => p.status.phase === 'Running' && p.status.podIP && p.spec.nodeName).map((p) => ({ node: p.spec.nodeName!, pod: p.metadata.name, ip: p.status.podIP! })),
    nodes: nodes.map((n) => ({ name: n.metadata.name, addresses: addresses.get(n.metadata.name) ?? [], labels: n.metadata.labels ?? {}, phase: n.metadata.annotations?.[phaseAnnotation] })),
    ciliumNodeCidrs: Object.fromEntries(ciliumNodes.map((c) => [c.metadata.name, c.spec?.ipam?.podCIDRs ?? []])),
  };
}

/** One wave of the plugin's run: from its start until its second wave starts (then Ctrl-C). */
async function wave(cp: ControlPlane, during: { start(): void; stop(): unknown }[]): Promise<{ seconds: number; nodeWrites: number; metrics: { before: string; after: string } }> {
  const before = await apiserverMetrics(cp);
  for (const d of during) d.start();
  const started = Date.now();
  let ended = 0;
  const r = await runPlugin(['run', '--max-unavailable', String(waveSize), '--restart', 'none', '--gate', 'cluster-state', '--gate-rounds', '1', '--gate-interval', '1s', '--kubeconfig', cp.kubeconfig], {
    env: { PATH: process.env.PATH ?? '', HOME: cp.rootDir },
    timeoutMs: 1_800_000,
    // The plugin's whole log so far, each time it grows.
    onStderr: (text, kill) => {
      if (!ended && /wave 2 of/.test(text)) {
        ended = Date.now();
        kill('SIGINT');
      }
    },
  });
  if (!ended) throw new Error(`the run ended before its second wave (exit ${r.code}): ${r.stderr.slice(-2000)}`);
  const seconds = (ended - started) / 1000;
  const after = await apiserverMetrics(cp);
  const writes = (t: string) => sumMetric(t, 'apiserver_request_total', 'resource="nodes"', /verb="(PATCH|PUT|APPLY|CREATE|DELETE)"/);
  return { seconds, nodeWrites: writes(after) - writes(before), metrics: { before, after } };
}

async function main(): Promise<void> {
  const run = benchRun();
  const dir = mkdtempSync(join(tmpdir(), 'bench-discovery-'));
  removeOnExit(dir);
  let topo: Topology | undefined;
  let cp: ControlPlane | undefined;
  let hostForward: { close(): Promise<void> } | undefined;
  const baseline = await bundleAt(baselineRef, 'agent/main.ts');
  try {
    cp = await startScaleCluster({ nodes: nodeCount, log });
    // Served sizes of one object of each kind (JSON, managed fields included), in full and as metadata.
    const first = 'sim-worker-0001';
    const admin = liteKube(liteCredentials(cp.kubeconfig));
    const served = async (path: string, accept?: string) => Buffer.byteLength(JSON.stringify((await admin.request('GET', path, accept ? { accept } : {})).body));
    const sizes = {
      node: await served(`/api/v1/nodes/${first}`),
      ciliumNode: await served(`/apis/cilium.io/v2/ciliumnodes/${first}`),
      agentPod: Buffer.byteLength(JSON.stringify((await cp.get<{ items: unknown[] }>(`/api/v1/namespaces/${agentNamespace}/pods?labelSelector=${encodeURIComponent(agentPodSelector)}&limit=1`)).items[0])),
    };
    const metaNode = await served(`/api/v1/nodes/${first}`, metadataOnlyAccept.watch);
    log(`served sizes: ${JSON.stringify(sizes)}, node as metadata ${metaNode}`);

    // The agent's network namespace: pod IPs are local there; the API server through a socket.
    topo = await createTopology(1);
    const netns = topo.nodes[0]!.netns;
    const route = await topo.exec(netns, ['ip', 'route', 'add', 'local', '10.0.0.0/8', 'dev', 'lo']);
    if (route.code !== 0) throw new Error(`ip route add local: ${route.stderr}`);
    const socket = join(dir, 'api.sock');
    const apiPort = Number(new URL(cp.server).port);
    hostForward = await forward(socket, () => netConnect(apiPort, '127.0.0.1'));
    topo.spawn(netns, [process.execPath, join(repoRoot, 'dist', 'lab', 'tcp-forward.js'), '--listen', '127.0.0.1:6443', '--unix', socket], undefined, join(dir, 'forward.log'));
    // The agent's own identity: its ServiceAccount (a client certificate with its user name), so RBAC is as deployed.
    const agentUser = `system:serviceaccount:${agentNamespace}:cilium-migrate-agent`;
    const hostKubeconfig = await cp.userKubeconfig(agentUser);
    const netnsKubeconfig = join(dir, 'agent.kubeconfig');
    writeFileSync(netnsKubeconfig, readFileSync(hostKubeconfig, 'utf8').replace(cp.server, 'https://127.0.0.1:6443'));
    const selfNode = `sim-worker-${String(nodeCount).padStart(4, '0')}`;
    const selfPod = (await cp.get<{ items: { metadata: { name: string }; spec: { nodeName: string }; status: { podIP: string } }[] }>(`/api/v1/namespaces/${agentNamespace}/pods?fieldSelector=spec.nodeName%3D${selfNode}`)).items[0]!;
    const apiPid = apiserverPid(cp);

    const agentRows: string[] = [];
    const apiRows: string[] = [];
    const fanout: string[] = [];
    let todayPeak = 0;
    const variants: { name: string; label: string; agentJs: string; load: string; nodeOptions?: string }[] = [
      { name: 'before', label: `before (${baselineRef})`, agentJs: baseline.file, load: 'full' },
      { name: 'after', label: 'after (today)', agentJs: join(repoRoot, 'dist', 'agent.js'), load: 'metadata' },
      // Today's agent under other V8 settings, to weigh memory against garbage-collection CPU.
      ...(agentNodeOptions ? [{ name: 'after-options', label: `today, NODE_OPTIONS=${agentNodeOptions}`, agentJs: join(repoRoot, 'dist', 'agent.js'), load: 'metadata', nodeOptions: agentNodeOptions }] : []),
    ];
    // 1. One real agent of each variant: first both idle, on the same cluster (no node in a
    // migration yet, so neither has focus nodes to probe), then each during a wave of its own.
    const startAgent = async (v: (typeof variants)[number], phase: string, source: Record<string, string> = { KUBECONFIG: netnsKubeconfig }) => {
      log(`${v.name}: starting the agent (${phase})`);
      const startedAt = Date.now();
      const agent: ManagedProcess = topo!.spawn(netns, [process.execPath, v.agentJs, '--port', '8080'], {
        PATH: process.env.PATH ?? '', ...source, ...(v.nodeOptions ? { NODE_OPTIONS: v.nodeOptions } : {}), NODE_NAME: selfNode, POD_NAME: selfPod.metadata.name, POD_NAMESPACE: agentNamespace, POD_IP: selfPod.status.podIP,
      }, join(dir, `agent-${v.name}-${phase}.log`));
      const readyz = async () => (await topo!.exec(netns, [process.execPath, '-e', 'fetch("http://127.0.0.1:8080/readyz").then(r=>process.exit(r.ok?0:1),()=>process.exit(1))'], { timeoutMs: 5000 })).code === 0;
      while (!(await readyz())) {
        if (!agent.running()) throw new Error(`the agent exited: ${readFileSync(agent.logFile, 'utf8').slice(-2000)}`);
        if (Date.now() - startedAt > 300_000) throw new Error('the agent was not Ready within 5 minutes');
        await sleep(200);
      }
      return { agent, readySeconds: (Date.now() - startedAt) / 1000 };
    };
    // A watch that breaks makes the figures those of an agent without discovery: today's fails the
    // run rather than be reported; the old agent's breaks are counted and said.
    let baselineBreaks = 0;
    const checkWatches = (v: (typeof variants)[number], agent: ManagedProcess, when: string) => {
      const broke = readFileSync(agent.logFile, 'utf8').split('\n').filter((l) => /watch .* broke|list .* failed/.test(l));
      if (v.name === 'before') baselineBreaks += broke.length;
      else if (broke.length) throw new Error(`the ${v.name} agent's discovery broke ${when}: ${broke.slice(0, 3).join('; ')}`);
    };
    let fileRow = '';
    let fileIdle = 0;
    const idleOf = new Map<string, { readySeconds: number; afterSync: number; idle: ReturnType<ReturnType<typeof sampler>['stop']> }>();
    // An agent started, then measured idle for idleMs: RSS right after sync, then its peak and CPU.
    const measureIdle = async (v: (typeof variants)[number], phase: string, source?: Record<string, string>) => {
      const { agent, readySeconds } = await startAgent(v, phase, source);
      const afterSync = rssMiB(agent.pid).peak;
      const idle = sampler(agent.pid);
      idle.start();
      await sleep(idleMs);
      const idleRes = idle.stop();
      await agent.stop(5000);
      log(`${v.name} agent (${phase}): ready ${readySeconds}s, idle ${JSON.stringify(idleRes)}`);
      return { agent, readySeconds, afterSync, idle: idleRes };
    };
    if (part !== 'api') {
      for (const v of variants) {
        const { agent, readySeconds, afterSync, idle } = await measureIdle(v, 'idle');
        checkWatches(v, agent, 'while idle');
        idleOf.set(v.name, { readySeconds, afterSync, idle });
      }
      // 1b. Today's agent with the same view from a file (no API server, no watches): the same peers
      // probed, so the difference to "after" idle is what discovery itself costs.
      const view = await viewOf(cp);
      const peersFile = join(dir, 'peers.json');
      writeFileSync(peersFile, JSON.stringify(view));
      const today = variants.find((v) => v.name === 'after')!;
      const { readySeconds, afterSync, idle: idleRes } = await measureIdle(today, 'file', { PEERS_FILE: peersFile });
      fileIdle = idleRes.rssPeak;
      fileRow = `| today, the same view from a file (no API server) | ${readySeconds.toFixed(1)} | ${afterSync.toFixed(0)} | ${idleRes.rssPeak.toFixed(0)} | ${idleRes.cpuPercent.toFixed(1)} | - | - | - | - |`;
    }
    for (const v of variants) {
      if (part !== 'api') {
        const { agent } = await startAgent(v, 'wave');
        const during = sampler(agent.pid);
        const w = await wave(cp, [during]);
        const waveRes = during.stop() as ReturnType<ReturnType<typeof sampler>['stop']>;
        await agent.stop(5000);
        checkWatches(v, agent, 'during the wave');
        const i = idleOf.get(v.name)!;
        if (v.name === 'after') todayPeak = Math.max(i.afterSync, i.idle.rssPeak, waveRes.rssPeak);
        log(`${v.name} agent: wave ${w.seconds}s ${JSON.stringify(waveRes)}`);
        agentRows.push(`| ${v.label} | ${i.readySeconds.toFixed(1)} | ${i.afterSync.toFixed(0)} | ${i.idle.rssPeak.toFixed(0)} | ${i.idle.cpuPercent.toFixed(1)} | ${waveRes.rssPeak.toFixed(0)} | ${waveRes.cpuPercent.toFixed(1)} | ${waveRes.readMiBps.toFixed(2)} | ${w.seconds.toFixed(0)} s, ${w.nodeWrites} |`);
      }
      if (part === 'agent' || v.name === 'after-options') continue;

      // 2. 1,000 agents' watches.
      log(`${v.name}: ${watchers} agents' watches (${v.load})`);
      const loadKubeconfig = hostKubeconfig;
      const load = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'bench', 'watch-load.ts'), '--kubeconfig', loadKubeconfig, '--agents', String(watchers), '--variant', v.load], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
      let last = { open: 0, lists: 0, events: 0, bytes: 0, failures: 0 };
      createInterface({ input: load.stdout! }).on('line', (l) => {
        try {
          last = JSON.parse(l) as typeof last;
        } catch {
          // not a stats line
        }
      });
      try {
        const opening = sampler(apiPid);
        opening.start();
        const t0 = Date.now();
        while (last.open < 3 * watchers) {
          if (load.exitCode !== null) throw new Error(`the load client exited (${load.exitCode})`);
          if (Date.now() - t0 > 1_800_000) throw new Error(`only ${last.open} of ${3 * watchers} watches open after 30 minutes`);
          await sleep(1000);
          if ((Date.now() - t0) % 30_000 < 1000) log(`${last.open} watches open, ${last.lists} lists done`);
        }
        const openRes = opening.stop();
        const openSeconds = (Date.now() - t0) / 1000;
        await sleep(5000);
        const idleApi = sampler(apiPid);
        const m0 = await apiserverMetrics(cp);
        const e0 = last.events;
        idleApi.start();
        await sleep(idleMs);
        const idleApiRes = idleApi.stop();
        const m1 = await apiserverMetrics(cp);
        const idleEvents = (sumMetric(m1, 'apiserver_watch_events_total') - sumMetric(m0, 'apiserver_watch_events_total')) / idleApiRes.seconds;
        const e1 = last.events;
        const waveApi = sampler(apiPid);
        const b0 = last.bytes;
        const e2 = last.events;
        const w2 = await wave(cp, [waveApi]);
        const waveApiRes = waveApi.stop() as ReturnType<ReturnType<typeof sampler>['stop']>;
        const events = (t: string, ...f: string[]) => sumMetric(t, 'apiserver_watch_events_total', ...f);
        const sizesSum = (t: string, ...f: string[]) => sumMetric(t, 'apiserver_watch_events_sizes_sum', ...f);
        const waveEvents = (events(w2.metrics.after) - events(w2.metrics.before)) / w2.seconds;
        const nodeEvents = events(w2.metrics.after, 'resource="nodes"') - events(w2.metrics.before, 'resource="nodes"');
        const nodeBytes = sizesSum(w2.metrics.after, 'resource="nodes"') - sizesSum(w2.metrics.before, 'resource="nodes"');
        const received = (last.bytes - b0) / w2.seconds;
        log(`${v.name} api: open ${openSeconds}s ${JSON.stringify(openRes)}, idle ${JSON.stringify(idleApiRes)} ${idleEvents} ev/s (client ${(e1 - e0) / idleApiRes.seconds}), wave ${w2.seconds}s ${JSON.stringify(waveApiRes)} ${waveEvents} ev/s, node events ${nodeEvents} for ${w2.nodeWrites} writes, ${nodeBytes} bytes; client received ${(last.events - e2)} events`);
        apiRows.push(`| ${v.label} | ${openSeconds.toFixed(0)} s, ${openRes.cpuPercent.toFixed(0)} % | ${idleApiRes.cpuPercent.toFixed(0)} | ${idleEvents.toFixed(0)} | ${waveApiRes.cpuPercent.toFixed(0)} | ${waveApiRes.rssPeak.toFixed(0)} | ${waveEvents.toFixed(0)} | ${mib(received).toFixed(1)} | ${w2.seconds.toFixed(0)} s |`);
        fanout.push(`${v.name}: ${w2.nodeWrites} writes to Nodes during the wave, ${nodeEvents} Node watch events sent (${(nodeEvents / Math.max(1, w2.nodeWrites)).toFixed(0)} per write), ${(nodeBytes / Math.max(1, nodeEvents) / 1024).toFixed(1)} KiB each on average`);
      } finally {
        load.kill('SIGKILL');
        await new Promise((r) => load.once('exit', r));
      }
    }

    const scaledDown = nodeCount !== 1000 ? `, here with BENCH_NODES=${nodeCount} BENCH_WATCHERS=${watchers} BENCH_WAVE=${waveSize} BENCH_IDLE_MS=${idleMs}` : '';
    const options = agentNodeOptions ? ` BENCH_AGENT_NODE_OPTIONS='${agentNodeOptions}'` : '';
    const command = `Command: \`${part !== 'all' ? `BENCH_DISCOVERY_PART=${part} ` : ''}${options ? `${options.trim()} ` : ''}make bench-discovery\` (bench/discovery-scale.ts; \`make bench-scale\` runs it at 1,000 nodes)${scaledDown}.`;
    const verdict = `${todayPeak < 80 ? 'MET' : 'MISSED'} at ${nodeCount} nodes (today's agent peaks at ${todayPeak.toFixed(0)} MiB)${nodeCount !== 1000 ? '; not measured at 1,000 nodes here' : ''}`;
    const agentBody = [
      command,
      run.machine(controlPlaneVersions),
      `The cluster: the real control plane with ${nodeCount} kwok nodes whose Node objects are the size real ones are (50 images, 5 conditions, addresses, 11 labels, 9 annotations: ${(sizes.node / 1024).toFixed(1)} KiB of JSON each, ${(metaNode / 1024).toFixed(1)} KiB as metadata), a CiliumNode each (${(sizes.ciliumNode / 1024).toFixed(1)} KiB), Cilium's and the probe agent's DaemonSets (${2 * nodeCount} pods; an agent pod ${(sizes.agentPod / 1024).toFixed(1)} KiB). One real agent (the bundled agent, as its DaemonSet runs it, with its ServiceAccount's permissions) in a lab network namespace where every pod IP is local, so its probes of its peers stay on this machine; the API server is reached through a Unix socket pair. A wave: the plugin's own \`run --max-unavailable ${waveSize} --restart none --gate cluster-state --gate-rounds 1\` from its start until its second wave begins (cordon, state annotations and phases, label, Cilium agent pod replaced, verify pod, uncordon, for ${waveSize} nodes at once).`,
      `"before" is the agent of ${describeRef(baselineRef)}, "after" today's; both bundled the same way (bench/baseline.ts).`,
      `Columns: seconds from start to /readyz (discovery synced); RSS right after; RSS peak and CPU (% of one core: user + system of the process) over ${idleMs / 1000} s idle; the same during the wave, with the bytes the agent read per second (/proc/PID/io rchar: nearly all of it the API server's TLS stream); the wave's length and its writes to Node objects.`,
      '',
      '| agent | Ready after, s | RSS after sync, MiB | RSS idle, MiB | CPU idle, % | RSS in the wave, MiB | CPU in the wave, % | read in the wave, MiB/s | wave, Node writes |',
      '|---|---|---|---|---|---|---|---|---|',
      ...agentRows,
      ...(fileRow ? [fileRow] : []),
      '',
      `The "before" agent's watches broke ${baselineBreaks} times while measured (its client, like today's until the fix, let Node's global HTTP agent cut any connection quiet for 5 s, and resumed after a growing backoff); today's agent must keep its watches open for its figures to count, and did.`,
      '',
      'What changed: nodes are watched as metadata only (`Accept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1` for the LIST, `as=PartialObjectMetadata` for the WATCH: labels and annotations, no status: no images, no conditions), a node\'s address comes from its agent pod\'s `status.hostIPs`, and only the fields the agent uses are kept of each pod, Node and CiliumNode. The agent still watches its own pods and the CiliumNodes in full (it needs their status.podIP and spec.ipam.podCIDRs). Since the first run that held its watches (2026-11-26, the agent of 12c35aa: 167 MiB after sync, 185 idle, 223 in the wave at 31.4 % of a core), the agent lists in pages of 100 objects rather than one answer per collection (13 MB of JSON in all at 1,000 nodes) and recomputes its view at most every 200 ms rather than once per event. The DaemonSet\'s memory request and limits (manifests/agent/daemonset.yaml, checked against this table by test/unit/agent-manifests.test.ts) follow today\'s row; it runs Node with its default heap settings, since a smaller young generation trades the memory it saves for CPU in a wave (the NODE_OPTIONS row, when measured).',
      'The agent\'s client is lib/kube-lite.ts, not @kubernetes/client-node: the one exception to the rule that lib/kube.ts is the only Kubernetes client, kept because client-node costs the agent 37 MiB more RSS (measured when it was replaced; section "Agent: RSS, CPU and series by peer count") on every node, and because its typed API cannot ask for PartialObjectMetadata.',
      '',
      `Target: under 80 MiB RSS with 1,000-node discovery: ${verdict}.${todayPeak < 80 ? '' : ` Why: ${fileIdle ? `today's agent with the same view from a file, which watches nothing, stays at ${fileIdle.toFixed(0)} MiB idle; discovery itself adds ${(idleOf.get('after')!.idle.rssPeak - fileIdle).toFixed(0)} MiB idle and ${(todayPeak - fileIdle).toFixed(0)} MiB at its peak. ` : ''}The fixed part (Node and the libraries the agent loads, 73 MiB in an empty process) is measured in "Agent: RSS, CPU and series by peer count".`}`,
      'Not covered: a real kubelet\'s status updates of its Node (kwok reports status every 10-20 minutes; a kubelet every 10 s when something changed, else every 5 minutes), Cilium rewriting its CiliumNodes during a restart, many agents on one machine.',
    ].join('\n');
    if (part !== 'api') updateSection('Agent with 1,000-node discovery', agentBody);
    const apiBody = [
      command,
      run.machine(controlPlaneVersions),
      `The same cluster and wave as "Agent with 1,000-node discovery". Load: bench/watch-load.ts sends ${watchers} agents' discovery requests, each as agent/kube-discovery.ts sends them (a LIST then a WATCH of the agent pods by label, the Nodes and the CiliumNodes, with the agent's Accept headers, one TLS connection per watch, as the agent's ServiceAccount; each LIST in pages of 100 objects, as the agent has listed since 2026-11-26), 8 agents' LISTs at a time while opening; it reads every byte and parses none. "before" sends the old agent's requests (every collection in full), "after" today's (Nodes as metadata); both in pages.`,
      'Columns: opening all the watches (time, and the API server\'s CPU meanwhile); the API server\'s CPU (% of one core, /proc of its process) and the watch events it sent per second (`apiserver_watch_events_total`) idle and during the wave, its RSS peak, and the bytes the load client received per second during the wave.',
      '',
      `| ${watchers} agents' watches | opening: time, API server CPU | CPU idle, % | watch events/s idle | CPU in the wave, % | RSS peak, MiB | watch events/s in the wave | received MiB/s in the wave | wave |`,
      '|---|---|---|---|---|---|---|---|---|',
      ...apiRows,
      '',
      `Fan-out per write: ${fanout.join('; ')}. Every write to a Node is sent to every agent (and to the controllers that watch Nodes); metadata only cuts what each event carries, not how many there are.`,
      'Not covered: several API servers behind a load balancer, etcd on its own machine, the controllers of a real cluster (kube-proxy, CNI, monitoring) that watch the same collections; the load client runs on the same 2 cores as the API server, which caps what either can do in the "before" case.',
    ].join('\n');
    if (part !== 'agent') updateSection('API server: 1,000 agents\' watches during a wave', apiBody);
    // Only the sections this run measured (BENCH_DISCOVERY_PART).
    process.stdout.write(`${[part !== 'api' ? agentBody : undefined, part !== 'agent' ? apiBody : undefined].filter((b) => b !== undefined).join('\n\n')}\n`);
  } finally {
    await hostForward?.close();
    await topo?.destroy();
    await cp?.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(baseline.dir, { recursive: true, force: true });
  }
}

await main();
