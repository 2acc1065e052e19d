// Child processes of the control plane and the lab: started with their output in a log file,
// stopped with SIGTERM then SIGKILL, and never outliving this process. setpriv's parent-death
// signal kills a child even when this process is SIGKILLed; the exit hooks below clean up the
// rest (temporary directories, registered cleanups) on a normal exit, an uncaught error, SIGINT,
// SIGTERM or SIGHUP. This is the only place that installs such hooks.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, rmSync } from 'node:fs';

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  readonly exited: Promise<number | string>;
  /** True while the process runs. */
  running(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

const live = new Set<ChildProcess>();
const cleanupDirs = new Set<string>();
const exitCleanups = new Set<() => void>();
let hooksInstalled = false;

const hasSetpriv = spawnSync('setpriv', ['--help'], { stdio: 'ignore' }).status === 0;

/** Starts `command` with `args`, appending its stdout and stderr to `logFile`. */
export function startProcess(name: string, command: string, args: string[], logFile: string, env?: NodeJS.ProcessEnv): ManagedProcess {
  installExitHooks();
  const fd = openSync(logFile, 'a');
  const [file, argv] = hasSetpriv ? ['setpriv', ['--pdeathsig', 'SIGKILL', '--', command, ...args]] : [command, args];
  let child: ChildProcess;
  try {
    child = spawn(file, argv, { stdio: ['ignore', fd, fd], env: env ?? process.env });
  } finally {
    closeSync(fd);
  }
  if (child.pid === undefined) throw new Error(`cannot start ${name} (${command})`);
  live.add(child);
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve(code ?? signal ?? 'unknown');
    });
    child.once('error', () => {
      live.delete(child);
      resolve('spawn-error');
    });
  });
  const running = () => child.exitCode === null && child.signalCode === null && live.has(child);
  return {
    name,
    pid: child.pid,
    logFile,
    exited,
    running,
    async stop(graceMs = 10_000) {
      if (!running()) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Removes `dir` when this process exits, however it exits (short of SIGKILL). */
export function removeOnExit(dir: string): void {
  installExitHooks();
  cleanupDirs.add(dir);
}

/** Runs `fn` (synchronous) when this process exits, however it exits (short of SIGKILL). */
export function onExit(fn: () => void): void {
  installExitHooks();
  exitCleanups.add(fn);
}

/** Stops removing `dir` on exit (it was removed already). */
export function forgetDir(dir: string): void {
  cleanupDirs.delete(dir);
}

function cleanupNow(): void {
  for (const fn of exitCleanups) {
    try {
      fn();
    } catch {
      // one failed cleanup must not keep the others from running
    }
  }
  exitCleanups.clear();
  for (const child of live) child.kill('SIGKILL');
  live.clear();
  for (const dir of cleanupDirs) rmSync(dir, { recursive: true, force: true });
  cleanupDirs.clear();
}

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.once('exit', cleanupNow);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      cleanupNow();
      // Die of the same signal, as the default handler would have.
      process.kill(process.pid, signal);
    });
  }
}

/** True while a process with this PID exists (and may be signalled by us). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
