// The plugin's start-up and its bundle: every `kubectl cilium-migrate` command, every `connectivity`
// read a person or a script makes, starts a Node process and loads the bundle. Today's code bundled
// two ways, as build.mjs did before (no minification) and as it does now (whitespace and syntax
// minified, identifiers kept): size, wall time, CPU and peak RSS of `--help` (no cluster) and of
// `status` against a 3-node cluster; and the agent's time from start to answering /healthz.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { createSimulatedNodes, kindNodes } from '../lab/cluster-objects.js';
import { freePort, startControlPlane, type ControlPlane } from '../lab/control-plane.js';
import { timedNode } from './processes.js';
import { benchRun, controlPlaneVersions, median, spread, updateSection } from './report.js';
import { removeOnExit } from '../lab/process.js';

const runs = Number(process.env.BENCH_RUNS ?? 10);
const repoRoot = join(import.meta.dirname, '..');
const log = (l: string) => process.stderr.write(`[startup] ${l}\n`);
const banner = ['#!/usr/bin/env node', "import { createRequire as __createRequire } from 'node:module';", 'const require = __createRequire(import.meta.url);'].join('\n');

/** Bytes of the bundle that came from @kubernetes/client-node, by the last bundle's metafile. */
let clientNodeBytes = 0;

async function bundle(dir: string, entry: string, name: string, minify: boolean): Promise<string> {
  const outfile = join(dir, name);
  const result = await build({
    metafile: true,
    entryPoints: [join(repoRoot, entry)], outfile, bundle: true, platform: 'node', format: 'esm', target: 'node20',
    banner: { js: banner }, define: { __VERSION__: '"0.0.0-bench"' }, legalComments: 'none', logLevel: 'warning',
    ...(minify ? { minifyWhitespace: true, minifySyntax: true } : {}),
  });
  const inputs = Object.values(result.metafile.outputs)[0]!.inputs;
  clientNodeBytes = Object.entries(inputs).filter(([f]) => f.includes('node_modules/@kubernetes/client-node/')).reduce((sum, [, v]) => sum + v.bytesInOutput, 0);
  return outfile;
}

/** Wall time, CPU and peak RSS of `node FILE ARGS`, several runs. */
async function measure(file: string, args: string[], env: NodeJS.ProcessEnv) {
  const out = { wall: [] as number[], cpu: [] as number[], peak: [] as number[] };
  for (let i = 0; i < runs; i++) {
    const r = await timedNode(file, args, env);
    if (r.code !== 0) throw new Error(`${file} ${args.join(' ')} exited ${r.code}: ${r.stderr.slice(-1000)}`);
    out.wall.push(r.seconds * 1000);
    out.cpu.push(r.cpuMs);
    out.peak.push(r.peakMiB);
  }
  return out;
}

/** Milliseconds from spawning the agent to its first 200 on /healthz. */
async function agentStart(file: string, dir: string): Promise<number> {
  const peers = join(dir, 'peers.json');
  writeFileSync(peers, JSON.stringify({ agents: [], nodes: [], ciliumNodeCidrs: {} }));
  const port = await freePort();
  const started = performance.now();
  const child = spawn(process.execPath, [file, '--peers-file', peers, '--port', String(port)], { env: { PATH: process.env.PATH ?? '', NODE_NAME: 'n', POD_NAME: 'p', POD_NAMESPACE: 'ns', POD_IP: '127.0.0.1' }, stdio: 'ignore' });
  try {
    for (;;) {
      try {
        if ((await fetch(`http://127.0.0.1:${port}/healthz`)).ok) return performance.now() - started;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  } finally {
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
  }
}

async function main(): Promise<void> {
  const run = benchRun();
  const dir = mkdtempSync(join(tmpdir(), 'bench-startup-'));
  removeOnExit(dir);
  let cp: ControlPlane | undefined;
  try {
    cp = await startControlPlane({ progress: log });
    await createSimulatedNodes(cp, kindNodes(2));
    const env = { PATH: process.env.PATH ?? '', HOME: dir };
    const rows: string[] = [];
    const agentRows: string[] = [];
    writeFileSync(join(dir, 'empty.mjs'), '');
    const floor = await measure(join(dir, 'empty.mjs'), [], env);
    rows.push(`| Node.js itself (an empty file) | - | ${spread(floor.wall, 0)} | ${spread(floor.cpu, 0)} | ${spread(floor.peak, 0)} | - | - | - |`);
    for (const [label, minify] of [['before: not minified', false], ['after: minified (build.mjs today)', true]] as const) {
      const plugin = await bundle(dir, 'cmd/main.ts', `plugin-${minify}.mjs`, minify);
      const fromClientNode = clientNodeBytes;
      const agent = await bundle(dir, 'agent/main.ts', `agent-${minify}.mjs`, minify);
      const help = await measure(plugin, ['--help'], env);
      const status = await measure(plugin, ['status', '--kubeconfig', cp.kubeconfig], env);
      rows.push(`| ${label} | ${(statSync(plugin).size / 1e6).toFixed(1)} MB (client-node ${(fromClientNode / 1e6).toFixed(1)} MB) | ${spread(help.wall, 0)} | ${spread(help.cpu, 0)} | ${spread(help.peak, 0)} | ${spread(status.wall, 0)} | ${spread(status.cpu, 0)} | ${spread(status.peak, 0)} |`);
      const starts: number[] = [];
      for (let i = 0; i < runs; i++) starts.push(await agentStart(agent, dir));
      agentRows.push(`| ${label} | ${(statSync(agent).size / 1e6).toFixed(1)} MB | ${spread(starts, 0)} |`);
      log(`${label}: help ${median(help.wall).toFixed(0)} ms, status ${median(status.wall).toFixed(0)} ms, agent ${median(starts).toFixed(0)} ms`);
    }
    const body = [
      `Command: \`make bench-startup\` (bench/startup.ts), ${runs} runs of each; medians with min-max.`,
      run.machine(controlPlaneVersions),
      'Today\'s code bundled as build.mjs did before (no minification) and as it does now (`minifyWhitespace` and `minifySyntax`, identifiers kept so error names and -v stacks read as in the source). `--help` needs no cluster; `status` reads a 3-node cluster on loopback (kwok). CPU and peak RSS: the process\'s own resource usage at exit (user + system, maxRSS).',
      '',
      '| plugin bundle | size | `--help`, ms | `--help` CPU, ms | `--help` peak RSS, MiB | `status`, ms | `status` CPU, ms | `status` peak RSS, MiB |',
      '|---|---|---|---|---|---|---|---|',
      ...rows,
      '',
      '| agent bundle | size | start to /healthz, ms |',
      '|---|---|---|',
      ...agentRows,
      '',
      'Nearly all of the plugin bundle is @kubernetes/client-node (its share in brackets, from esbuild\'s metafile): its generated models and APIs, which its ObjectSerializer references, so a bundler cannot drop them. Not tried: lazy loading of client-node for the commands that need no cluster (`--help`, `values`): every command a migration runs needs it, so it would only move the cost.',
      'Not covered: a cold page cache (every run but the first reads the bundle from memory), slower disks or CPUs than this machine\'s, `kubectl` itself finding the plugin on PATH (kubectl\'s own start-up comes on top).',
    ].join('\n');
    process.stdout.write(`${body}\n`);
    updateSection('Plugin start-up and bundle size', body);
  } finally {
    await cp?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
