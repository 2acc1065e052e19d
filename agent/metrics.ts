// Prometheus metrics with bounded cardinality: everything aggregated by source overlay, destination
// overlay and protocol (O(1) series per agent, O(N) for the cluster); per-peer series only for
// peers that are failing right now, capped, and removed when they recover or leave.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { cellFreshness, type AgentIdentity, type PeerRef, type ProbeProtocol, type RowCell } from '../lib/row.js';
import type { ProbeResult } from './prober.js';

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly info: Gauge;
  private readonly probes: Counter;
  private readonly rtt: Histogram;
  private readonly ratio: Gauge;
  private readonly peers: Gauge;
  private readonly failing: Gauge;
  private readonly failingDropped: Gauge;
  private readonly mismatch: Gauge;
  private readonly nodes: Gauge;
  private readonly stale: Gauge;
  private failingLabels = new Map<string, Record<string, string>>();
  private pairLabels = new Map<string, Record<string, string>>();

  /** `freshness` is the pace of the probes, which says when a cell is stale (lib/row.ts cellFreshness). */
  constructor(
    private identity: AgentIdentity,
    private readonly maxFailingSeries: number,
    private readonly freshness: { intervalMs: number; windowMs: number } = { intervalMs: 5000, windowMs: 60_000 },
  ) {
    const registers = [this.registry];
    this.info = new Gauge({ name: 'cilium_migrate_agent_info', help: 'The agent: its node, overlay and version (always 1)', labelNames: ['node', 'pod', 'overlay', 'expected_overlay', 'version'], registers });
    this.probes = new Counter({ name: 'cilium_migrate_probes_total', help: 'Probes sent, by overlay pair, protocol and result', labelNames: ['src_overlay', 'dst_overlay', 'protocol', 'result'], registers });
    this.rtt = new Histogram({
      name: 'cilium_migrate_probe_rtt_seconds',
      help: 'Round-trip time of successful probes',
      labelNames: ['src_overlay', 'dst_overlay', 'protocol'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers,
    });
    this.ratio = new Gauge({ name: 'cilium_migrate_reachability_ratio', help: 'Mean success ratio over the window of the peers of an overlay pair (1 = all reachable)', labelNames: ['src_overlay', 'dst_overlay', 'protocol'], registers });
    this.peers = new Gauge({ name: 'cilium_migrate_peers', help: 'Peers probed, by destination overlay', labelNames: ['dst_overlay'], registers });
    this.failing = new Gauge({ name: 'cilium_migrate_peer_failure_ratio', help: 'Failure ratio towards a failing peer (only failing peers have a series)', labelNames: ['src_overlay', 'dst_node', 'dst_pod', 'dst_overlay', 'protocol'], registers });
    this.failingDropped = new Gauge({ name: 'cilium_migrate_failing_peers_unlisted', help: 'Failing peer cells not given a series because of the cap', registers });
    this.mismatch = new Gauge({ name: 'cilium_migrate_overlay_mismatch', help: '1 when this agent is not on the overlay its node should be on', registers });
    // What the agent's discovery sees, so Prometheus alone can tell the migration's progress and
    // notice a node without an agent (one that never got scheduled has no target to be down).
    this.nodes = new Gauge({ name: 'cilium_migrate_nodes', help: 'Nodes in the cluster, by the overlay they should be on (cilium once labelled for migration)', labelNames: ['expected_overlay'], registers });
    this.stale = new Gauge({ name: 'cilium_migrate_stale_cells', help: 'Peer and protocol cells without a sample within two probe intervals (stale or unknown: the prober is falling behind)', registers });
    this.setIdentity(identity);
  }

  setIdentity(identity: AgentIdentity): void {
    this.info.reset();
    this.identity = identity;
    this.info.set({ node: identity.node, pod: identity.pod, overlay: identity.overlay, expected_overlay: identity.expectedOverlay, version: identity.version }, 1);
    this.mismatch.set(identity.overlayMismatch ? 1 : 0);
  }

  /** Records the nodes discovery sees, by the overlay each should be on. */
  setNodes(byExpectedOverlay: Record<'legacy' | 'cilium', number>): void {
    for (const [overlay, n] of Object.entries(byExpectedOverlay)) this.nodes.set({ expected_overlay: overlay }, n);
  }

  /** Counts one probe. */
  observe(peer: PeerRef, protocol: ProbeProtocol, result: ProbeResult): void {
    const labels = { src_overlay: this.identity.overlay, dst_overlay: peer.overlay, protocol };
    this.probes.inc({ ...labels, result: result.ok ? 'success' : 'failure' });
    if (result.ok && result.rttMs !== undefined) this.rtt.observe(labels, result.rttMs / 1000);
  }

  /** Recomputes the gauges from the row's cells. */
  refresh(cells: RowCell[], now = Date.now()): void {
    const src = this.identity.overlay;
    let stale = 0;
    const sums = new Map<string, { labels: Record<string, string>; sum: number; n: number }>();
    const perOverlay = new Map<string, number>();
    const failing: { key: string; labels: Record<string, string>; value: number }[] = [];
    for (const cell of cells) {
      perOverlay.set(cell.peer.overlay, (perOverlay.get(cell.peer.overlay) ?? 0) + 1);
      for (const s of cell.stats) {
        if (cellFreshness(s, now, this.freshness.intervalMs, this.freshness.windowMs) !== 'fresh') stale += 1;
        if (s.successRatio === null) continue;
        const pair = `${cell.peer.overlay}|${s.protocol}`;
        const agg = sums.get(pair) ?? { labels: { src_overlay: src, dst_overlay: cell.peer.overlay, protocol: s.protocol }, sum: 0, n: 0 };
        agg.sum += s.successRatio;
        agg.n += 1;
        sums.set(pair, agg);
        if (s.successRatio < 1) {
          failing.push({
            key: `${cell.peer.pod}|${s.protocol}`,
            labels: { src_overlay: src, dst_node: cell.peer.node, dst_pod: cell.peer.pod, dst_overlay: cell.peer.overlay, protocol: s.protocol },
            value: 1 - s.successRatio,
          });
        }
      }
    }
    // Pairs that no longer have peers disappear rather than keep their last value.
    for (const [key, labels] of this.pairLabels) if (!sums.has(key)) this.ratio.remove(labels);
    this.pairLabels = new Map([...sums].map(([key, agg]) => [key, agg.labels]));
    for (const agg of sums.values()) this.ratio.set(agg.labels, agg.sum / agg.n);
    this.stale.set(stale);
    this.peers.reset();
    for (const [overlay, n] of perOverlay) this.peers.set({ dst_overlay: overlay }, n);

    // The worst failures first, up to the cap.
    failing.sort((a, b) => b.value - a.value);
    const kept = failing.slice(0, this.maxFailingSeries);
    const keep = new Map(kept.map((f) => [f.key, f.labels]));
    for (const [key, labels] of this.failingLabels) if (!keep.has(key)) this.failing.remove(labels);
    for (const f of kept) this.failing.set(f.labels, f.value);
    this.failingLabels = keep;
    this.failingDropped.set(failing.length - kept.length);
  }
}
