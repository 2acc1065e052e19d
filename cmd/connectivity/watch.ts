// `connectivity`'s work: rounds of the matrix (cmd/matrix), each judged by the one gate, drawn for a
// person (again and again with --watch), written as a page (--html), served (--serve) or printed
// as data; a verdict other than PASS is a GateError (exit 8 or 9).
import { writeFileSync } from 'node:fs';
import { systemClock } from '../../lib/clock.js';
import { GateError, roundsVerdict, type Verdict } from '../../lib/connectivity-gate.js';
import { ConfigError, UsageError } from '../../lib/errors.js';
import { sinceTime, type Since } from '../../lib/flag-values.js';
import type { Kube } from '../../lib/kube.js';
import type { Io, OutputFormat } from '../context.js';
import { matrixRound, type MatrixSettings } from '../matrix/read.js';
import { readOverlayTunnels } from '../migration/cilium-config.js';
import { render } from '../output.js';
import { serveReports } from './serve.js';
import { connectivityReport, htmlView, terminalView, type ConnectivityReport } from './views.js';

export interface ConnectivityOptions {
  matrix: MatrixSettings;
  since: Since;
  focus: string[];
  rounds: number;
  intervalMs: number;
  watch: boolean;
  html?: string | undefined;
  serve?: { host: string; port: number } | undefined;
  labelKey: string;
  maxGrid: number;
  ciliumNamespace: string;
  format: OutputFormat;
  /** Time each phase of a read (-v). */
  verbose: boolean;
}

/** Reads and shows the matrix as `opts` say; throws GateError unless the (last) verdict is PASS. */
export async function showConnectivity(kube: Kube, opts: ConnectivityOptions, io: Io, signal: AbortSignal): Promise<void> {
  const { format } = opts;
  if (opts.watch && (format === 'json' || format === 'yaml')) throw new UsageError('--watch draws for people; use it without -o json|yaml');
  // --watch and --serve read again and again until Ctrl-C; the exit code is the last verdict.
  const continuous = opts.watch || opts.serve !== undefined;
  const source = opts.matrix.source(kube, opts.labelKey);
  const tunnels = await readOverlayTunnels(kube, opts.ciliumNamespace);
  const show = (r: ConnectivityReport) => render(r, format, (data, wide) => terminalView(data, wide, io.isTTY, opts.maxGrid));
  const history: Verdict[] = [];
  let report: ConnectivityReport | undefined;
  let server: Awaited<ReturnType<typeof serveReports>> | undefined;
  try {
    if (opts.serve !== undefined) {
      server = await serveReports(opts.serve, () => report, Math.max(1, Math.round(opts.intervalMs / 1000)));
      io.err(`serving the matrix at ${server.url} (and ${server.url}report.json); Ctrl-C stops\n`);
    }
    for (let round = 1; ; round++) {
      // A time is a fixed start (a change); a duration slides with every round.
      const since = sinceTime(opts.since, Date.now());
      const timing = opts.verbose ? (phase: string, ms: number) => io.err(`${phase}: ${Math.round(ms)} ms\n`) : undefined;
      const cpu = process.cpuUsage();
      const { matrix, evaluation } = await matrixRound(source, { since, focus: opts.focus, policy: opts.matrix.policy, tunnels, concurrency: opts.matrix.concurrency, timeoutMs: opts.matrix.timeoutMs, now: Date.now, timing });
      const used = process.cpuUsage(cpu);
      timing?.('CPU of this process during the round', (used.user + used.system) / 1000);
      history.push(evaluation.verdict);
      const combined = roundsVerdict(history, opts.rounds);
      report = connectivityReport(matrix, evaluation, combined.verdict, { needed: opts.rounds, passedInARow: combined.streak }, opts.focus, opts.matrix.policy);
      if (opts.html) writeHtml(opts.html, report);
      const done = !continuous && (round >= opts.rounds || signal.aborted);
      if (opts.watch) {
        const view = terminalView(report, format === 'wide', io.isTTY, opts.maxGrid);
        // A terminal redraws in place; a pipe gets one report after another.
        io.out(io.isTTY ? `\x1b[H\x1b[2J${view}` : `${view}\n`);
      } else if (opts.serve !== undefined) {
        io.err(`${report.readAt}: ${report.verdict}\n`);
      } else if (done) {
        io.out(show(report));
      } else {
        io.err(`round ${round}/${opts.rounds}: ${evaluation.verdict}\n`);
      }
      if (done || signal.aborted) break;
      await systemClock.sleep(opts.intervalMs, signal);
      if (signal.aborted) {
        if (!continuous) io.out(show(report));
        break;
      }
    }
  } finally {
    source.close();
    await server?.close();
  }
  if (report.verdict !== 'PASS') {
    const bad = report.findings.filter((f) => f.severity === report!.verdict).length;
    const detail = report.verdict === 'UNKNOWN' && opts.rounds > 1 && history.at(-1) === 'PASS' ? `only ${roundsVerdict(history, opts.rounds).streak} of ${opts.rounds} rounds passed` : `${bad} finding${bad === 1 ? '' : 's'}${report.hints.length ? `; likely cause: ${report.hints.map((h) => `${h.cause} (${h.nodes.join(', ')})`).join(', ')}` : ''}`;
    throw new GateError(report.verdict, `connectivity gate ${report.verdict}: ${detail}`);
  }
}

function writeHtml(file: string, report: ConnectivityReport): void {
  try {
    writeFileSync(file, htmlView(report));
  } catch (err) {
    throw new ConfigError(`cannot write ${file}: ${(err as Error).message}`, 'pass a writable path to --html');
  }
}
