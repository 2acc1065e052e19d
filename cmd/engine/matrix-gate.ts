// The engine's gate over the reachability matrix: the baseline step reads the matrix and records
// what already fails (kept on the node, so a resumed run uses the same baseline); the gate step
// reads it again with the node in focus, counting only samples taken since the node's restart.
import { baselineOf, reasonLines, type Baseline, type GatePolicy } from '../../lib/connectivity-gate.js';
import { matrixRound, type RowSource } from '../matrix/read.js';
import type { OverlayTunnels } from '../../lib/tunnel.js';
import type { Clock } from '../../lib/clock.js';
import type { BaselineResult, Gate, GateResult } from './gate.js';

export interface MatrixGateOptions {
  policy: GatePolicy;
  concurrency: number;
  timeoutMs: number;
  /** How far back the baseline looks. */
  lookbackMs: number;
  /** The overlays' tunnels, for the hint naming a blocked one. */
  tunnels?: OverlayTunnels | undefined;
}

/** The baseline as kept in the baseline step's data, or undefined when the record is not one. */
export function baselineFromRecord(record: Record<string, unknown> | undefined): Baseline | undefined {
  const b = record?.matrixBaseline as Partial<Baseline> | undefined;
  if (!b || typeof b.takenAt !== 'string' || !Array.isArray(b.cells)) return undefined;
  return { takenAt: b.takenAt, cells: b.cells.map(String), overlayMismatches: Array.isArray(b.overlayMismatches) ? b.overlayMismatches.map(String) : [] };
}

export function matrixGate(source: RowSource, opts: MatrixGateOptions, clock: Pick<Clock, 'now'>): Gate {
  const reading = { concurrency: opts.concurrency, timeoutMs: opts.timeoutMs, now: clock.now, policy: opts.policy, tunnels: opts.tunnels };
  return {
    name: 'matrix',
    async baseline(): Promise<BaselineResult> {
      const { matrix, evaluation } = await matrixRound(source, { ...reading, since: new Date(clock.now() - opts.lookbackMs), focus: [] });
      // Without an agent on every Ready node the gate could never judge those nodes: stop here.
      const missing = evaluation.findings.filter((f) => f.rule === 'agents');
      if (missing.length) return { verdict: 'UNKNOWN', reasons: [...missing.map((f) => f.message), ...evaluation.hints.filter((h) => h.cause === 'agent-not-running').map((h) => `hint: ${h.message}`)] };
      const baseline = baselineOf(evaluation, matrix, new Date(clock.now()));
      const reasons = [`${matrix.nodes.length} nodes with agents, ${evaluation.checked} cells checked`];
      if (baseline.cells.length || baseline.overlayMismatches.length) {
        reasons.push(`already failing, recorded as the baseline (tolerated outside the focus): ${[...baseline.cells, ...baseline.overlayMismatches.map((n) => `${n} (overlay)`)].join(', ')}`);
      }
      return { verdict: 'PASS', reasons, record: { matrixBaseline: baseline } };
    },
    async check(focus, since, record, inFlight = []): Promise<GateResult> {
      const { evaluation } = await matrixRound(source, { ...reading, since, focus: [focus.name], baseline: baselineFromRecord(record), exclude: inFlight });
      return { verdict: evaluation.verdict, reasons: reasonLines(evaluation) };
    },
  };
}
