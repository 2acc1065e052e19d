// The command line: global flags, the subcommands and the mapping of outcomes to exit codes.
import yargs, { type Argv } from 'yargs';
import { limits } from '../lib/defaults.js';
import { describeError, exitCodeFor, ExitCode, UsageError } from '../lib/errors.js';
import { flagCoercion, integer, lastOccurrence, namespace } from '../lib/flag-values.js';
import type { KubeEnvironment } from '../lib/kube.js';
import { version } from '../lib/version.js';
import { connectivityCommand } from './connectivity.js';
import { makeContext, outputFormats, type CommandSpec, type GlobalOptions, type Io, type OutputFormat } from './context.js';
import { finalizeCommand } from './finalize.js';
import { nodeCommand } from './node.js';
import { planCommand } from './plan.js';
import { preflightCommand } from './preflight.js';
import { prepareCommand } from './prepare.js';
import { rollbackCommand } from './rollback.js';
import { runCommand } from './run.js';
import { statusCommand } from './status.js';
import { valuesCommand } from './values.js';
import { versionCommand } from './version.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: CommandSpec<any>[] = [preflightCommand, valuesCommand, prepareCommand, planCommand, nodeCommand, runCommand, statusCommand, connectivityCommand, rollbackCommand, finalizeCommand, versionCommand];

const epilogue = `kubectl passes every flag after "cilium-migrate" to the plugin unchanged, so the global
flags (--kubeconfig, --context, -n) are read by the plugin itself, as kubectl would read them.

Exit codes: 0 ok, 1 internal error, 2 usage, 3 kubeconfig, 4 cluster unreachable, 5 not found,
6 precondition not met, 7 locked by another run, 8 gate FAIL, 9 gate UNKNOWN, 10 timeout,
11 forbidden, 130 interrupted.`;

/** Runs the plugin with the given arguments and returns its exit code; never exits the process. */
export async function runCli(argv: string[], io: Io, signal: AbortSignal, environment?: KubeEnvironment): Promise<number> {
  let verbose = false;
  const parser = buildParser(normalizeArgv(argv), io, signal, environment);
  try {
    const args = await parser.parseAsync();
    verbose = Number(args.verbose ?? 0) > 0;
    return ExitCode.ok;
  } catch (err) {
    verbose ||= argv.some((a) => /^(-v+|--v(erbose)?)(=\d+)?$/.test(a) || /^-v\d+$/.test(a));
    for (const line of describeError(err, verbose)) io.err(line + '\n');
    return exitCodeFor(err);
  }
}

function buildParser(argv: string[], io: Io, signal: AbortSignal, environment?: KubeEnvironment): Argv<GlobalOptions> {
  let parser = yargs(argv)
    .scriptName('kubectl cilium-migrate')
    .usage('$0 <command> [flags]\n\nMove a live cluster from its current CNI to Cilium one node at a time, with both\noverlays up and the cross-overlay reachability proven before every next step.')
    .option('kubeconfig', { type: 'string', describe: 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)', global: true })
    .option('context', { type: 'string', describe: 'The kubeconfig context to use', global: true })
    .option('namespace', { alias: 'n', type: 'string', coerce: flagCoercion('namespace', namespace), describe: 'Namespace (default: the context\'s namespace)', global: true })
    .option('output', { alias: 'o', choices: outputFormats, default: 'table' as const, coerce: lastOccurrence<OutputFormat>, describe: 'Output format', global: true })
    .option('verbose', { alias: 'v', type: 'string', default: '0', coerce: flagCoercion('verbose', integer(0, limits.verbosity)), describe: `Log level 0-${limits.verbosity}: 0 quiet, higher is more; -v alone is 1 (with -v errors show their cause and stack)`, global: true })
    .version(version)
    .help()
    .alias('help', 'h')
    .strict()
    .demandCommand(1, 'name a command; see --help')
    .recommendCommands()
    .wrap(Math.min(100, process.stdout.columns || 100))
    .epilogue(epilogue)
    .exitProcess(false)
    .showHelpOnFail(false)
    .fail((message, err) => {
      // A flag's parser (lib/flag-values) reaches here wrapped by yargs: its message is the one line.
      if (err && err.name === 'YError') throw new UsageError(err.message);
      if (err) throw err;
      const tidy = tidyUsageMessage(message ?? 'invalid arguments');
      // A bad choice already names the accepted forms; anything else points to --help.
      throw new UsageError(/^--\S+ .*: expected one of /.test(tidy) ? tidy : `${tidy} (see kubectl cilium-migrate --help)`);
    }) as unknown as Argv<GlobalOptions>;
  for (const spec of commands) {
    parser = parser.command({
      command: spec.command as string | string[],
      describe: spec.describe,
      builder: spec.builder,
      handler: async (raw) => {
        const args = raw as unknown as GlobalOptions;
        const options: GlobalOptions = {
          kubeconfig: args.kubeconfig,
          context: args.context,
          namespace: args.namespace,
          output: args.output,
          verbose: args.verbose,
        };
        await spec.run(makeContext(options, io, signal, environment, argv), args);
      },
    }) as unknown as Argv<GlobalOptions>;
  }
  return parser;
}

/** Names of the long flags that take a value (not booleans), over every command and the global ones. */
function valueFlags(): { values: Set<string>; all: Set<string> } {
  const values = new Set(['kubeconfig', 'context', 'namespace', 'output', 'verbose']);
  const all = new Set([...values, 'help', 'version']);
  for (const spec of commands) {
    const options = (spec.builder(yargs([]) as unknown as Argv<GlobalOptions>) as unknown as { getOptions(): { key: Record<string, unknown>; boolean: string[] } }).getOptions();
    for (const key of Object.keys(options.key)) {
      all.add(key);
      if (!options.boolean.includes(key)) values.add(key);
    }
  }
  return { values, all };
}

/**
 * Two forms yargs would misread, put the way it reads them right: a bare -v (or --verbose) means
 * level 1 rather than taking the next word ("-v node w1") as its value; and a value that starts
 * with '-' after a flag that takes one ("--drain-timeout -5s") stays that flag's value, for its
 * parser to judge, instead of turning into unknown short flags.
 */
export function normalizeArgv(argv: string[]): string[] {
  const flags = valueFlags();
  const isFlag = (t: string) => /^-[novhf](=.*)?$/.test(t) || (t.startsWith('--') && flags.all.has(t.slice(2).split('=')[0]!.replace(/^no-/, '')));
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = argv[i + 1];
    if (arg === '--') {
      out.push(...argv.slice(i));
      break;
    }
    if (arg === '-v' || arg === '--verbose') {
      if (next !== undefined && /^\d+$/.test(next)) out.push(`--verbose=${next}`), i++;
      else out.push('--verbose=1');
    } else if (/^--[a-z][a-z0-9-]*$/.test(arg) && flags.values.has(arg.slice(2)) && next !== undefined && next.startsWith('-') && next !== '--' && !isFlag(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else out.push(arg);
  }
  return out;
}

/** yargs lists an unknown --foo-bar twice (also as fooBar): name each flag once; a bad choice on one line. */
export function tidyUsageMessage(message: string): string {
  const choice = /^Invalid values:\s*Argument: ([^,]+), Given: (.*), Choices: (.*)$/s.exec(message.trim());
  if (choice) return `--${choice[1]} ${choice[2]!.trim()}: expected one of ${choice[3]!.replace(/"/g, '').trim()}`;
  const match = /^Unknown arguments?: (.*)$/.exec(message);
  if (!match) return message;
  const names = match[1]!.split(', ');
  const camel = (n: string) => n.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  const kept = names.filter((n) => !names.some((other) => other !== n && other.includes('-') && camel(other) === n));
  return `Unknown argument${kept.length > 1 ? 's' : ''}: ${kept.join(', ')}`;
}
