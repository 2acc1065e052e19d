// Runs the bundled plugin the way users do: through real kubectl, which finds it on PATH.
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const bundledPlugin = join(repoRoot, 'dist', 'kubectl-cilium_migrate');

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A directory holding only the plugin, to put first on PATH; removed by `dispose`. */
export function pluginPathDir(): { dir: string; dispose: () => void } {
  if (!existsSync(bundledPlugin)) throw new Error(`${bundledPlugin} is missing; run "make build" first`);
  const dir = mkdtempSync(join(tmpdir(), 'plugin-path-'));
  symlinkSync(bundledPlugin, join(dir, 'kubectl-cilium_migrate'));
  return { dir, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Runs `kubectl ARGS` with `pathDir` first on PATH and the given environment; never throws on exit codes. */
export function runKubectl(kubectl: string, args: string[], pathDir: string, env: NodeJS.ProcessEnv = process.env): Promise<RunResult> {
  return new Promise((resolveRun) => {
    execFile(kubectl, args, { env: { ...env, PATH: `${pathDir}:${env.PATH ?? ''}` }, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolveRun({ code, stdout, stderr });
    });
  });
}

export interface PluginRun extends RunResult {
  /** The signal that ended the process, if one did. */
  signal: NodeJS.Signals | null;
}

/**
 * Runs the bundled plugin as a real process. `onStderr` sees its log as it comes, and may kill it.
 */
export function runPlugin(args: string[], options: { env?: NodeJS.ProcessEnv; onStderr?: (text: string, kill: (s: NodeJS.Signals) => void) => void; timeoutMs?: number } = {}): Promise<PluginRun> {
  if (!existsSync(bundledPlugin)) throw new Error(`${bundledPlugin} is missing; run "make build" first`);
  return new Promise((resolveRun) => {
    const child = spawn(process.execPath, [bundledPlugin, ...args], { env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const kill = (s: NodeJS.Signals) => child.kill(s);
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 180_000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      options.onStderr?.(stderr, kill);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolveRun({ code: code ?? -1, signal, stdout, stderr });
    });
  });
}
