// The cluster's reachability matrix, assembled from the agents' rows: source node against
// destination node, one mark per cell and per protocol. Pure: the rows come in as values (read
// through a RowSource elsewhere), so every rule here is tested by tables.
import { agentFullMeshMax as defaultFullMeshUpTo } from './defaults.js';
import { cellFreshness, type CellStats, type ProbeProtocol, type Row } from './row.js';

/** How a cell looks: `unprobed` means the source agent does not probe that peer (ring selection). */
export type CellMark = 'reachable' | 'lossy' | 'unreachable' | 'unknown' | 'unprobed';
export type NodeOverlay = 'legacy' | 'cilium';

/** A node as the cluster describes it. */
export interface NodeFacts {
  name: string;
  ready: boolean;
  /** The overlay its pods should be on (Cilium once labelled for migration). */
  expectedOverlay: NodeOverlay;
}

/** One agent pod and what reading its row gave. */
export interface AgentRead {
  node: string;
  pod: string;
  ip: string;
  ready: boolean;
  row?: Row | undefined;
  /** Why no row: the proxy GET failed, timed out, or the answer was not a row. */
  error?: string | undefined;
}

/** Everything one read of the cluster returned, and when. Times in ms since the epoch. */
export interface MatrixRead {
  nodes: NodeFacts[];
  agents: AgentRead[];
  /** Only samples taken at or after this count. */
  since: number;
  readAt: number;
}

export interface MatrixNode {
  name: string;
  ready: boolean;
  /** The overlay its agent is on (from its row), else the expected one. */
  overlay: NodeOverlay;
  expectedOverlay: NodeOverlay;
  agent?: { pod: string; ip: string; ready: boolean } | undefined;
  /** Why this node's row is not evidence (no agent, unreadable, stale); unset when it is. */
  rowProblem?: string | undefined;
  /** Set when the agent's pod is on another overlay than its node should be. */
  overlayMismatch?: string | undefined;
}

export interface ProtocolCell {
  protocol: ProbeProtocol;
  mark: Exclude<CellMark, 'unprobed'>;
  /** Samples since the matrix's `since`. */
  samples: number;
  successRatio: number | null;
  rttP50Ms: number | null;
  rttP99Ms: number | null;
  lastError: string | null;
  /** Why the mark is unknown. */
  why?: string | undefined;
}

export interface MatrixCell {
  src: string;
  dst: string;
  srcOverlay: NodeOverlay;
  dstOverlay: NodeOverlay;
  /** The worst of its protocols. */
  mark: CellMark;
  protocols: ProtocolCell[];
  why?: string | undefined;
}

export interface Matrix {
  since: string;
  readAt: string;
  nodes: MatrixNode[];
  cells: MatrixCell[];
}

export interface AssembleOptions {
  /** A row generated this long before the read is not evidence. */
  staleRowMs: number;
  /**
   * Up to this many nodes the agents probe a full mesh, so a pair they do not probe is worth a cell
   * (`unprobed`); above, the ring leaves most pairs out by design and only the focus nodes' pairs
   * get one, which keeps the matrix O(N) cells.
   */
  fullMeshUpTo?: number;
  focus?: string[];
}

/** The key that names one cell and protocol in reasons and baselines: `src>dst/protocol`. */
export const cellKey = (src: string, dst: string, protocol?: string) => `${src}>${dst}${protocol ? `/${protocol}` : ''}`;

const markOrder: Record<CellMark, number> = { unreachable: 4, lossy: 3, unknown: 2, unprobed: 1, reachable: 0 };

/** The worst mark of several (unreachable > lossy > unknown > reachable). */
export function worstMark(marks: CellMark[]): CellMark {
  return marks.reduce<CellMark>((worst, m) => (markOrder[m] > markOrder[worst] ? m : worst), 'reachable');
}

/** The mark of one protocol's statistics, taken since `since`, judged at the agent's `now`. */
export function protocolCell(stats: CellStats, row: Pick<Row, 'intervalMs' | 'windowMs'>, agentNow: number, since: number): ProtocolCell {
  const base = { protocol: stats.protocol, samples: stats.samples, successRatio: stats.successRatio, rttP50Ms: stats.rttP50Ms, rttP99Ms: stats.rttP99Ms, lastError: stats.lastError };
  // A sample from before `since` means the agent did not filter: never let old evidence pass.
  if (stats.firstSampleAt && Date.parse(stats.firstSampleAt) < since) return { ...base, mark: 'unknown', why: `holds samples from before ${new Date(since).toISOString()}` };
  if (stats.samples === 0 || stats.successRatio === null) return { ...base, mark: 'unknown', why: `no sample since ${new Date(since).toISOString()}` };
  const fresh = cellFreshness(stats, agentNow, row.intervalMs, row.windowMs);
  if (fresh !== 'fresh') return { ...base, mark: 'unknown', why: `${fresh}: last sample at ${stats.lastSampleAt}` };
  const mark = stats.successRatio >= 1 ? 'reachable' : stats.successRatio <= 0 ? 'unreachable' : 'lossy';
  return { ...base, mark };
}

/** Why a row cannot be used as evidence, or undefined when it can. */
export function rowProblem(agent: AgentRead, read: Pick<MatrixRead, 'since' | 'readAt'>, opts: AssembleOptions): string | undefined {
  if (!agent.ready) return `agent pod ${agent.pod} is not Ready`;
  if (!agent.row) return `row of ${agent.pod} unreadable: ${agent.error ?? 'no answer'}`;
  const row = agent.row;
  if (row.identity.node !== agent.node) return `agent pod ${agent.pod} reports node ${row.identity.node}, not ${agent.node}`;
  if (row.since === undefined || Date.parse(row.since) < read.since) return `agent ${agent.pod} did not limit its row to samples since ${new Date(read.since).toISOString()} (an older agent: upgrade it)`;
  const generated = Date.parse(row.generatedAt);
  if (!Number.isFinite(generated) || read.readAt - generated > opts.staleRowMs) return `row of ${agent.pod} is stale: generated at ${row.generatedAt}`;
  return undefined;
}

/**
 * Joins the rows into the matrix. Every node that is Ready or has an agent appears; a node whose
 * row is missing or unusable gets UNKNOWN cells towards every other node, and a node without an
 * agent UNKNOWN cells from every source, so nothing is a silent gap. Pairs a working agent does not
 * probe (ring selection in large clusters) are `unprobed`.
 */
export function assembleMatrix(read: MatrixRead, opts: AssembleOptions): Matrix {
  const agentsByNode = new Map<string, AgentRead>();
  for (const a of read.agents) {
    const seen = agentsByNode.get(a.node);
    // Two pods on a node (a restart in progress): prefer the one with a usable row, then the Ready one.
    if (!seen || (!seen.row && a.row) || (!seen.ready && a.ready)) agentsByNode.set(a.node, a);
  }
  const facts = new Map(read.nodes.map((n) => [n.name, n]));
  const names = [...new Set([...read.nodes.filter((n) => n.ready).map((n) => n.name), ...agentsByNode.keys()])].sort();

  const nodes: MatrixNode[] = names.map((name) => {
    const fact = facts.get(name);
    const agent = agentsByNode.get(name);
    const expectedOverlay = fact?.expectedOverlay ?? 'legacy';
    const problem = agent ? rowProblem(agent, read, opts) : `no agent pod on ${name}`;
    const identity = !problem ? agent!.row!.identity : undefined;
    const overlay: NodeOverlay = identity && (identity.overlay === 'legacy' || identity.overlay === 'cilium') ? identity.overlay : expectedOverlay;
    const mismatch = identity && identity.overlay !== expectedOverlay ? identity.overlayMismatch ?? `agent pod ${identity.pod} (${identity.ip}) is on ${identity.overlay}, but ${name} should be on ${expectedOverlay}` : undefined;
    return {
      name,
      ready: fact?.ready ?? false,
      overlay,
      expectedOverlay,
      ...(agent ? { agent: { pod: agent.pod, ip: agent.ip, ready: agent.ready } } : {}),
      ...(problem ? { rowProblem: problem } : {}),
      ...(mismatch ? { overlayMismatch: mismatch } : {}),
    };
  });
  const sinceIso = new Date(read.since).toISOString();

  const fullMeshUpTo = opts.fullMeshUpTo ?? defaultFullMeshUpTo;
  const index = new Map(nodes.map((n, i) => [n.name, i]));
  const agentless = nodes.filter((n) => !n.agent).map((n) => n.name);
  const focus = new Set(opts.focus ?? []);
  const cells: MatrixCell[] = [];
  const unknownCell = (src: MatrixNode, dst: MatrixNode, why: string): MatrixCell => ({ src: src.name, dst: dst.name, srcOverlay: src.overlay, dstOverlay: dst.overlay, mark: 'unknown', protocols: [], why });
  for (const src of nodes) {
    if (src.rowProblem) {
      for (const dst of nodes) if (dst !== src) cells.push(unknownCell(src, dst, src.rowProblem));
      continue;
    }
    const row = agentsByNode.get(src.name)!.row!;
    const agentNow = Date.parse(row.generatedAt);
    const peerCells = new Map<string, Row['cells'][number]>();
    for (const c of row.cells) {
      const dstAgent = agentsByNode.get(c.peer.node);
      const current = peerCells.get(c.peer.node);
      // A row may still hold the node's previous agent pod: the current pod's cell wins.
      if (!current || c.peer.pod === dstAgent?.pod) peerCells.set(c.peer.node, c);
    }
    // Above the full-mesh size only probed pairs, agentless and focus nodes are candidates: O(cells), not O(N^2).
    // That holds for a focus source too: its agent probes its ring (every destination overlay) and
    // the other focus nodes, not the whole cluster (agent/peers.ts), so a pair it leaves out is no
    // missing evidence; every agent probing the focus node gives the cells towards it.
    const candidates = nodes.length <= fullMeshUpTo
      ? nodes
      : [...new Set([...peerCells.keys(), ...agentless, ...focus])].flatMap((n) => (index.has(n) ? [nodes[index.get(n)!]!] : [])).sort((a, b) => index.get(a.name)! - index.get(b.name)!);
    for (const dst of candidates) {
      if (dst === src) continue;
      const c = peerCells.get(dst.name);
      if (!c) {
        if (!dst.agent) cells.push(unknownCell(src, dst, `no agent pod on ${dst.name} to probe`));
        else if (nodes.length > fullMeshUpTo && !focus.has(dst.name)) continue;
        else cells.push({ src: src.name, dst: dst.name, srcOverlay: src.overlay, dstOverlay: dst.overlay, mark: 'unprobed', protocols: [], why: `${src.agent!.pod} does not probe ${dst.name}` });
        continue;
      }
      const protocols = c.stats.map((s) => protocolCell(s, row, agentNow, read.since));
      const dstOverlay: NodeOverlay = c.peer.overlay === 'legacy' || c.peer.overlay === 'cilium' ? c.peer.overlay : dst.overlay;
      const mark = protocols.length ? worstMark(protocols.map((p) => p.mark)) : 'unknown';
      const why = mark === 'unknown' ? protocols.find((p) => p.why)?.why ?? `no probe results since ${sinceIso}` : undefined;
      cells.push({ src: src.name, dst: dst.name, srcOverlay: src.overlay, dstOverlay, mark, protocols, ...(why ? { why } : {}) });
    }
  }
  return { since: sinceIso, readAt: new Date(read.readAt).toISOString(), nodes, cells };
}

export type OverlayPair = `${NodeOverlay}->${NodeOverlay}`;
export const overlayPairs: OverlayPair[] = ['legacy->legacy', 'legacy->cilium', 'cilium->legacy', 'cilium->cilium'];

export type MarkCounts = Record<Exclude<CellMark, 'unprobed'>, number> & { total: number };

/** The 2x2 overlay summary: per (source overlay, destination overlay), cells by mark; unprobed pairs left out. */
export function overlaySummary(matrix: Pick<Matrix, 'cells'>): Record<OverlayPair, MarkCounts> {
  const empty = (): MarkCounts => ({ reachable: 0, lossy: 0, unreachable: 0, unknown: 0, total: 0 });
  const out = Object.fromEntries(overlayPairs.map((p) => [p, empty()])) as Record<OverlayPair, MarkCounts>;
  for (const c of matrix.cells) {
    if (c.mark === 'unprobed') continue;
    const counts = out[`${c.srcOverlay}->${c.dstOverlay}`];
    counts[c.mark]++;
    counts.total++;
  }
  return out;
}
