// `status` and `plan` at 1,000 nodes with 30 application pods each, objects at realistic sizes
// (bench/scale-cluster.ts): the whole plugin process each time (start, kubeconfig, the LISTs, the
// computation, the table), its wall time and peak RSS, today's plugin against the one of
// BENCH_BASELINE_REF (before the LISTs were paginated and kept only the fields they use).
import { rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import type { ControlPlane } from '../lab/control-plane.js';
import { liteCredentials } from '../lib/kube-lite.js';
import { bundleAt, describeRef } from './baseline.js';
import { apiserverPid, cpuSeconds, timedNode } from './processes.js';
import { startScaleCluster } from './scale-cluster.js';
import { benchRun, controlPlaneVersions, median, spread, updateSection } from './report.js';

const nodeCount = Number(process.env.BENCH_NODES ?? 1000);
const podsPerNode = Number(process.env.BENCH_PODS_PER_NODE ?? 30);
const runs = Number(process.env.BENCH_RUNS ?? 3);
const baselineRef = process.env.BENCH_BASELINE_REF ?? '6e3241d';
const repoRoot = join(import.meta.dirname, '..');
const targetSeconds = 5;
const log = (l: string) => process.stderr.write(`[scale] ${l}\n`);

/**
 * The floor under any client of this API server: every pod, page by page as the plugin asks for
 * them (limit 500, continue), each body received in full and, with `parse`, parsed as JSON. The
 * continue token is read from the body's metadata, which the API server writes before the items.
 */
async function pageThrough(kubeconfig: string, parse: boolean): Promise<{ seconds: number; bytes: number; pages: number }> {
  const creds = liteCredentials(kubeconfig);
  const started = performance.now();
  let token: string | undefined;
  let bytes = 0;
  let pages = 0;
  do {
    const url = new URL(`/api/v1/pods?limit=500${token ? `&continue=${encodeURIComponent(token)}` : ''}`, creds.server);
    const chunks: Buffer[] = await new Promise((resolve, reject) => {
      const req = httpsRequest(url, { ca: creds.ca, cert: creds.cert, key: creds.key, headers: { Accept: 'application/json' } }, (res) => {
        const got: Buffer[] = [];
        res.on('data', (c: Buffer) => got.push(c));
        res.on('end', () => (res.statusCode === 200 ? resolve(got) : reject(new Error(`GET ${url.pathname}: HTTP ${res.statusCode}`))));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    const body = Buffer.concat(chunks);
    bytes += body.length;
    pages++;
    if (parse) token = (JSON.parse(body.toString('utf8')) as { metadata?: { continue?: string } }).metadata?.continue || undefined;
    else token = /"continue":"([^"]*)"/.exec(body.subarray(0, 4096).toString('utf8'))?.[1] || undefined;
  } while (token);
  return { seconds: (performance.now() - started) / 1000, bytes, pages };
}

async function main(): Promise<void> {
  const run = benchRun();
  const baseline = await bundleAt(baselineRef, 'cmd/main.ts');
  let cp: ControlPlane | undefined;
  try {
    cp = await startScaleCluster({ nodes: nodeCount, podsPerNode, log });
    const pods = (await cp.get<{ items: unknown[]; metadata: { remainingItemCount?: number } }>('/api/v1/pods?limit=1'));
    const podCount = 1 + (pods.metadata.remainingItemCount ?? 0);
    const podBytes = Buffer.byteLength(JSON.stringify(pods.items[0]));
    const env = { PATH: process.env.PATH ?? '', HOME: cp.rootDir };
    const apiserver = apiserverPid(cp);
    // What the API server alone takes to send every pod, and with the JSON parsed as the plugin must.
    const floors: string[] = [];
    let listBytes = 0;
    let listPages = 0;
    const floorMedian: number[] = [];
    for (const parse of [false, true]) {
      const seconds: number[] = [];
      const cpu: number[] = [];
      for (let i = 0; i < runs; i++) {
        const cpuBefore = cpuSeconds(apiserver);
        const f = await pageThrough(cp.kubeconfig, parse);
        cpu.push(cpuSeconds(apiserver) - cpuBefore);
        seconds.push(f.seconds);
        listBytes = f.bytes;
        listPages = f.pages;
        log(`page through pods${parse ? ' and parse' : ''}: ${f.seconds.toFixed(2)} s, ${(f.bytes / 2 ** 20).toFixed(0)} MiB in ${f.pages} pages`);
      }
      floorMedian.push(median(seconds));
      floors.push(`| every pod, pages of 500, ${parse ? 'each page parsed (JSON.parse)' : 'bodies received, not parsed'} | ${spread(seconds, 2)} | ${spread(cpu, 2)} |`);
    }
    const commands = [['status'], ['plan'], ['plan', '--max-unavailable', '50']];
    const rows: string[] = [];
    let slowest = 0;
    for (const [label, file] of [[`before (${baselineRef})`, baseline.file], ['after (today)', join(repoRoot, 'dist', 'kubectl-cilium_migrate')]] as const) {
      for (const args of commands) {
        const seconds: number[] = [];
        const peaks: number[] = [];
        const cpu: number[] = [];
        const apiCpu: number[] = [];
        for (let i = 0; i < runs; i++) {
          const apiBefore = cpuSeconds(apiserver);
          const r = await timedNode(file, [...args, '--kubeconfig', cp.kubeconfig], env);
          if (r.code !== 0) throw new Error(`${args.join(' ')} (${label}) exited ${r.code}: ${r.stderr.slice(-2000)}`);
          apiCpu.push(cpuSeconds(apiserver) - apiBefore);
          seconds.push(r.seconds);
          peaks.push(r.peakMiB);
          cpu.push(r.cpuMs / 1000);
          log(`${label.slice(0, 6)} ${args.join(' ')}: ${r.seconds.toFixed(2)} s, ${r.peakMiB.toFixed(0)} MiB, CPU ${(r.cpuMs / 1000).toFixed(2)} s, API server CPU ${apiCpu.at(-1)!.toFixed(2)} s`);
        }
        if (label.startsWith('after')) slowest = Math.max(slowest, median(seconds));
        rows.push(`| ${label} | \`${args.join(' ')}\` | ${spread(seconds, 2)} | ${spread(cpu, 2)} | ${spread(apiCpu, 2)} | ${spread(peaks, 0)} |`);
      }
    }
    const body = [
      `Command: \`make bench-scale-reads\` (bench/scale.ts; \`make bench-scale\` runs it at 1,000 nodes x 30 pods)${nodeCount !== 1000 || podsPerNode !== 30 ? `, here with BENCH_NODES=${nodeCount} BENCH_PODS_PER_NODE=${podsPerNode}` : ''}, ${runs} run${runs === 1 ? '' : 's'} of each command.`,
      run.machine(controlPlaneVersions),
      `The cluster (bench/scale-cluster.ts): ${nodeCount} kwok nodes (realistic Node objects, about 14 KiB of JSON each), a CiliumNode each, Cilium's and the probe agent's DaemonSets, the CiliumNodeConfig and ${podsPerNode * nodeCount} application pods in Deployments of 100 (env, probes, resources, volumes, managed fields: ${(podBytes / 1024).toFixed(1)} KiB of JSON a pod): ${podCount} pods in all. Each figure is the whole bundled plugin as a process: start, kubeconfig, the LISTs, the computation and the table; RSS is its peak (maxRSS, from the process\'s own resource usage at exit).`,
      `Before: the plugin of ${describeRef(baselineRef)}, which read every collection in one LIST through client-node's typed models. After: pods, nodes and CiliumNodes read in pages of 500 (limit/continue) as plain JSON, keeping only the fields the views use.`,
      '',
      '| plugin | command | wall time s, median (min-max) | plugin CPU s | API server CPU s | peak RSS MiB |',
      '|---|---|---|---|---|---|',
      ...rows,
      '',
      `The floor under any client: the API server sending every pod (${(listBytes / 2 ** 20).toFixed(0)} MiB of JSON in ${listPages} pages of 500, each page asked for when the one before has arrived, as the plugin does), received by a bare HTTPS client in the benchmark's process:`,
      '',
      '| read | wall time s, median (min-max) | API server CPU s |',
      '|---|---|---|',
      ...floors,
      '',
      `Target: each read under ${targetSeconds} s at ${nodeCount} nodes x ${podsPerNode} pods: ${slowest < targetSeconds ? 'MET' : `MISSED (slowest median ${slowest.toFixed(2)} s). Why: the API server alone takes ${floorMedian[0]!.toFixed(2)} s to send the pods and a client that only parses them ${floorMedian[1]!.toFixed(2)} s (the floor above), on the same two cores as the plugin, kwok and the rest of the control plane; the plugin's own start, other LISTs, computation and table are the remaining ${Math.max(0, slowest - floorMedian[1]!).toFixed(2)} s`}. \`connectivity\` at this scale is measured in its own section; \`run\` in "End to end at 1,000 nodes".`,
      `Not covered: an API server over a network (here on loopback: a LIST of ${podCount} pods is mostly the API server's and the plugin's CPU), pods of more than one container, clusters with many namespaces of Secrets and ConfigMaps (not read).`,
    ].join('\n');
    process.stdout.write(`${body}\n`);
    updateSection(`status and plan at ${nodeCount.toLocaleString('en')} nodes x ${podsPerNode} pods`, body);
  } finally {
    await cp?.stop();
    rmSync(baseline.dir, { recursive: true, force: true });
  }
}

await main();
