// "Before" in a before-and-after benchmark: the agent or the plugin as it was at another commit,
// bundled the way build.mjs bundles today's, from `git archive` of that commit and the repository's
// installed dependencies. BENCH_BASELINE_REF names the commit (default: the one before the changes
// the benchmark compares against, named in each section).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { removeOnExit } from '../lab/process.js';

const repoRoot = join(import.meta.dirname, '..');

/** The commit `ref` names, abbreviated, and its subject. */
export function describeRef(ref: string): string {
  return execFileSync('git', ['-C', repoRoot, 'log', '-1', '--format=%h (%s)', ref], { encoding: 'utf8' }).trim();
}

/** Bundles `entry` (agent/main.ts or cmd/main.ts) as of `ref` into a file in a new temporary directory; the caller removes `dir`. */
export async function bundleAt(ref: string, entry: 'agent/main.ts' | 'cmd/main.ts'): Promise<{ file: string; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-baseline-'));
  removeOnExit(dir);
  const src = join(dir, 'src');
  mkdirSync(src);
  const tar = execFileSync('git', ['-C', repoRoot, 'archive', '--format=tar', ref, 'agent', 'cmd', 'lib', 'package.json'], { maxBuffer: 256 * 1024 * 1024 });
  execFileSync('tar', ['-x', '-C', src], { input: tar });
  const pkg = JSON.parse(readFileSync(join(src, 'package.json'), 'utf8')) as { version: string };
  const file = join(dir, entry === 'agent/main.ts' ? 'agent.js' : 'kubectl-cilium_migrate');
  await build({
    entryPoints: [join(src, entry)],
    outfile: file,
    absWorkingDir: src,
    nodePaths: [join(repoRoot, 'node_modules')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    banner: { js: ['#!/usr/bin/env node', "import { createRequire as __createRequire } from 'node:module';", 'const require = __createRequire(import.meta.url);'].join('\n') },
    define: { __VERSION__: JSON.stringify(pkg.version) },
    legalComments: 'none',
    logLevel: 'warning',
    // As build.mjs bundles today's, so that only the code differs.
    minifyWhitespace: true,
    minifySyntax: true,
  });
  return { file, dir };
}
