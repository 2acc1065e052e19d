// The reachability row an agent serves at /v1/row: one agent's view of every peer it probes. The
// plugin joins the rows of all agents into the cluster's matrix. Versioned: a reader refuses a
// schema it does not know instead of misreading it.
import type { Overlay } from './overlay.js';

export const rowSchema = 'cilium-migrate.io/row/v1';

export const probeProtocols = ['icmp', 'http', 'icmp-large'] as const;
export type ProbeProtocol = (typeof probeProtocols)[number];

/** Who is talking: from the downward API and the cluster. */
export interface AgentIdentity {
  node: string;
  pod: string;
  namespace: string;
  ip: string;
  /** The overlay this agent's IP is on. */
  overlay: Overlay;
  /** The overlay its node should be on (Cilium once the node is labelled for migration). */
  expectedOverlay: 'legacy' | 'cilium';
  /** Set when `overlay` differs from `expectedOverlay`: the pod predates its node's switch, or the CNI config is wrong. */
  overlayMismatch?: string;
  version: string;
}

/** A probe target. */
export interface PeerRef {
  node: string;
  pod: string;
  ip: string;
  overlay: Overlay;
}

/** One protocol's sliding window towards one peer. Times are ISO strings; RTTs in milliseconds. */
export interface CellStats {
  protocol: ProbeProtocol;
  samples: number;
  successes: number;
  /** successes / samples within the window; null without samples. */
  successRatio: number | null;
  rttP50Ms: number | null;
  rttP90Ms: number | null;
  rttP99Ms: number | null;
  firstSampleAt: string | null;
  lastSampleAt: string | null;
  lastSuccessAt: string | null;
  lastFailureAt: string | null;
  lastError: string | null;
}

export interface RowCell {
  peer: PeerRef;
  /** Peers probed because their node is being migrated, beyond the regular selection. */
  focus: boolean;
  stats: CellStats[];
}

export interface Row {
  schema: typeof rowSchema;
  identity: AgentIdentity;
  /** Increases with every change to the row (a sample, a peer joining or leaving). */
  generation: number;
  generatedAt: string;
  startedAt: string;
  /** The target time between two probes of one peer over one protocol. */
  intervalMs: number;
  windowMs: number;
  /** Set when the reader asked for `?since=`: every cell's statistics cover only samples from then on. */
  since?: string;
  cells: RowCell[];
}

/** Parses a row, refusing unknown schemas and malformed documents with a message. */
export function parseRow(data: unknown): Row {
  const row = data as Partial<Row> | null;
  if (!row || typeof row !== 'object') throw new Error('row: not a JSON object');
  if (row.schema !== rowSchema) throw new Error(`row: schema "${String(row.schema)}" is not ${rowSchema}; upgrade the plugin or the agents so they match`);
  if (!row.identity || typeof row.identity.node !== 'string' || !Array.isArray(row.cells) || typeof row.generation !== 'number') {
    throw new Error('row: missing identity, generation or cells');
  }
  return row as Row;
}

export type CellFreshness = 'fresh' | 'stale' | 'unknown';

/**
 * How current a cell is at `now`: fresh while its last sample is within two probe intervals (plus
 * one timeout's slack), stale until the window has passed, unknown after that or without samples.
 * A stale or unknown cell never counts as reachable.
 */
export function cellFreshness(stats: Pick<CellStats, 'lastSampleAt'>, now: number, intervalMs: number, windowMs: number, slackMs = 2000): CellFreshness {
  if (!stats.lastSampleAt) return 'unknown';
  const age = now - Date.parse(stats.lastSampleAt);
  if (age <= 2 * intervalMs + slackMs) return 'fresh';
  if (age <= windowMs) return 'stale';
  return 'unknown';
}
