// What every command handler gets: the global flags, a lazily connected cluster, output streams
// and a signal that fires when the user asks the plugin to stop.
import type { Argv } from 'yargs';
import { connect, type Kube, type KubeEnvironment } from '../lib/kube.js';

export const outputFormats = ['table', 'wide', 'json', 'yaml'] as const;
export type OutputFormat = (typeof outputFormats)[number];

/** The global flags, parsed; kubectl's names. */
export interface GlobalOptions {
  kubeconfig?: string | undefined;
  context?: string | undefined;
  namespace?: string | undefined;
  output: OutputFormat;
  verbose: number;
}

/** Where commands write; a terminal gets colours and redraws, a pipe plain text. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
  readonly isTTY: boolean;
  /**
   * What the first Ctrl-C does from now on, as the plugin tells it ("stopping at the next safe
   * point" unless a command says otherwise, e.g. a detach that leaves a run going on).
   */
  onInterrupt?(meaning: string): void;
}

export interface CommandContext {
  readonly options: GlobalOptions;
  readonly io: Io;
  readonly signal: AbortSignal;
  /** The command line as parsed (after cli.ts normalised it), for a command that passes it on. */
  readonly argv: readonly string[];
  /** The cluster; the kubeconfig is loaded on first use, so --help never needs one. */
  kube(): Kube;
}

export function makeContext(options: GlobalOptions, io: Io, signal: AbortSignal, environment?: KubeEnvironment, argv: readonly string[] = []): CommandContext {
  let kube: Kube | undefined;
  return {
    options,
    io,
    signal,
    argv,
    kube: () => (kube ??= connect(options, environment)),
  };
}

/**
 * A subcommand: its yargs name, help and flags, and `run`, which does the work and throws typed
 * errors. Only cmd/main.ts turns outcomes into exit codes.
 */
export interface CommandSpec<A> {
  command: string | readonly string[];
  describe: string;
  builder: (y: Argv<GlobalOptions>) => Argv<A>;
  run: (ctx: CommandContext, args: A) => Promise<void>;
}

/** Keeps the argument type of a command spec inferred from its builder. */
export function defineCommand<A>(spec: CommandSpec<A>): CommandSpec<A> {
  return spec;
}
