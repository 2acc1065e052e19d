// `connectivity`: reads every agent's row, shows the reachability matrix and exits with the gate's
// verdict (0 PASS, 8 FAIL, 9 UNKNOWN). The work is cmd/connectivity/watch.ts.
import { ciliumNamespace, defaultConnectivity, defaultGate, limits, migrationLabel } from '../lib/defaults.js';
import { duration, flagCoercion, integer, labelKey, listCoercion, listenAddress, namespace, nodeName, timeOrSpan, type Since } from '../lib/flag-values.js';
import { showConnectivity } from './connectivity/watch.js';
import { defineCommand } from './context.js';
import { matrixFlags, matrixSettings, type MatrixArgs } from './flags/matrix.js';

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

export const connectivityCommand = defineCommand({
  command: 'connectivity',
  describe: 'Show the cross-overlay reachability matrix from the probe agents and exit with the gate verdict (0 PASS, 8 FAIL, 9 UNKNOWN)',
  builder: (y) =>
    y
      .options(matrixFlags)
      .option('since', { type: 'string', default: `${defaultConnectivity.lookbackSeconds}s`, coerce: flagCoercion('since', timeOrSpan(limits.longestWaitMs)), describe: 'Only probes since then count: a duration back from now (30s) or an RFC 3339 time (the start of a change)' })
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
  run: (ctx, args: ConnectivityArgs) =>
    showConnectivity(ctx.kube(), {
      matrix: matrixSettings(args),
      since: args.since,
      focus: args.focus,
      rounds: args.rounds,
      intervalMs: args.interval,
      watch: args.watch,
      html: args.html,
      serve: args.serve,
      labelKey: args['label-key'],
      maxGrid: args['max-grid'],
      ciliumNamespace: args['cilium-namespace'],
      format: ctx.options.output,
      verbose: ctx.options.verbose > 0,
    }, ctx.io, ctx.signal),
});
