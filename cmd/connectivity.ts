// `connectivity`: reads every agent's row, shows the reachability matrix and exits with the gate's
// verdict (0 PASS, 8 FAIL, 9 UNKNOWN).
import { writeFileSync } from 'node:fs';
import { ciliumNamespace, defaultConnectivity, defaultGate, limits, migrationLabel } from '../lib/defaults.js';
import { evaluateGate, roundsVerdict, type Verdict } from '../lib/connectivity-gate.js';
import { CliError, ConfigError, ExitCode, UsageError } from '../lib/errors.js';
import { assembleMatrix } from '../lib/reachability.js';
import { defineCommand } from './context.js';
import { duration, flagCoercion, integer, labelKey, listCoercion, listenAddress, namespace, nodeName, timestamp, ValueError, type Parser } from '../lib/flag-values.js';
import { matrixFlags, matrixSettings, type MatrixArgs } from './connectivity/options.js';
import { readMatrix } from './connectivity/read-matrix.js';
import { serveReports } from './connectivity/serve.js';
import { connectivityReport, htmlView, terminalView, type ConnectivityReport } from './connectivity/views.js';
import { readOverlayTunnels } from './migration/cilium-config.js';
import { systemClock } from '../lib/clock.js';
import { render } from './output.js';

/** --since: a fixed time (the start of a change), or a span back from every read. */
export type Since = { at: Date } | { backMs: number };

export interface ConnectivityArgs extends MatrixArgs {
  since: Since;
  focus: string[];
  rounds: number;
  /** Milliseconds. */
  interval: number;
  watch: boolean;
  html?: string | undefined;
  serve?: { host: string; port: number } | undefined;
  'label-key': string;
  'max-grid': number;
  'cilium-namespace': string;
}

/** --since as people write it: a duration back from now ("30s") or an RFC 3339 time. */
export const sinceValue: Parser<Since> = (text) => {
  try {
    return /^\d{4}-/.test(text.trim()) ? { at: timestamp(text) } : { backMs: duration(1000, limits.longestWaitMs)(text) };
  } catch {
    throw new ValueError('a duration back from now like 30s or 5m, or an RFC 3339 time like 2026-11-24T10:00:00Z');
  }
};

/** The start of the evidence for a read at `now`. */
export function sinceTime(since: Since, now: number): Date {
  return 'at' in since ? since.at : new Date(now - since.backMs);
}

export class GateVerdictError extends CliError {
  constructor(verdict: Exclude<Verdict, 'PASS'>, detail: string) {
    super(`connectivity gate ${verdict}: ${detail}`, verdict === 'FAIL' ? ExitCode.gateFail : ExitCode.gateUnknown);
  }
}

export const connectivityCommand = defineCommand({
  command: 'connectivity',
  describe: 'Show the cross-overlay reachability matrix from the probe agents and exit with the gate verdict (0 PASS, 8 FAIL, 9 UNKNOWN)',
  builder: (y) =>
    y
      .options(matrixFlags)
      .option('since', { type: 'string', default: `${defaultConnectivity.lookbackSeconds}s`, coerce: flagCoercion('since', sinceValue), describe: 'Only probes since then count: a duration back from now (30s) or an RFC 3339 time (the start of a change)' })
      .option('focus', { type: 'string', array: true, default: [] as string[], coerce: listCoercion('--focus', nodeName), describe: 'Judge as the gate does after migrating these nodes: their cells need --min-samples each' })
      .option('rounds', { type: 'string', default: '1', coerce: flagCoercion('rounds', integer(1, limits.gateRounds)), describe: `Read this many times, --interval apart; PASS needs every one to pass (N, 1-${limits.gateRounds})` })
      .option('interval', { type: 'string', default: `${defaultGate.intervalSeconds}s`, coerce: flagCoercion('interval', duration(limits.readIntervalFloorMs, 3_600_000)), describe: 'Time between rounds and between --watch redraws, 1s to 1h (every read costs the API server a request per agent)' })
      .option('watch', { type: 'boolean', default: false, describe: 'Redraw every --interval until Ctrl-C; the exit code is the last verdict' })
      .option('html', { type: 'string', describe: 'Also write the matrix as a self-contained HTML heatmap to this file' })
      .option('serve', { type: 'string', coerce: flagCoercion('serve', listenAddress), describe: 'Serve the heatmap at http://ADDR/ (and /report.json), re-read every --interval, until Ctrl-C; ADDR is HOST:PORT, :PORT for loopback' })
      .option('label-key', { type: 'string', default: migrationLabel, coerce: flagCoercion('label-key', labelKey), describe: 'Label that moves a node to Cilium (what overlay each node should be on)' })
      .option('cilium-namespace', { type: 'string', default: ciliumNamespace, coerce: flagCoercion('cilium-namespace', namespace), describe: 'Namespace of Cilium: its cilium-config names the tunnel the hints talk about' })
      .option('max-grid', { type: 'string', default: String(defaultConnectivity.maxGridNodes), coerce: flagCoercion('max-grid', integer(0, limits.maxGrid)), describe: `Draw the grid up to this many nodes (0-${limits.maxGrid}); above, only the summary and failing cells` })
      .example('$0 connectivity', 'the matrix, the overlay summary and the failing cells; exit code = verdict')
      .example('$0 connectivity -o wide --since 1m', 'with loss and RTT per cell, over the last minute')
      .example('$0 connectivity --watch --interval 5s', 'redraw every 5 seconds')
      .example('$0 connectivity --html matrix.html', 'also write a heatmap page')
      .example('$0 connectivity --serve :8080 --interval 5s', 'keep the heatmap open in a browser during the migration'),
  run: async (ctx, args: ConnectivityArgs) => {
    const settings = matrixSettings(args);
    const intervalMs = args.interval;
    const format = ctx.options.output;
    if (args.watch && (format === 'json' || format === 'yaml')) throw new UsageError('--watch draws for people; use it without -o json|yaml');
    // --watch and --serve read again and again until Ctrl-C; the exit code is the last verdict.
    const continuous = args.watch || args.serve !== undefined;
    const kube = ctx.kube();
    const source = settings.source(kube, args['label-key']);
    const tunnels = await readOverlayTunnels(kube, args['cilium-namespace']);
    const show = (r: ConnectivityReport) => render(r, format, (data, wide) => terminalView(data, wide, ctx.io.isTTY, args['max-grid']));
    const history: Verdict[] = [];
    let report: ConnectivityReport | undefined;
    let server: Awaited<ReturnType<typeof serveReports>> | undefined;
    try {
      if (args.serve !== undefined) {
        server = await serveReports(args.serve, () => report, Math.max(1, Math.round(intervalMs / 1000)));
        ctx.io.err(`serving the matrix at ${server.url} (and ${server.url}report.json); Ctrl-C stops\n`);
      }
      for (let round = 1; ; round++) {
        // A time is a fixed start (a change); a duration slides with every round.
        const since = sinceTime(args.since, Date.now());
        const timing = ctx.options.verbose > 0 ? (phase: string, ms: number) => ctx.io.err(`${phase}: ${Math.round(ms)} ms\n`) : undefined;
        const cpu = process.cpuUsage();
        const read = await readMatrix(source, { since, concurrency: settings.concurrency, timeoutMs: settings.timeoutMs, now: Date.now, timing });
        const used = process.cpuUsage(cpu);
        timing?.('CPU of this process while reading', (used.user + used.system) / 1000);
        const t0 = performance.now();
        const matrix = assembleMatrix(read, { staleRowMs: defaultConnectivity.staleRowSeconds * 1000, focus: args.focus });
        const evaluation = evaluateGate({ matrix, focus: args.focus, policy: settings.policy, tunnels });
        timing?.(`assemble ${matrix.cells.length} cells and judge them`, performance.now() - t0);
        history.push(evaluation.verdict);
        const combined = roundsVerdict(history, args.rounds);
        report = connectivityReport(matrix, evaluation, combined.verdict, { needed: args.rounds, passedInARow: combined.streak }, args.focus, settings.policy);
        if (args.html) writeHtml(args.html, report);
        const done = !continuous && (round >= args.rounds || ctx.signal.aborted);
        if (args.watch) {
          const view = terminalView(report, format === 'wide', ctx.io.isTTY, args['max-grid']);
          // A terminal redraws in place; a pipe gets one report after another.
          ctx.io.out(ctx.io.isTTY ? `\x1b[H\x1b[2J${view}` : `${view}\n`);
        } else if (args.serve !== undefined) {
          ctx.io.err(`${report.readAt}: ${report.verdict}\n`);
        } else if (done) {
          ctx.io.out(show(report));
        } else {
          ctx.io.err(`round ${round}/${args.rounds}: ${evaluation.verdict}\n`);
        }
        if (done || ctx.signal.aborted) break;
        await systemClock.sleep(intervalMs, ctx.signal);
        if (ctx.signal.aborted) {
          if (!continuous) ctx.io.out(show(report));
          break;
        }
      }
    } finally {
      source.close();
      await server?.close();
    }
    if (report.verdict !== 'PASS') {
      const bad = report.findings.filter((f) => f.severity === report!.verdict).length;
      const detail = report.verdict === 'UNKNOWN' && args.rounds > 1 && history.at(-1) === 'PASS' ? `only ${roundsVerdict(history, args.rounds).streak} of ${args.rounds} rounds passed` : `${bad} finding${bad === 1 ? '' : 's'}${report.hints.length ? `; likely cause: ${report.hints.map((h) => `${h.cause} (${h.nodes.join(', ')})`).join(', ')}` : ''}`;
      throw new GateVerdictError(report.verdict, detail);
    }
  },
});

function writeHtml(file: string, report: ConnectivityReport): void {
  try {
    writeFileSync(file, htmlView(report));
  } catch (err) {
    throw new ConfigError(`cannot write ${file}: ${(err as Error).message}`, 'pass a writable path to --html');
  }
}
