// Typed errors and the exit codes they map to. The codes are part of the plugin's interface:
// scripts branch on them, so a code never changes meaning once released (see README "Exit codes").

/** Exit codes of kubectl-cilium_migrate, stable across releases. */
export const ExitCode = {
  ok: 0,
  /** A bug: an error the plugin did not expect. */
  internal: 1,
  /** Bad flags or arguments. */
  usage: 2,
  /** No usable kubeconfig, unknown context, unreadable file. */
  config: 3,
  /** The cluster could not be reached or refused the credentials. */
  unreachable: 4,
  /** A named object (node, CRD, ...) does not exist. */
  notFound: 5,
  /** The cluster is not in a state that allows the step (already migrated, missing config, ...). */
  precondition: 6,
  /** Another run holds the migration lock. */
  locked: 7,
  /** The connectivity gate said FAIL. */
  gateFail: 8,
  /** The connectivity gate could not decide (missing or stale data). */
  gateUnknown: 9,
  /** A wait ran out of time; the state reached so far is recorded. */
  timeout: 10,
  /** The credentials lack a permission the command needs. */
  forbidden: 11,
  /** Stopped by the user (SIGINT/SIGTERM) at a safe point. */
  interrupted: 130,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** Base of every error the plugin expects; its message is shown to the user as is. */
export class CliError extends Error {
  readonly exitCode: ExitCodeValue;
  /** What the user can do about it, printed on a second line. */
  readonly hint: string | undefined;

  constructor(message: string, exitCode: ExitCodeValue, hint?: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.exitCode = exitCode;
    this.hint = hint;
  }
}

export class UsageError extends CliError {
  constructor(message: string, hint?: string) {
    super(message, ExitCode.usage, hint);
  }
}

export class ConfigError extends CliError {
  constructor(message: string, hint?: string, options?: ErrorOptions) {
    super(message, ExitCode.config, hint, options);
  }
}

export class UnreachableError extends CliError {
  constructor(message: string, hint?: string, options?: ErrorOptions) {
    super(message, ExitCode.unreachable, hint, options);
  }
}

export class NotFoundError extends CliError {
  constructor(message: string, hint?: string) {
    super(message, ExitCode.notFound, hint);
  }
}

export class PreconditionError extends CliError {
  constructor(message: string, hint?: string) {
    super(message, ExitCode.precondition, hint);
  }
}

export class TimeoutError extends CliError {
  constructor(message: string, hint?: string) {
    super(message, ExitCode.timeout, hint);
  }
}

export class InterruptedError extends CliError {
  constructor(message = 'interrupted', hint?: string) {
    super(message, ExitCode.interrupted, hint);
  }
}

/** The exit code for any thrown value: typed errors carry theirs, anything else is a bug. */
export function exitCodeFor(err: unknown): ExitCodeValue {
  return err instanceof CliError ? err.exitCode : ExitCode.internal;
}

/** The lines to show the user for a thrown value; a stack only for bugs or with -v. */
export function describeError(err: unknown, verbose: boolean): string[] {
  if (err instanceof CliError) {
    const lines = [`error: ${err.message}`];
    if (err.hint) lines.push(`hint: ${err.hint}`);
    if (verbose && err.cause) lines.push(`cause: ${String(err.cause instanceof Error ? err.cause.stack : err.cause)}`);
    return lines;
  }
  const lines = [`error: unexpected failure: ${err instanceof Error ? err.message : String(err)}`];
  lines.push(verbose && err instanceof Error && err.stack ? err.stack : 'hint: this is a bug; rerun with -v for details and report it');
  return lines;
}
