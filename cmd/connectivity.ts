// `connectivity`: reads every agent's row, shows the reachability matrix and exits with the gate's
// verdict (0 PASS, 8 FAIL, 9 UNKNOWN).
import { writeFileSync } from 'node:fs';
import { ciliumNamespace, defaultConnectivity, defaultGate, migrationLabel } from '../lib/defaults.js';
import { evaluateGate, roundsVerdict, type Verdict } from '../lib/connectivity-gate.js';
import { CliError, ConfigError, ExitCode, UsageError } from '../lib/errors.js';
import { assembleMatrix } from '../lib/reachability.js';
import { defineCommand } from './context.js';
import { durationFlag, matrixFlags, matrixSettings, type MatrixArgs } from './connectivity/options.js';
import { readMatrix } from './connectivity/read-matrix.js';
import { parseListenAddress, serveReports } from './connectivity/serve.js';
import { connectivityReport, htmlView, terminalView, type ConnectivityReport } from './connectivity/views.js';
import { readOverlayTunnels } from './migration/cilium-config.js';
import { systemClock } from './engine/drain.js';
import { render } from './output.js';

export interface ConnectivityArgs extends MatrixArgs {
  since: string;
  focus: string[];
  rounds: number;
  interval: string;
  watch: boolean;
  html?: string | undefined;
  serve?: string | undefined;
  'label-key': string;
  'max-grid': number;
  'cilium-namespace': string;
}

/** The start of the evidence: a duration back from now ("30s") or a time (RFC 3339). */
export function sinceTime(text: string, now: number): Date {
  if (/^\d{4}-\d{2}-\d{2}T/.test(text)) {
    const t = Date.parse(text);
    if (!Number.isFinite(t)) throw new UsageError(`--since: "${text}" is not a time`);
    return new Date(t);
  }
  return new Date(now - durationFlag('since', text));
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
      .option('since', { type: 'string', default: `${defaultConnectivity.lookbackSeconds}s`, describe: 'Only probes since then count: a duration back from now (30s) or an RFC 3339 time (the start of a change)' })
      .option('focus', { type: 'string', array: true, default: [] as string[], describe: 'Judge as the gate does after migrating these nodes: their cells need --min-samples each' })
      .option('rounds', { type: 'number', default: 1, describe: 'Read this many times, --interval apart; PASS needs every one to pass (N)' })
      .option('interval', { type: 'string', default: `${defaultGate.intervalSeconds}s`, describe: 'Time between rounds and between --watch redraws' })
      .option('watch', { type: 'boolean', default: false, describe: 'Redraw every --interval until Ctrl-C; the exit code is the last verdict' })
      .option('html', { type: 'string', describe: 'Also write the matrix as a self-contained HTML heatmap to this file' })
      .option('serve', { type: 'string', describe: 'Serve the heatmap at http://ADDR/ (and /report.json), re-read every --interval, until Ctrl-C; ADDR is HOST:PORT, :PORT for loopback' })
      .option('label-key', { type: 'string', default: migrationLabel, describe: 'Label that moves a node to Cilium (what overlay each node should be on)' })
      .option('cilium-namespace', { type: 'string', default: ciliumNamespace, describe: 'Namespace of Cilium: its cilium-config names the tunnel the hints talk about' })
      .option('max-grid', { type: 'number', default: defaultConnectivity.maxGridNodes, describe: 'Draw the grid up to this many nodes; above, only the summary and failing cells' })
      .example('$0 connectivity', 'the matrix, the overlay summary and the failing cells; exit code = verdict')
      .example('$0 connectivity -o wide --since 1m', 'with loss and RTT per cell, over the last minute')
      .example('$0 connectivity --watch --interval 5s', 'redraw every 5 seconds')
      .example('$0 connectivity --html matrix.html', 'also write a heatmap page')
      .example('$0 connectivity --serve :8080 --interval 5s', 'keep the heatmap open in a browser during the migration'),
  run: async (ctx, args: ConnectivityArgs) => {
    const settings = matrixSettings(args);
    if (!Number.isInteger(args.rounds) || args.rounds < 1) throw new UsageError('--rounds must be a whole number of at least 1');
    const intervalMs = durationFlag('interval', args.interval);
    const format = ctx.options.output;
    if (args.watch && (format === 'json' || format === 'yaml')) throw new UsageError('--watch draws for people; use it without -o json|yaml');
    // --watch and --serve read again and again until Ctrl-C; the exit code is the last verdict.
    const continuous = args.watch || args.serve !== undefined;
    if (args.serve !== undefined) parseListenAddress(args.serve);
    const kube = ctx.kube();
    const source = settings.source(kube, args['label-key']);
    const tunnels = await readOverlayTunnels(kube, args['cilium-namespace']);
    // A time is a fixed start (a change); a duration slides with every round.
    const fixedSince = /^\d{4}-/.test(args.since) ? sinceTime(args.since, Date.now()) : undefined;
    // A bad --since fails here, before anything is read.
    if (!fixedSince) sinceTime(args.since, Date.now());
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
        const since = fixedSince ?? sinceTime(args.since, Date.now());
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
