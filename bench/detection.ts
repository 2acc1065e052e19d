// Detection and gate latency on real parts: four nodes as network namespaces with both VXLAN
// overlays, a real agent process per node at the agent's default probe interval, the real control
// plane reaching them through the egress proxy, and the bundled plugin's `connectivity` read again
// and again. Measured: from dropping UDP 8473 on a Cilium node to the first FAIL verdict; and from
// a restarted agent answering /readyz to the first PASS with that node in focus, counting only
// evidence from then on (--since), as the engine's gate does after a node restart.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControlPlane } from '../lab/control-plane.js';
import { createTopology, netnsOverlays, type NetnsPod } from '../lab/netns.js';
import type { ManagedProcess } from '../lab/process.js';
import { agentNamespace, migrationLabel } from '../lib/defaults.js';
import { ensureNamespace, labKube, nodeHeartbeat, registerLabNode, registerLabPod } from '../test/harness/lab-objects.js';
import { bundledPlugin, repoRoot, runPlugin } from '../test/harness/plugin.js';
import { benchRun, spread } from './report.js';
import { updateSection } from './report.js';

const runs = Number(process.env.BENCH_RUNS ?? 3);
const intervalSeconds = 5; // the agent's default --interval
const agentJs = bundledPlugin.replace(/kubectl-cilium_migrate$/, 'agent.js');
const egressProxyJs = join(repoRoot, 'dist', 'lab', 'egress-proxy.js');
const nodeName = (i: number) => `node-${i}`;
const log = (l: string) => process.stderr.write(`${l}\n`);

async function main(): Promise<void> {
  const run = benchRun();
  const dir = mkdtempSync(join(tmpdir(), 'bench-detection-'));
  const topo = await createTopology(4);
  const socket = join(dir, 'egress.sock');
  const cp = await startControlPlane({ clusterEgressSocket: socket, kwok: false, progress: log });
  let heartbeat: { stop(): Promise<void> } | undefined;
  try {
    topo.spawn(topo.nodes[0]!.netns, [process.execPath, egressProxyJs, '--socket', socket], undefined, join(dir, 'egress-proxy.log'));
    const pods: NetnsPod[] = [await topo.addPod(0, 'legacy', 'agent-0'), await topo.addPod(1, 'legacy', 'agent-1'), await topo.addPod(2, 'cilium', 'agent-2'), await topo.addPod(3, 'cilium', 'agent-3')];
    const peersFile = join(dir, 'cluster.json');
    writeFileSync(peersFile, JSON.stringify({
      agents: pods.map((p) => ({ node: nodeName(p.node.index), pod: p.name, ip: p.ip })),
      // Node 3 is the one being migrated, in its gate step: the agents see its phase (from the
      // plugin's annotation) and probe the cells involving it at the focus interval.
      nodes: topo.nodes.map((n) => ({ name: nodeName(n.index), addresses: [n.underlayIp], labels: n.index >= 2 ? { [migrationLabel]: 'true' } : {}, ...(n.index === 3 ? { phase: 'gate' } : {}) })),
      ciliumNodeCidrs: Object.fromEntries(topo.nodes.map((n) => [nodeName(n.index), [n.ciliumCidr]])),
    }));
    const startAgent = (pod: NetnsPod): ManagedProcess =>
      topo.spawn(pod.netns, [process.execPath, agentJs, '--peers-file', peersFile, '--port', '8080'], { PATH: process.env.PATH ?? '', NODE_NAME: nodeName(pod.node.index), POD_NAME: pod.name, POD_NAMESPACE: agentNamespace, POD_IP: pod.ip }, join(dir, `${pod.name}-${Date.now()}.log`));
    const agents = new Map(pods.map((p) => [p.name, startAgent(p)]));
    const kube = labKube(cp.kubeconfig);
    for (const n of topo.nodes) await registerLabNode(kube, nodeName(n.index), n.index >= 2 ? { [migrationLabel]: 'true' } : {});
    heartbeat = nodeHeartbeat(kube, topo.nodes.map((n) => nodeName(n.index)));
    await ensureNamespace(kube, agentNamespace);
    for (const p of pods) await registerLabPod(kube, { namespace: agentNamespace, name: p.name, node: nodeName(p.node.index), ip: p.ip, labels: { 'app.kubernetes.io/name': 'cilium-migrate-agent' } });

    const verdict = async (since: Date, focus: string[] = []) => {
      const r = await runPlugin(['connectivity', '--kubeconfig', cp.kubeconfig, '--since', since.toISOString(), '--request-timeout', '1s', '-o', 'json', ...focus.flatMap((f) => ['--focus', f])], { timeoutMs: 60_000 });
      return r.code === 0 ? 'PASS' : r.code === 8 ? 'FAIL' : r.code === 9 ? 'UNKNOWN' : `exit ${r.code}: ${r.stderr}`;
    };
    /** Seconds from `from` until `connectivity` (counting evidence since `since`) first answers `want`, at the end of that read. */
    const until = async (want: string, since: Date, focus: string[] = [], limitS = 120, from = since) => {
      for (;;) {
        const v = await verdict(since, focus);
        const elapsed = (Date.now() - from.getTime()) / 1000;
        if (v === want) return elapsed;
        if (elapsed > limitS) throw new Error(`no ${want} after ${limitS}s (last ${v})`);
      }
    };
    const readyz = async (pod: NetnsPod) => (await topo.exec(pod.netns, [process.execPath, '-e', 'fetch("http://127.0.0.1:8080/readyz").then(r=>process.exit(r.ok?0:1),()=>process.exit(1))'], { timeoutMs: 5000 })).code === 0;

    log('waiting for a first PASS');
    await until('PASS', new Date(), [], 180);
    const detection: number[] = [];
    const toPass: number[] = [];
    for (let i = 0; i < runs; i++) {
      await new Promise((r) => setTimeout(r, 2000 + Math.random() * intervalSeconds * 1000));
      const fault = new Date();
      await topo.dropUdpPort(2, netnsOverlays.cilium.udpPort);
      // As a person (or the engine between steps) reads it: the default look-back of 30 s.
      detection.push(await until('FAIL', new Date(fault.getTime() - 30_000), [], 120, fault));
      await topo.restoreUdpPort(2, netnsOverlays.cilium.udpPort);
      log(`run ${i + 1}: FAIL ${detection.at(-1)!.toFixed(1)}s after the drop`);
      await until('PASS', new Date());

      // The agent of node 3 restarts; from the moment it is Ready, how long until the gate passes?
      const pod = pods[3]!;
      await agents.get(pod.name)!.stop(2000);
      agents.set(pod.name, startAgent(pod));
      while (!(await readyz(pod))) await new Promise((r) => setTimeout(r, 100));
      const ready = new Date();
      toPass.push(await until('PASS', ready, [nodeName(3)]));
      log(`run ${i + 1}: PASS ${toPass.at(-1)!.toFixed(1)}s after the agent was Ready`);
    }
    const targetS = 2 * intervalSeconds + 2;
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const body = [
      `Command: \`make bench-detection\` (bench/detection.ts), ${runs} runs.`,
      run.machine(),
      `Setup: 4 nodes as network namespaces (2 on the legacy overlay, 2 on Cilium's), a real agent per node at its defaults (probe interval ${intervalSeconds} s, 2 s for cells of a node being migrated, timeout 1 s, ICMP + HTTP), the real control plane reaching the agents through the egress proxy, and the bundled plugin's \`connectivity -o json\` run back to back (each read is a whole plugin process, about half a second). Fault: an iptables drop of UDP 8473 (Cilium's VXLAN) on a Cilium node. "Agent Ready": the agent of the Cilium node being migrated (phase \`gate\` on its Node, so every agent probes its cells at the focus interval) restarted and answering /readyz; the read then counts only evidence from that moment (\`--since\`) with the node in focus, which needs 3 fresh samples per cell (\`--min-samples\`, the default).`,
      '',
      '| latency | seconds, median (min-max) |',
      '|---|---|',
      `| fault to FAIL | ${spread(detection)} |`,
      `| agent Ready to PASS | ${spread(toPass)} |`,
      '',
      `Target: within two probe intervals plus 2 s (${targetS} s): fault to FAIL ${med(detection) <= targetS ? 'MET' : 'MISSED'}; agent Ready to PASS ${med(toPass) <= targetS ? 'MET' : `MISSED`}.`,
      'Not covered: real Cilium and its VXLAN device (the fault is an iptables drop of the lab overlay\'s port), partial faults (loss below 100 %), clusters above the full-mesh size (there a node\'s ring and the agents of the nodes in focus probe it, not every agent), a gate round inside `node` or `run` (which reuses its process instead of starting one per read).',
    ].join('\n');
    process.stdout.write(`${body}\n`);
    updateSection('Detection and gate latency', body);
  } finally {
    await heartbeat?.stop();
    await cp.stop();
    await topo.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
