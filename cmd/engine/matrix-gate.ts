// The engine's gate over the reachability matrix: the baseline step reads the matrix and records
// what already fails (kept on the node, so a resumed run uses the same baseline); the gate step
// reads it again with the node in focus, counting only samples taken since the node's restart.
// The nodes of a wave share their reads: one read of the matrix per gate round for the whole wave
// (`forWave`), not one per node, which at 1,000 agents and 50 nodes a wave is 1,000 pod-proxy GETs
// per round instead of 50,000.
import { baselineOf, evaluateGate, reasonLines, type Baseline, type GatePolicy } from '../../lib/connectivity-gate.js';
import { defaultConnectivity, defaultGate } from '../../lib/defaults.js';
import { assembleMatrix, type Matrix, type MatrixRead } from '../../lib/reachability.js';
import { matrixRound, readMatrix, type RowSource } from '../matrix/read.js';
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
  /**
   * The time between two gate rounds of a node (--gate-interval): a read the wave made less than
   * this long ago serves another of its nodes, so a wave reads the matrix about once a round.
   */
  roundMs?: number | undefined;
}

/** The baseline as kept in the baseline step's data, or undefined when the record is not one. */
export function baselineFromRecord(record: Record<string, unknown> | undefined): Baseline | undefined {
  const b = record?.matrixBaseline as Partial<Baseline> | undefined;
  if (!b || typeof b.takenAt !== 'string' || !Array.isArray(b.cells)) return undefined;
  return { takenAt: b.takenAt, cells: b.cells.map(String), overlayMismatches: Array.isArray(b.overlayMismatches) ? b.overlayMismatches.map(String) : [] };
}

/** One read of the matrix: `since` and `startedAt` are set when it starts. */
interface SharedRead {
  id: number;
  since: number;
  startedAt: number;
  matrix: Promise<Matrix>;
}

/**
 * One read of the matrix shared by the gates of a wave. A node's check takes the wave's latest read
 * when that read started less than a round ago, counts only samples since a time no earlier than
 * the node's own `since`, and is not one the node judged already (so its N rounds in a row are N
 * reads); otherwise it takes the next read, counting samples since the latest `since` of every node
 * of the wave that has checked by the time it starts. A later `since` than a node's own only asks
 * more of its evidence (samples newer than its restart), never less; the cost is that a node may
 * wait for fresh samples after the last restart of its wave.
 *
 * One read runs at a time: the nodes of a wave come back from their restarts a few seconds apart,
 * and each later restart used to start a read of its own next to the ones still running (at 1,000
 * agents, dozens of 1,000-row reads at once, each slower for the others). Nodes that arrive while a
 * read runs share the one that follows it.
 */
export class WaveReads {
  private readonly sinces = new Map<string, number>();
  /** The read that started last (running or done). */
  private latest: SharedRead | undefined;
  /** The read waiting for the running one to end; every node that needs a new read joins it. */
  private next: SharedRead | undefined;
  /** Settles when the last read asked for has ended. */
  private tail: Promise<unknown> = Promise.resolve();
  private readonly judged = new Map<string, number>();
  private reads = 0;

  constructor(
    private readonly read: (since: Date) => Promise<MatrixRead>,
    private readonly wave: string[],
    private readonly roundMs: number,
    private readonly now: () => number,
  ) {}

  /** Reads made so far. */
  get count(): number {
    return this.reads;
  }

  /** The matrix `node` judges in this round, assembled with every node of the wave in focus. */
  forNode(node: string, since: Date): Promise<Matrix> {
    this.sinces.set(node, Math.max(this.sinces.get(node) ?? 0, since.getTime()));
    const latest = this.latest;
    if (latest && latest.since >= since.getTime() && this.now() - latest.startedAt < this.roundMs && this.judged.get(node) !== latest.id) return this.take(node, latest);
    if (this.next && this.judged.get(node) !== this.next.id) return this.take(node, this.next);
    const entry: SharedRead = { id: ++this.reads, since: 0, startedAt: 0, matrix: Promise.resolve(undefined as unknown as Matrix) };
    entry.matrix = this.tail.then(() => {
      if (this.next === entry) this.next = undefined;
      // Every node that has checked by now, those that joined this read included.
      entry.since = Math.max(...this.sinces.values());
      entry.startedAt = this.now();
      this.latest = entry;
      return this.read(new Date(entry.since)).then((r) => assembleMatrix(r, { staleRowMs: defaultConnectivity.staleRowSeconds * 1000, focus: this.wave }));
    });
    // A failed read is not kept: the next check reads again.
    entry.matrix.catch(() => {
      if (this.latest?.id === entry.id) this.latest = undefined;
    });
    this.tail = entry.matrix.then(() => undefined, () => undefined);
    this.next = entry;
    return this.take(node, entry);
  }

  private take(node: string, read: SharedRead): Promise<Matrix> {
    this.judged.set(node, read.id);
    return read.matrix;
  }

  /**
   * The wave's baseline: the nodes of a wave start together and share one read of it (it has no
   * node in focus, so it is the same for each). Only a PASS taken less than a round ago is shared;
   * any other verdict, or a failure, is read again at the node's next try.
   */
  private baselineRead: { startedAt: number; result: Promise<BaselineResult> } | undefined;
  baseline(take: () => Promise<BaselineResult>): Promise<BaselineResult> {
    const shared = this.baselineRead;
    if (shared && this.now() - shared.startedAt < this.roundMs) return shared.result;
    const result = take();
    const entry = { startedAt: this.now(), result };
    this.baselineRead = entry;
    const forget = () => {
      if (this.baselineRead === entry) this.baselineRead = undefined;
    };
    result.then((r) => r.verdict === 'PASS' || forget(), forget);
    return result;
  }
}

export function matrixGate(source: RowSource, opts: MatrixGateOptions, clock: Pick<Clock, 'now'>): Gate & { forWave(wave: string[]): Gate } {
  const reading = { concurrency: opts.concurrency, timeoutMs: opts.timeoutMs, now: clock.now, policy: opts.policy, tunnels: opts.tunnels };
  const gate: Gate = {
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
  return {
    ...gate,
    forWave(wave) {
      const reads = new WaveReads((since) => readMatrix(source, { ...reading, since }), wave, opts.roundMs ?? defaultGate.intervalSeconds * 1000, clock.now);
      return {
        name: gate.name,
        // The same for every node of the wave (no node in focus), so read once.
        baseline: () => reads.baseline(() => gate.baseline()),
        async check(focus, since, record, inFlight = []) {
          const matrix = await reads.forNode(focus.name, since);
          const evaluation = evaluateGate({ matrix, focus: [focus.name], baseline: baselineFromRecord(record), policy: opts.policy, exclude: inFlight, tunnels: opts.tunnels });
          return { verdict: evaluation.verdict, reasons: reasonLines(evaluation) };
        },
      };
    },
  };
}
