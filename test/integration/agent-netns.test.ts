// The probe agent on a real data plane: four nodes as network namespaces with both VXLAN overlays
// (Flannel's on UDP 8472, Cilium's on 8473), two nodes' agents on the legacy overlay and two on
// Cilium's, each agent a real process in its pod's namespace. Faults are real: iptables drops, MTU.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cellFreshness, parseRow, type CellStats, type ProbeProtocol, type Row } from '../../lib/row.js';
import type { ManagedProcess } from '../../lab/process.js';
import { createTopology, netnsOverlays, type NetnsPod, type Topology } from '../../lab/netns.js';
import { bundledPlugin } from '../harness/plugin.js';
import { eventually } from '../harness/wait.js';

const agentJs = bundledPlugin.replace(/kubectl-cilium_migrate$/, 'agent.js');
const intervalMs = 1000;
const timeoutMs = 500;
const windowMs = 10_000;
const protocols: ProbeProtocol[] = ['icmp', 'http', 'icmp-large'];

type CellState = 'ok' | 'fail' | 'pending';

/** Whether the cell's evidence since `since` says reachable, unreachable, or not yet either. */
function stateSince(s: CellStats | undefined, since: number): CellState {
  const ok = s?.lastSuccessAt ? Date.parse(s.lastSuccessAt) : 0;
  const bad = s?.lastFailureAt ? Date.parse(s.lastFailureAt) : 0;
  if (ok > since && ok > bad) return 'ok';
  if (bad > since && bad > ok) return 'fail';
  return 'pending';
}

describe('probe agents on a dual-overlay network namespace data plane', () => {
  let topo: Topology;
  let dir: string;
  const agents = new Map<string, { pod: NetnsPod; proc: ManagedProcess }>();
  const nodeName = (i: number) => `node-${i}`;

  /** Every agent's row, read from inside its own pod namespace. */
  async function rows(): Promise<Map<string, Row>> {
    const out = new Map<string, Row>();
    await Promise.all(
      [...agents].map(async ([name, a]) => {
        if (!a.proc.running()) return;
        const r = await topo.exec(a.pod.netns, [process.execPath, '-e', 'fetch("http://127.0.0.1:8080/v1/row").then(r=>r.text()).then(t=>process.stdout.write(t))'], { timeoutMs: 5000 });
        if (r.code === 0) out.set(name, parseRow(JSON.parse(r.stdout)));
      }),
    );
    return out;
  }

  /** The state of every (source agent, destination agent, protocol) cell since `since`. */
  async function cells(since: number, only: ProbeProtocol[] = protocols) {
    const result: { src: string; dst: string; protocol: ProbeProtocol; state: CellState }[] = [];
    for (const [src, row] of await rows()) {
      for (const cell of row.cells) {
        for (const protocol of only) result.push({ src, dst: cell.peer.pod, protocol, state: stateSince(cell.stats.find((s) => s.protocol === protocol), since) });
      }
    }
    return result;
  }

  before(async () => {
    topo = await createTopology(4);
    dir = mkdtempSync(join(tmpdir(), 'agent-netns-'));
    // Nodes 0 and 1 still on the legacy CNI, 2 and 3 migrated; every node has a CiliumNode (Cilium
    // runs everywhere in migration mode) and both overlays.
    const pods = [
      await topo.addPod(0, 'legacy', 'agent-0'),
      await topo.addPod(1, 'legacy', 'agent-1'),
      await topo.addPod(2, 'cilium', 'agent-2'),
      await topo.addPod(3, 'cilium', 'agent-3'),
    ];
    const peersFile = join(dir, 'cluster.json');
    writeFileSync(peersFile, JSON.stringify({
      agents: pods.map((p) => ({ node: nodeName(p.node.index), pod: p.name, ip: p.ip })),
      nodes: topo.nodes.map((n) => ({ name: nodeName(n.index), addresses: [n.underlayIp], labels: n.index >= 2 ? { 'io.cilium.migration/cilium-default': 'true' } : {} })),
      ciliumNodeCidrs: Object.fromEntries(topo.nodes.map((n) => [nodeName(n.index), [n.ciliumCidr]])),
    }));
    for (const pod of pods) {
      const proc = topo.spawn(pod.netns, [
        process.execPath, agentJs, '--peers-file', peersFile, '--port', '8080',
        '--interval', `${intervalMs}ms`, '--timeout', `${timeoutMs}ms`, '--window', `${windowMs}ms`,
        '--large-packet-size', '1400', '--max-probes-per-second', '100',
      ], { PATH: process.env.PATH ?? '', NODE_NAME: nodeName(pod.node.index), POD_NAME: pod.name, POD_NAMESPACE: 'cilium-migrate', POD_IP: pod.ip }, join(dir, `${pod.name}.log`));
      agents.set(pod.name, { pod, proc });
    }
  });
  after(async () => {
    await topo?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('shows every pair reachable over ICMP, HTTP and large packets, with the right overlays', async () => {
    const start = Date.now();
    await eventually('every cell reachable', async () => {
      const all = await cells(start);
      return all.length === 4 * 3 * protocols.length && all.every((c) => c.state === 'ok') ? true : undefined;
    }, 20_000, 500);
    for (const [name, row] of await rows()) {
      const expected = Number(name.slice(-1)) >= 2 ? 'cilium' : 'legacy';
      assert.equal(row.identity.overlay, expected, `${name} is on ${expected}`);
      assert.equal(row.identity.overlayMismatch, undefined);
      for (const cell of row.cells) assert.equal(cell.peer.overlay, Number(cell.peer.pod.slice(-1)) >= 2 ? 'cilium' : 'legacy', `${name} classifies ${cell.peer.pod}`);
    }
  });

  it('dropping UDP 8473 on node 2 fails exactly the cells of its Cilium agent within two intervals, and restoring heals them', async () => {
    const fault = Date.now();
    await topo.dropUdpPort(2, netnsOverlays.cilium.udpPort);
    try {
      const deadline = fault + 2 * intervalMs + timeoutMs + 1500;
      const affected = (c: { src: string; dst: string }) => c.src === 'agent-2' || c.dst === 'agent-2';
      const settled = await eventually('the fault to show', async () => {
        const all = await cells(fault, ['icmp', 'http']);
        return all.every((c) => c.state === (affected(c) ? 'fail' : 'ok')) ? all : undefined;
      }, 15_000, 250);
      assert.ok(Date.now() <= deadline + 1000, `seen within two probe intervals (+ a read): ${Date.now() - fault} ms`);
      assert.equal(settled.filter((c) => c.state === 'fail').length, 2 * 3 * 2, 'exactly the 6 pairs of agent-2, both protocols');
    } finally {
      await topo.restoreUdpPort(2, netnsOverlays.cilium.udpPort);
    }
    const healed = Date.now();
    await eventually('every cell reachable again', async () => ((await cells(healed, ['icmp', 'http'])).every((c) => c.state === 'ok') ? true : undefined), 2 * intervalMs + timeoutMs + 3000, 250);
  });

  it('catches an MTU mismatch on one overlay with the large-packet probe while small probes pass', async () => {
    const fault = Date.now();
    await topo.setMtu(3, netnsOverlays.cilium.dev, 1200);
    try {
      // Only what node 3 sends into its shrunken cilium_vxlan with DF set fails: agent-3's large
      // probes to agent-2. Echo replies carry no DF, so they are fragmented and get through.
      const affected = (c: { src: string; dst: string }) => c.src === 'agent-3' && c.dst === 'agent-2';
      let seen = '';
      const settled = await eventually('the MTU problem to show', async () => {
        const all = await cells(fault);
        seen = all.filter((c) => c.state !== 'ok').map((c) => `${c.src}->${c.dst} ${c.protocol} ${c.state}`).join('; ');
        return all.every((c) => c.state === (c.protocol === 'icmp-large' && affected(c) ? 'fail' : 'ok')) ? all : undefined;
      }, 15_000, 250).catch((err: Error) => {
        throw new Error(`${err.message}; not ok: ${seen}`);
      });
      const failing = settled.filter((c) => c.state === 'fail');
      assert.deepEqual(failing.map((c) => `${c.src}->${c.dst} ${c.protocol}`), ['agent-3->agent-2 icmp-large']);
      const row = (await rows()).get('agent-3')!;
      const large = row.cells.find((c) => c.peer.pod === 'agent-2')!.stats.find((s) => s.protocol === 'icmp-large')!;
      assert.ok(large.lastError, 'the failure carries a reason');
    } finally {
      await topo.setMtu(3, netnsOverlays.cilium.dev, 1450);
    }
  });

  it('a stopped agent (SIGTERM, clean exit): HTTP to it fails at once, and its row goes stale, then unknown', async () => {
    const last = (await rows()).get('agent-1')!;
    const killedAt = Date.now();
    const proc = agents.get('agent-1')!.proc;
    await proc.stop();
    assert.equal(await proc.exited, 0, 'SIGTERM ends the agent cleanly');
    let seen = '';
    await eventually('HTTP to the dead agent failing, ICMP to its live pod still fine', async () => {
      const all = await cells(killedAt, ['icmp', 'http']);
      const toIt = all.filter((c) => c.dst === 'agent-1');
      seen = toIt.map((c) => `${c.src}->${c.dst} ${c.protocol} ${c.state}`).join('; ');
      return toIt.length === 6 && toIt.every((c) => (c.protocol === 'http' ? c.state === 'fail' : c.state === 'ok')) ? true : undefined;
    }, 10_000, 250).catch((err: Error) => {
      throw new Error(`${err.message}; cells: ${seen}`);
    });
    assert.equal((await rows()).has('agent-1'), false, 'its row is no longer served');
    const freshness = (now: number) => new Set(last.cells.flatMap((c) => c.stats.map((s) => cellFreshness(s, now, last.intervalMs, last.windowMs))));
    assert.deepEqual([...freshness(killedAt)], ['fresh']);
    // Judged at fixed instants after the kill: the wait above can take seconds on a busy machine,
    // and judging at "now" then would skip past the stale period.
    const staleAt = killedAt + 2 * intervalMs + 2500;
    await new Promise((r) => setTimeout(r, Math.max(0, staleAt - Date.now())));
    assert.deepEqual([...freshness(staleAt)], ['stale'], 'stale after two intervals');
    const unknownAt = killedAt + windowMs + 500;
    await new Promise((r) => setTimeout(r, Math.max(0, unknownAt - Date.now())));
    assert.deepEqual([...freshness(unknownAt)], ['unknown'], 'unknown after the window');
  });
});
