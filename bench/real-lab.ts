// The real-node lab's costs: `lab up` with 3 and 5 nodes (binaries and images cached), what a node
// costs at rest (its kubelet, containerd and shims: RSS and CPU), how long a node takes to come
// back from `docker restart` by the plugin's kind rule, `lab down`. With BENCH_COLD=1 also the cold
// builds a fresh machine (or CI) pays: the control-plane binaries, then what the real-node lab
// adds (the node binaries, helm with Cilium's chart, Cilium's binaries and the images), each with
// empty Go module, Go build, binary and image caches of their own.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kubeEngineCluster } from '../cmd/cluster/kube-cluster.js';
import { kindRestarter, restartBaseline, restartedNode, type CommandRunner } from '../cmd/engine/restart.js';
import { connect } from '../lib/kube.js';
import { labDown, labUp } from '../lab/cli.js';
import { statePaths } from '../lab/daemon.js';
import { waitUntil } from '../lab/wait.js';
import { benchRun, spread, updateSection } from './report.js';

const runs = Number(process.env.BENCH_RUNS ?? 3);
const repo = join(import.meta.dirname, '..');
const labJs = join(repo, 'dist', 'lab.js');
const clockTicks = 100;

function pidsOfNode(stateDir: string, node: string): number[] {
  const pid = execFileSync(join(stateDir, 'bin', 'docker'), ['inspect', '-f', '{{.State.Pid}}', node], { encoding: 'utf8' }).trim();
  const ns = readlinkSync(`/proc/${pid}/ns/pid`);
  return readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      return readlinkSync(`/proc/${p}/ns/pid`) === ns;
    } catch {
      return false;
    }
  }).map(Number);
}

const nodeOwn = ['bash', 'containerd', 'kubelet', 'containerd-shim', 'containerd-shim-runc-v2', 'sleep'];

/** RSS (MiB) and CPU time (s) of a node's processes named in `comms`: by default its own (init, containerd, kubelet, shims; not its pods' containers). */
function nodeUsage(stateDir: string, node: string, comms = nodeOwn): { rssMiB: number; cpuSeconds: number } {
  let rss = 0;
  let cpu = 0;
  for (const pid of pidsOfNode(stateDir, node)) {
    try {
      const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      if (!comms.includes(comm)) continue;
      rss += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      cpu += (Number(f[11]) + Number(f[12])) / clockTicks;
    } catch {
      // gone meanwhile
    }
  }
  return { rssMiB: rss, cpuSeconds: cpu };
}

type WarmRun = { up: number; down: number; rss?: number; cpu?: number; agentRss?: number; agentCpu?: number; back?: number };

async function warmRun(nodes: number): Promise<WarmRun> {
  const stateDir = mkdtempSync(join(tmpdir(), 'bench-real-lab-'));
  try {
    let t = Date.now();
    const lab = await labUp({ stateDir, nodes, labJs, progress: () => {} });
    const up = (Date.now() - t) / 1000;
    const out: WarmRun = { up, down: 0 };
    if (nodes === 3) {
      // At rest: 20 s after the lab is up, over 20 s, per node.
      await new Promise((r) => setTimeout(r, 20_000));
      const names = lab.nodes.map((n) => n.name);
      const agent = ['cilium-agent'];
      const a = names.map((n) => nodeUsage(stateDir, n));
      const aa = names.map((n) => nodeUsage(stateDir, n, agent));
      await new Promise((r) => setTimeout(r, 20_000));
      const b = names.map((n) => nodeUsage(stateDir, n));
      const ba = names.map((n) => nodeUsage(stateDir, n, agent));
      const perNode = (after: typeof b, before: typeof a) => ({
        rss: after.reduce((s, x) => s + x.rssMiB, 0) / names.length,
        cpu: (after.reduce((s, x) => s + x.cpuSeconds, 0) - before.reduce((s, x) => s + x.cpuSeconds, 0)) / 20 / names.length * 100,
      });
      ({ rss: out.rss, cpu: out.cpu } = perNode(b, a));
      ({ rss: out.agentRss, cpu: out.agentCpu } = perNode(ba, aa));
      // The plugin's kind restart through the lab's docker, until its completion rule says back.
      const runner: CommandRunner = (argv, timeoutMs) => new Promise((resolve) => execFile(argv[0]!, argv.slice(1), { timeout: timeoutMs, env: { ...process.env, PATH: `${join(stateDir, 'bin')}:${process.env.PATH ?? ''}` } }, (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr })));
      const cluster = kubeEngineCluster(connect({ kubeconfig: statePaths(stateDir).kubeconfig }));
      const restarter = kindRestarter(runner);
      const baseline = restartBaseline(await cluster.getNode('kind-worker'), await cluster.listNodePods('kind-worker'), new Date());
      t = Date.now();
      await restarter.request(await cluster.getNode('kind-worker'), `bench-${Date.now()}`);
      await waitUntil('kind-worker to come back from docker restart', () => restartedNode(restarter, cluster, 'kind-worker', baseline), 300_000, 250);
      out.back = (Date.now() - t) / 1000;
    }
    t = Date.now();
    await labDown({ stateDir, progress: () => {} });
    out.down = (Date.now() - t) / 1000;
    return out;
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
}

function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = Date.now();
    const child = spawn(cmd, args, { cwd: repo, env, stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('exit', (code) => (code === 0 ? resolve((Date.now() - t) / 1000) : reject(new Error(`${cmd} ${args.join(' ')} failed (exit ${code})`))));
  });
}

type ColdBuilds = { controlPlane: number; node: number; helm: number; cilium: number; images: number };

async function coldBuilds(): Promise<ColdBuilds> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-cold-'));
  const env = { ...process.env, GOMODCACHE: join(dir, 'mod'), GOCACHE: join(dir, 'gocache'), BIN_CACHE: join(dir, 'bins'), IMAGE_CACHE: join(dir, 'images') };
  try {
    const controlPlane = await timed('lab/bins/build.sh', ['control-plane'], env);
    const node = await timed('lab/bins/build.sh', ['node'], env);
    const helm = await timed('lab/bins/build.sh', ['cilium-chart'], env);
    const cilium = await timed('lab/bins/build.sh', ['cilium'], env);
    // The images take Cilium's binaries too: built after them.
    const images = await timed(process.execPath, ['--import', 'tsx', 'lab/images/build.ts'], env);
    return { controlPlane, node, helm, cilium, images };
  } finally {
    // The module cache is read-only as Go writes it.
    execFileSync('chmod', ['-R', 'u+w', dir]);
    rmSync(dir, { recursive: true, force: true });
  }
}

export function coldSection(cold: ColdBuilds, machine: string): string {
  return [
    'Command: `BENCH_COLD=1 make bench-real-lab` (bench/real-lab.ts), before its warm runs: each build with empty Go module, Go build, binary and image caches of its own (what a fresh CI machine pays once; the Go module proxy and Debian\'s mirror reachable).',
    machine,
    '',
    '| build | s |',
    '|---|---|',
    `| control-plane binaries (etcd, kwok, kube-apiserver, controller manager, scheduler, kubectl) | ${cold.controlPlane.toFixed(0)} |`,
    `| node binaries (kubelet, kube-proxy, containerd, shim, ctr, CNI plugins, flanneld, pause), after the control plane | ${cold.node.toFixed(0)} |`,
    `| helm and Cilium's chart, after the node binaries | ${cold.helm.toFixed(0)} |`,
    `| Cilium (agent, dbg, health, bugtool, mount, sysctlfix, cni, operator-generic), after helm | ${cold.cilium.toFixed(0)} |`,
    `| images (Debian bases by mmdebstrap, the node image, the pod images with Cilium's two, the archive) | ${cold.images.toFixed(0)} |`,
    `| added by the real-node lab (node binaries and images) | ${(cold.node + cold.images).toFixed(0)} |`,
    `| all of it (what \`make test\` builds on a fresh machine) | ${(cold.controlPlane + cold.node + cold.helm + cold.cilium + cold.images).toFixed(0)} |`,
  ].join('\n');
}

async function main(): Promise<void> {
  const coldRun = benchRun();
  const cold = process.env.BENCH_COLD === '1' ? await coldBuilds() : undefined;
  if (cold) {
    process.stderr.write(`cold: control plane ${cold.controlPlane} s, node binaries ${cold.node} s, helm ${cold.helm} s, Cilium ${cold.cilium} s, images ${cold.images} s\n`);
    updateSection('Real-node lab: cold builds', coldSection(cold, coldRun.machine()));
  }
  const run = benchRun();
  const three: WarmRun[] = [];
  for (let i = 0; i < runs; i++) {
    three.push(await warmRun(3));
    process.stderr.write(`3 nodes, run ${i + 1}: ${JSON.stringify(three.at(-1))}\n`);
  }
  const five = await warmRun(5);
  process.stderr.write(`5 nodes: ${JSON.stringify(five)}\n`);
  const col = (k: keyof WarmRun, digits = 1) => spread(three.map((r) => r[k] ?? NaN), digits);
  const body = [
    `Command: \`make bench-real-lab\` (bench/real-lab.ts): \`lab up\`, a rest, a kind restart, \`lab down\`, ${runs} times with 3 nodes, once with 5.`,
    run.machine(),
    'The lab: the real control plane, kind\'s nodes with kubelet v1.36.5 and containerd v2.2.9 (binaries and images cached), kube-proxy, Flannel, Cilium v1.18.3 in migration mode from its chart (helm install; agents Ready on every node, the operator, a Cilium pod CIDR per node) and nginx with 10 replicas Ready (`lab up` includes all of it; every node imports the images archive, Cilium\'s agent image among them, when it is created). A Cilium agent at rest: the cilium-agent process of each node over the same 20 s. A node at rest: its init, containerd, kubelet and shims (its pods\' containers aside) 20 s after the lab is up, over 20 s. Back from docker restart: from `docker restart kind-worker` (the lab\'s docker, as the plugin runs it) until the plugin\'s kind rule (container started after the request, kubelet\'s Starting event or restarted DaemonSet pods, Ready reported by the new kubelet) says the node is back.',
    '',
    '| figure | median (min-max) |',
    '|---|---|',
    `| lab up, 3 nodes, warm, s | ${col('up')} |`,
    `| lab up, 5 nodes, warm, s | ${five.up.toFixed(1)} |`,
    `| lab down, 3 nodes, s | ${col('down')} |`,
    `| a node at rest, RSS MiB | ${col('rss', 0)} |`,
    `| a node at rest, CPU % of one core | ${col('cpu')} |`,
    `| a Cilium agent at rest, RSS MiB | ${col('agentRss', 0)} |`,
    `| a Cilium agent at rest, CPU % of one core | ${col('agentCpu')} |`,
    `| back from docker restart, s | ${col('back')} |`,
    '',
    'Not covered: a migration\'s steps on these nodes (see "Per-node time on the lab"), nodes on separate machines (every node here shares the same 2 cores).',
  ].join('\n');
  process.stdout.write(`${body}\n`);
  updateSection('Real-node lab: up, at rest, restart, down', body);
}

if (process.argv[1] !== undefined && /bench[/\\]real-lab\.ts$/.test(process.argv[1])) await main();
