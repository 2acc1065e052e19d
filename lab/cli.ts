// The lab's command line (dist/lab.js): `up` starts the lab daemon and waits until the cluster is
// ready, `down` stops it and checks nothing is left, `status` shows the nodes, `restart-node NODE`
// restarts one node like `docker restart`, `reboot-node NODE` reboots it (new bootID), `demo` runs
// the seed's migration end to end. The daemon (lab/kind-daemon.ts: real nodes with kubelet,
// containerd and runc, lab/kind-lab.ts) runs as `lab daemon`, started by `up`.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import yargs from 'yargs';
import { pidsMentioning, reapStaleControlPlanes } from './control-plane.js';
import { defaultDistDir, defaultStateDir, statePaths, type LabStatus } from './daemon.js';
import { runDemo } from './demo.js';
import { runKindDaemon } from './kind-daemon.js';
import { legacyCnis, type LegacyCni } from './kind-lab.js';
import { netnsUnsupportedReason } from './netns.js';
import { inotifyInUse, inotifyLimit, inotifyShortage } from './node/inotify.js';
import { isLabDir, labMarker, leftovers, reapStaleLabs } from './node/lab-resources.js';
import { checkLayout, defaultLayout, describeLayout, layoutArgs, layoutFlags, layoutParsers, withLegacy, type LabLayout } from './layout.js';
import { pidAlive } from './process.js';
import { UsageError } from '../lib/errors.js';
import { flagCoercion, integer, nodeName, nonEmpty, port, positionalCoercion, type Parser, ValueError } from '../lib/flag-values.js';

export class LabError extends Error {
  constructor(message: string, readonly hint?: string) {
    super(message);
    this.name = 'LabError';
  }
}

const out = (line: string) => process.stdout.write(`${line}\n`);
const err = (line: string) => process.stderr.write(`${line}\n`);

/** One request on the lab's control socket; undefined when nothing answers there. */
export function controlRequest<T>(stateDir: string, method: string, path: string, timeoutMs = 120_000): Promise<{ status: number; body: T } | undefined> {
  return new Promise((resolve) => {
    const req = request({ socketPath: statePaths(stateDir).control, method, path, timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d)).on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as T });
        } catch {
          resolve(undefined);
        }
      });
    });
    req.on('error', () => resolve(undefined)).on('timeout', () => req.destroy());
    req.end();
  });
}

/** This process and its ancestors. */
function ancestors(): Set<number> {
  const seen = new Set<number>();
  let pid = process.pid;
  while (pid > 1 && !seen.has(pid)) {
    seen.add(pid);
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {
      break;
    }
  }
  return seen;
}

function listNetns(): string[] {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split('\n').map((l) => l.split(' ')[0] ?? '').filter(Boolean) : [];
}

function daemonPid(stateDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(statePaths(stateDir).pid, 'utf8').trim());
    return pid > 0 && pidAlive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

function requireRoot(what: string): void {
  if (process.getuid?.() !== 0) throw new LabError(`lab ${what} needs root: the lab's nodes and pods are network namespaces`, `run it as root, e.g. sudo make lab-${what === 'up' ? 'up' : 'down'}`);
  const reason = netnsUnsupportedReason();
  if (reason !== undefined) throw new LabError(`the lab cannot run here: ${reason}`);
}

/**
 * Makes `stateDir` the lab's: creates it with the lab's marker, or takes an empty one. A directory
 * holding anything without the marker is not the lab's and is refused (nothing in it is touched).
 */
function claimStateDir(stateDir: string): void {
  if (existsSync(stateDir) && !isLabDir(stateDir) && readdirSync(stateDir).length > 0) {
    throw new LabError(`${stateDir} exists and is not a lab's state directory (it has no ${labMarker})`, 'choose another --state-dir, or an empty or missing directory');
  }
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  writeFileSync(join(stateDir, labMarker), `${JSON.stringify({ createdBy: process.pid })}\n`);
}

/** Starts the daemon and waits until the lab is ready, echoing its progress; returns the status. */
export async function labUp(opts: { stateDir: string; nodes: number; layout?: Partial<LabLayout>; cilium?: boolean; legacy?: LegacyCni; progress?: (line: string) => void; timeoutMs?: number; labJs?: string }): Promise<LabStatus> {
  if (!Number.isInteger(opts.nodes) || opts.nodes < 1 || opts.nodes > 50) throw new LabError(`--nodes ${opts.nodes}: a lab has 1 to 50 nodes`);
  const layout = withLegacy({ ...defaultLayout, ...opts.layout }, opts.legacy ?? 'flannel');
  checkLayout(layout, opts.nodes);
  requireRoot('up');
  const progress = opts.progress ?? err;
  const running = await controlRequest<LabStatus>(opts.stateDir, 'GET', '/status', 5000);
  if (running) throw new LabError(`a lab is already running (state ${opts.stateDir}, kubeconfig ${running.body.kubeconfig})`, 'tear it down first: make lab-down');
  const shortage = inotifyShortage(opts.nodes, inotifyLimit(), inotifyInUse());
  if (shortage) throw new LabError(shortage.message, shortage.hint);
  const paths = statePaths(opts.stateDir);
  // What SIGKILLed labs left: their namespaces, cgroups and marked state directories.
  await reapStaleLabs();
  if (existsSync(paths.pid) && daemonPid(opts.stateDir) === undefined && isLabDir(opts.stateDir)) rmSync(opts.stateDir, { recursive: true, force: true });
  claimStateDir(opts.stateDir);
  rmSync(paths.log, { force: true });
  const fd = openSync(paths.log, 'a');
  // This program again (dist/lab.js, or lab/cli.ts under tsx), unless told which.
  const [script, execArgv] = opts.labJs ? [opts.labJs, []] : [process.argv[1]!, process.execArgv];
  const child = spawn(process.execPath, [...execArgv, script, 'daemon', '--state-dir', opts.stateDir, '--nodes', String(opts.nodes), ...layoutArgs(layout), ...(opts.cilium === false ? ['--no-cilium'] : []), ...(opts.legacy && opts.legacy !== 'flannel' ? ['--legacy', opts.legacy] : [])], { detached: true, stdio: ['ignore', fd, fd], env: process.env });
  closeSync(fd);
  child.unref();
  let exited: number | string | undefined;
  child.once('exit', (code, signal) => (exited = code ?? signal ?? 'unknown'));

  // Generous: on a busy machine, binaries and images may be built first.
  const timeoutMs = opts.timeoutMs ?? 900_000;
  const deadline = Date.now() + timeoutMs;
  let shown = 0;
  const echo = () => {
    try {
      const size = statSync(paths.log).size;
      if (size <= shown) return;
      const text = readFileSync(paths.log, 'utf8').slice(shown);
      const complete = text.lastIndexOf('\n') + 1;
      for (const line of text.slice(0, complete).split('\n').filter(Boolean)) progress(line);
      shown += Buffer.byteLength(text.slice(0, complete));
    } catch {
      // no log yet
    }
  };
  for (;;) {
    echo();
    if (exited !== undefined) {
      echo();
      const tail = readFileSync(paths.log, 'utf8').trimEnd().split('\n').slice(-8).join('\n  ');
      throw new LabError(`the lab daemon stopped (${exited}) before the lab was up; the end of its log (${paths.log}):\n  ${tail}`);
    }
    const st = await controlRequest<LabStatus>(opts.stateDir, 'GET', '/status', 5000);
    if (st?.body.ready) {
      echo();
      return st.body;
    }
    if (Date.now() > deadline) {
      await labDown({ stateDir: opts.stateDir, progress });
      throw new LabError(`the lab was not up after ${timeoutMs / 1000}s; it was torn down again (log: ${paths.log})`);
    }
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** Stops the daemon (and with it everything of the lab) and removes the state directory. */
export async function labDown(opts: { stateDir: string; progress?: (line: string) => void; timeoutMs?: number }): Promise<{ wasRunning: boolean }> {
  requireRoot('down');
  const progress = opts.progress ?? err;
  const pid = daemonPid(opts.stateDir);
  const status = await controlRequest<LabStatus>(opts.stateDir, 'GET', '/status', 5000);
  const answered = await controlRequest(opts.stateDir, 'POST', '/shutdown', 5000);
  if (!answered && pid !== undefined) process.kill(pid, 'SIGTERM');
  const wasRunning = answered !== undefined || pid !== undefined;
  if (pid !== undefined) {
    const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
    while (pidAlive(pid)) {
      if (Date.now() > deadline) {
        progress(`the lab daemon (pid ${pid}) did not stop in time; killing it`);
        process.kill(pid, 'SIGKILL');
        break;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    while (pidAlive(pid)) await new Promise((r) => setTimeout(r, 50));
  }
  // Whatever a killed daemon left: its control plane's files and processes, its namespaces and cgroups.
  reapStaleControlPlanes();
  const reaped = await reapStaleLabs();
  const realLeft = status?.body.prefix ? leftovers(status.body.prefix) : [];
  // Only a directory that carries the lab's marker is removed.
  if (isLabDir(opts.stateDir)) rmSync(opts.stateDir, { recursive: true, force: true });
  // The lab's processes die with the daemon (parent-death signal); give the last ones a moment.
  // Our own ancestors (a shell, make, a test runner) may name the state directory too: not the lab's.
  const ours = ancestors();
  const stateProcesses = () => pidsMentioning(opts.stateDir).filter((p) => !ours.has(p));
  for (let i = 0; i < 100 && stateProcesses().length > 0; i++) await new Promise((r) => setTimeout(r, 100));
  const left = [
    ...(status?.body.underlayNetns ? listNetns().filter((n) => n.startsWith(`${status.body.underlayNetns.split('-')[0]}-`)).map((n) => `namespace ${n}`) : []),
    ...stateProcesses().map((p) => `process ${p}`),
    ...reaped, ...realLeft,
  ];
  if (left.length > 0) throw new LabError(`the lab is down but left ${left.join(', ')}`, 'remove them by hand (ip netns del NAME, kill PID) and report this');
  return { wasRunning };
}

export async function labStatus(stateDir: string): Promise<LabStatus> {
  const st = await controlRequest<LabStatus>(stateDir, 'GET', '/status', 10_000);
  if (!st) throw new LabError(`no lab is running (state directory ${stateDir})`, 'start one with: sudo make lab-up');
  return st.body;
}

export async function labRestartNode(stateDir: string, node: string, reboot = false): Promise<{ node: string; pods: number; bootIDBefore?: string; bootIDAfter?: string }> {
  const res = await controlRequest<{ error?: string; node: string; pods: number; bootIDBefore?: string; bootIDAfter?: string }>(stateDir, 'POST', `/${reboot ? 'reboot' : 'restart'}-node?node=${encodeURIComponent(node)}`, 600_000);
  if (!res) throw new LabError(`no lab is running (state directory ${stateDir})`, 'start one with: sudo make lab-up');
  if (res.status !== 200) throw new LabError(`cannot restart ${node}: ${res.body.error ?? `HTTP ${res.status}`}`);
  return res.body;
}

export async function labUdpPort(stateDir: string, node: string, port: number, action: 'drop' | 'restore'): Promise<void> {
  const res = await controlRequest<{ error?: string }>(stateDir, 'POST', `/udp-port?node=${encodeURIComponent(node)}&port=${port}&action=${action}`);
  if (!res) throw new LabError(`no lab is running (state directory ${stateDir})`, 'start one with: sudo make lab-up');
  if (res.status !== 200) throw new LabError(`cannot ${action} UDP ${port} on ${node}: ${res.body.error ?? `HTTP ${res.status}`}`);
}

function printStatus(st: LabStatus): void {
  out(`lab: ${st.ready ? 'up' : 'starting'} since ${st.startedAt} (daemon pid ${st.pid}), API server ${st.server}`);
  out(`kubeconfig: ${st.kubeconfig}`);
  out(`layout: ${st.nodes.length} nodes; ${describeLayout(st.layout, st.legacy)}`);
  const rows = [['NODE', 'ROLE', 'READY', 'ADDRESS', 'POD CIDR', 'BOOT ID', 'CNI CONFIG', 'PODS legacy/cilium/host']];
  for (const n of st.nodes) rows.push([n.name, n.role, n.ready ? 'True' : 'False', n.internalIp, n.podCIDR, n.bootID.slice(0, 8), n.cni, `${n.pods.legacy}/${n.pods.cilium}/${n.pods.host}`]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) out(r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd());
}

/** `--legacy`: one of the CNIs the lab can run before the migration. */
function legacyCni(text: string): LegacyCni {
  const found = legacyCnis.find((c) => c === text);
  if (!found) throw new ValueError(legacyCnis.join(' or '));
  return found;
}

export async function main(argv: string[]): Promise<number> {
  const stateOption = { type: 'string', default: process.env.CILIUM_MIGRATE_LAB_DIR ?? defaultStateDir, coerce: flagCoercion('state-dir', nonEmpty('a directory')), describe: 'State directory of the lab (CILIUM_MIGRATE_LAB_DIR)' } as const;
  // The same parsers as the plugin's (lib/flag-values): a bad value is one line and exit 2.
  const nodesOption = { type: 'string', default: '3', coerce: flagCoercion('nodes', integer(1, 50)), describe: 'Nodes: kind-control-plane, kind-worker, kind-worker2, ... (1-50)' } as const;
  const layoutDescriptions: Record<keyof LabLayout, string> = {
    legacyCidr: 'Flannel\'s pod network (its Network; every node\'s podCIDR is a /24 of it), IPv4',
    ciliumCidr: 'Cilium\'s cluster-pool pod CIDR (a /24 of it per CiliumNode), IPv4, not overlapping --legacy-cidr',
    legacyTunnelPort: 'Flannel\'s VXLAN UDP port (its Backend.Port)',
    ciliumTunnelPort: 'Cilium\'s VXLAN UDP port (the chart\'s tunnelPort), other than --legacy-tunnel-port',
    ciliumNamespace: 'The namespace of Cilium\'s Helm release: cilium-config, the agents, the CiliumNodeConfig, the migration lock',
  };
  const layoutOptions = Object.fromEntries((Object.keys(layoutFlags) as (keyof LabLayout)[]).map((k) => [layoutFlags[k], {
    type: 'string', default: String(defaultLayout[k]), coerce: flagCoercion<unknown>(layoutFlags[k], layoutParsers[k] as Parser<unknown>), describe: layoutDescriptions[k],
  }])) as Record<(typeof layoutFlags)[keyof LabLayout], { type: 'string'; default: string; coerce: (raw: unknown) => unknown; describe: string }>;
  const layoutOf = (a: Record<string, unknown>): LabLayout => Object.fromEntries((Object.keys(layoutFlags) as (keyof LabLayout)[]).map((k) => [k, a[layoutFlags[k]]])) as unknown as LabLayout;
  const legacyOption = { type: 'string', default: 'flannel', coerce: flagCoercion('legacy', legacyCni), describe: 'The CNI the cluster runs before the migration: flannel (kube-flannel.yml, as --legacy-cidr and --legacy-tunnel-port say) or calico (calico-vxlan.yaml of Calico\'s module, VXLAN 4789, pool 192.168.0.0/16 unless --legacy-cidr says otherwise, Kubernetes datastore; needs make calico-bins)' } as const;
  const nodeArg = { type: 'string', demandOption: true, coerce: positionalCoercion('node', nodeName) } as const;
  const portArg = { type: 'string', demandOption: true, coerce: positionalCoercion('port', port) } as const;
  let code = 0;
  const parser = yargs(argv)
    .scriptName('lab')
    .usage('$0 <command> [flags]\n\nThe local lab, a kind cluster without docker: a real control plane and real nodes (kubelet, containerd, runc in network, mount, UTS, IPC and PID namespaces of their own) on a private underlay, kube-proxy and Flannel, Cilium in migration mode from its chart through helm, images built locally. Needs root.')
    .wrap(Math.min(100, process.stdout.columns || 100))
    .option('state-dir', stateOption)
    .command('up', 'Bring the lab up and leave it running', (y) => y
      .option('nodes', nodesOption)
      .options(layoutOptions)
      .option('cilium', { type: 'boolean', default: true, describe: 'Install Cilium in migration mode (--no-cilium: the cluster as it was before Cilium came)' })
      .option('legacy', legacyOption), async (a) => {
      const st = await labUp({ stateDir: a['state-dir'], nodes: a.nodes, layout: layoutOf(a), cilium: a.cilium, legacy: a.legacy });
      out(`lab up: ${st.nodes.map((n) => n.name).join(', ')}`);
      out(`layout: ${describeLayout(st.layout, st.legacy)}`);
      out(`kubeconfig: ${st.kubeconfig}`);
      out(`  export KUBECONFIG=${st.kubeconfig}`);
      const lab = `node ${process.argv[1]}${a['state-dir'] === defaultStateDir ? '' : ` --state-dir ${a['state-dir']}`}`;
      out(`  status:          ${lab} status`);
      out(`  docker for the nodes (the plugin's --restart kind) and helm for Cilium's release (finalize --apply): export PATH=${join(a['state-dir'], 'bin')}:$PATH`);
      out(`  restart a node:  ${lab} restart-node kind-worker   (as docker restart; reboot-node for a new bootID)`);
      out('  tear it down:    make lab-down');
    })
    .command('down', 'Stop the lab and remove everything it made', (y) => y, async (a) => {
      const r = await labDown({ stateDir: a['state-dir'] });
      out(r.wasRunning ? 'lab down: no namespace, process or file of it is left' : `no lab was running (state directory ${a['state-dir']}); cleaned up anything left`);
    })
    .command('status', 'Show the lab\'s nodes, their CNI config and pods per overlay', (y) => y, async (a) => {
      printStatus(await labStatus(a['state-dir']));
    })
    .command('restart-node <node>', 'Restart a node as docker restart does: every process of it killed, its network namespace recreated, containerd and kubelet started again; bootID and pod UIDs stay', (y) => y.positional('node', nodeArg), async (a) => {
      const r = await labRestartNode(a['state-dir'], a.node);
      out(`restarted ${r.node}: bootID ${r.bootIDBefore?.slice(0, 8)} -> ${r.bootIDAfter?.slice(0, 8)}`);
    })
    .command('reboot-node <node>', 'Reboot a node: as restart-node, with a new bootID (what --restart reboot and exec do to a real node)', (y) => y.positional('node', nodeArg), async (a) => {
      const r = await labRestartNode(a['state-dir'], a.node, true);
      out(`rebooted ${r.node}: bootID ${r.bootIDBefore?.slice(0, 8)} -> ${r.bootIDAfter?.slice(0, 8)}`);
    })
    .command('drop-udp <node> <port>', 'Fault: drop incoming UDP to a port on a node (e.g. Cilium\'s VXLAN port, 8473 by default), as a broken overlay would', (y) => y.positional('node', nodeArg).positional('port', portArg), async (a) => {
      await labUdpPort(a['state-dir'], a.node, a.port, 'drop');
      out(`dropping UDP ${a.port} on ${a.node}`);
    })
    .command('restore-udp <node> <port>', 'Undo drop-udp', (y) => y.positional('node', nodeArg).positional('port', portArg), async (a) => {
      await labUdpPort(a['state-dir'], a.node, a.port, 'restore');
      out(`UDP ${a.port} on ${a.node} flows again`);
    })
    .command('demo', 'Bring a real-node lab up, migrate it to Cilium with the plugin as the seed does (--restart kind, finalize --apply through helm), print the matrix after every step, tear it down', (y) => y.option('nodes', nodesOption).options(layoutOptions), async (a) => {
      const layout = layoutOf(a);
      checkLayout(layout, a.nodes);
      code = await runDemo({ stateDir: a['state-dir'], nodes: a.nodes, layout, distDir: defaultDistDir(), labUp, labDown, out, err });
    })
    .command('daemon', false, (y) => y.option('nodes', nodesOption).options(layoutOptions).option('cilium', { type: 'boolean', default: true }).option('legacy', legacyOption), async (a) => {
      const layout = withLegacy(layoutOf(a), a.legacy);
      checkLayout(layout, a.nodes);
      requireRoot('up');
      const log = (line: string) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
      await runKindDaemon({ stateDir: a['state-dir'], nodes: a.nodes, layout, distDir: defaultDistDir(), log, cilium: a.cilium, legacy: a.legacy });
    })
    .demandCommand(1, 'name a command; see --help')
    .strict()
    .help()
    .version(false)
    .exitProcess(false)
    .fail((msg, e) => {
      // A value refused by its parser (lib/flag-values) comes wrapped by yargs: one line, exit 2.
      if (e && e.name === 'YError') throw new UsageError(e.message);
      throw e ?? new UsageError(`${msg} (see lab --help)`);
    });
  try {
    await parser.parseAsync();
    return code;
  } catch (e) {
    if (e instanceof UsageError) {
      err(`error: ${e.message}`);
      return 2;
    }
    if (e instanceof LabError) {
      err(`error: ${e.message}`);
      if (e.hint) err(`  ${e.hint}`);
      return 1;
    }
    err(`error: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
}

if (process.argv[1] !== undefined && /(lab\.js|lab[/\\]cli\.ts)$/.test(process.argv[1])) {
  void main(process.argv.slice(2)).then((code) => process.exit(code));
}

