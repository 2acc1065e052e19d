// The agent's row of the reachability matrix: per peer and protocol a sliding window of samples.
// One writer (the prober) records; readers (HTTP, metrics) take snapshots.
import type { CellStats, PeerRef, ProbeProtocol, RowCell } from '../lib/row.js';

export interface Sample {
  at: number;
  ok: boolean;
  rttMs?: number | undefined;
  error?: string | undefined;
}

export interface SelectedPeer {
  ref: PeerRef;
  focus: boolean;
  protocols: ProbeProtocol[];
}

export const peerKey = (p: Pick<PeerRef, 'pod' | 'ip'>) => `${p.pod}@${p.ip}`;

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export function summarize(protocol: ProbeProtocol, samples: readonly Sample[]): CellStats {
  const ok = samples.filter((s) => s.ok);
  const rtts = ok.map((s) => s.rttMs).filter((r): r is number => r !== undefined).sort((a, b) => a - b);
  const last = (pred: (s: Sample) => boolean) => {
    for (let i = samples.length - 1; i >= 0; i--) if (pred(samples[i]!)) return samples[i]!;
    return undefined;
  };
  const lastFailure = last((s) => !s.ok);
  const iso = (t: number | undefined) => (t === undefined ? null : new Date(t).toISOString());
  return {
    protocol,
    samples: samples.length,
    successes: ok.length,
    successRatio: samples.length ? ok.length / samples.length : null,
    rttP50Ms: percentile(rtts, 50),
    rttP90Ms: percentile(rtts, 90),
    rttP99Ms: percentile(rtts, 99),
    firstSampleAt: iso(samples[0]?.at),
    lastSampleAt: iso(samples.at(-1)?.at),
    lastSuccessAt: iso(last((s) => s.ok)?.at),
    lastFailureAt: iso(lastFailure?.at),
    lastError: lastFailure?.error ?? null,
  };
}

export class MatrixStore {
  private peers = new Map<string, SelectedPeer>();
  private windows = new Map<string, Map<ProbeProtocol, Sample[]>>();
  private gen = 0;

  constructor(
    readonly windowMs: number,
    private readonly maxSamples: number,
    private readonly now: () => number = Date.now,
  ) {}

  get generation(): number {
    return this.gen;
  }

  /** Replaces the peer set; windows of peers that left are dropped. */
  setPeers(peers: SelectedPeer[]): void {
    const next = new Map(peers.map((p) => [peerKey(p.ref), p]));
    for (const key of this.windows.keys()) if (!next.has(key)) this.windows.delete(key);
    this.peers = next;
    this.gen++;
  }

  selected(): SelectedPeer[] {
    return [...this.peers.values()];
  }

  /** Adds a sample; ignored when the peer left meanwhile. */
  record(peer: PeerRef, protocol: ProbeProtocol, sample: Sample): void {
    const key = peerKey(peer);
    if (!this.peers.has(key)) return;
    let byProto = this.windows.get(key);
    if (!byProto) this.windows.set(key, (byProto = new Map()));
    const window = byProto.get(protocol) ?? [];
    window.push(sample);
    this.trim(window);
    byProto.set(protocol, window);
    this.gen++;
  }

  /**
   * The statistics of one cell (trimmed to the window now); with `since`, of the samples taken at
   * or after it only, so a gate never counts evidence from before the change it judges.
   */
  stats(peer: PeerRef, protocol: ProbeProtocol, since?: number): CellStats {
    const window = this.windows.get(peerKey(peer))?.get(protocol) ?? [];
    this.trim(window);
    return summarize(protocol, since === undefined ? window : window.filter((s) => s.at >= since));
  }

  /** An immutable copy of the row's cells, optionally limited to samples since a time. */
  snapshot(since?: number): { generation: number; cells: RowCell[] } {
    const cells = [...this.peers.values()].map((p) => ({
      peer: { ...p.ref },
      focus: p.focus,
      stats: p.protocols.map((proto) => this.stats(p.ref, proto, since)),
    }));
    return { generation: this.gen, cells };
  }

  private trim(window: Sample[]): void {
    const cutoff = this.now() - this.windowMs;
    let drop = 0;
    while (drop < window.length && window[drop]!.at < cutoff) drop++;
    if (window.length - drop > this.maxSamples) drop = window.length - this.maxSamples;
    if (drop > 0) window.splice(0, drop);
  }
}
