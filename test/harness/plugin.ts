// Runs the bundled plugin the way users do: through real kubectl, which finds it on PATH.
import { execFile } from 'node:child_process';
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
