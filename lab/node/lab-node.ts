// One lab node seen from the machine: like a kind node container, it is a network, mount, UTS, IPC
// and PID namespace running the node image (lab/images/catalog.ts labNodeImage) with a real
// kubelet and containerd (lab/node/node-init.sh), attached to the lab's underlay bridge.
//
// start() = `docker start`; stop() = `docker kill` (every process of the node, its cgroups and its
// network namespace go); restart() = `docker restart` (stop, start: same file system, same bootID,
// new network namespace); reboot() gives the node a new bootID as a real reboot does.
import { execFile, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { systemClock } from '../../lib/clock.js';
import { pollUntil } from '../../lib/poll.js';
import { startProcess, type ManagedProcess } from '../process.js';
import { cgroupPids, cgroupRoot, deleteNetns, hierarchies, removeCgroupTree } from './lab-resources.js';
import { sysctlShields } from './node-config.js';

const run = promisify(execFile);

export interface Underlay {
  /** Creates network namespace `netns` attached to the bridge as `ip`/16 (port name `port`), default route via the gateway. */
  attach(netns: string, ip: string, port: string): Promise<void>;
}

export interface LabNodeOptions {
  name: string;
  role: 'control-plane' | 'worker';
  /** Its address on the underlay. */
  ip: string;
  netns: string;
  /** Its bridge port's name in the underlay namespace (at most 15 characters). */
  port: string;
  /** The node's directory: its overlay upper layer, /var, /etc/kubernetes, the lab's files for it. */
  dir: string;
  /** Its cgroup, relative to each hierarchy's root (kubelet's cgroupRoot). */
  cgroup: string;
  /** The node image's root file system (read-only lower layer). */
  rootfs: string;
  /** The images archive it imports, and that archive's identity. */
  images: { archive: string; id: string };
  underlay: Underlay;
  log: (line: string) => void;
}

export interface NodeFiles {
  kubeletConfig: string;
  kubeconfig: string;
  caPem: string;
}

export class LabNode {
  private init: ManagedProcess | undefined;
  private pidNs: string | undefined;
  /** When the node last started (what `docker inspect` calls State.StartedAt). */
  startedAt: Date | undefined;

  constructor(readonly o: LabNodeOptions) {}

  get name(): string {
    return this.o.name;
  }

  private path(...p: string[]): string {
    return join(this.o.dir, ...p);
  }

  /** The node's boot ID (kubelet's status.nodeInfo.bootID). */
  bootId(): string {
    return readFileSync(this.path('lab', 'boot_id'), 'utf8').trim();
  }

  running(): boolean {
    return this.init?.running() ?? false;
  }

  /** Creates the node's directories and files; once per node (a restart keeps them, as a container keeps its file system). */
  create(files: NodeFiles): void {
    for (const d of ['root', 'upper', 'work', 'var', 'kubernetes/pki', 'kubernetes/manifests', 'lab', 'sysctl']) mkdirSync(this.path(d), { recursive: true });
    writeFileSync(this.path('kubernetes', 'kubelet-config.yaml'), files.kubeletConfig);
    writeFileSync(this.path('kubernetes', 'kubelet.conf'), files.kubeconfig, { mode: 0o600 });
    writeFileSync(this.path('kubernetes', 'pki', 'ca.crt'), files.caPem);
    writeFileSync(this.path('kubernetes', 'node-ip'), `${this.o.ip}\n`);
    writeFileSync(this.path('lab', 'boot_id'), `${randomUUID()}\n`);
    writeFileSync(this.path('lab', 'images.id'), `${this.o.images.id}\n`);
    // Each shield starts with the machine's value, so nothing inside the node sees a difference.
    for (const key of sysctlShields) {
      const proc = `/proc/sys/${key.replaceAll('.', '/')}`;
      if (existsSync(proc)) writeFileSync(this.path('sysctl', key), readFileSync(proc));
    }
  }

  /** Starts the node (netns, cgroups, init) and returns once containerd runs in it. */
  async start(): Promise<void> {
    if (this.running()) throw new Error(`${this.name} is running already`);
    await this.o.underlay.attach(this.o.netns, this.o.ip, this.o.port);
    // Inside our own namespace: forwarding for pods, and no reverse-path filter, as traffic
    // between the overlays is asymmetric in a migration.
    await run('ip', ['netns', 'exec', this.o.netns, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0']);
    this.makeCgroups();
    for (const f of ['started-at', 'runtime-ready']) writeFileSync(this.path('lab', f), '');
    const script = join(this.o.rootfs, 'usr', 'local', 'bin', 'lab-node-init');
    this.startedAt = new Date();
    this.init = startProcess(`node ${this.name}`, 'nsenter', [
      `--net=/run/netns/${this.o.netns}`, '--',
      'unshare', '--mount', '--uts', '--ipc', '--pid', '--fork', '--kill-child', '--propagation', 'private', '--',
      'bash', script, 'boot', this.o.dir, this.o.rootfs, this.name, this.o.images.archive,
    // A node starts with a clean environment, as a container does: this process's (TMPDIR, say)
    // names paths of the machine that do not exist inside the node.
    ], this.path('lab', 'init.log'), { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' });
    await pollUntil(async () => {
      if (readFileSync(this.path('lab', 'runtime-ready'), 'utf8').trim() === 'ready') return true;
      if (!this.running()) throw new Error(`${this.name} stopped while starting; the end of its init log:\n${tailOf(this.path('lab', 'init.log'), 12)}`);
      return undefined;
    }, {
      clock: systemClock, deadline: systemClock.now() + 180_000, intervalMs: 200,
      stopped: () => new Error(`${this.name}: stopped while starting`),
      timedOut: () => new Error(`${this.name}: containerd not up after 180s; see ${this.path('var', 'log', 'containerd.log')}`),
    });
    this.pidNs = this.nodePidNamespace();
  }

  /** `docker kill`: every process of the node dies, its cgroups and network namespace go. */
  async stop(): Promise<void> {
    const ns = this.pidNs ?? this.nodePidNamespace();
    await this.init?.stop(0);
    this.init = undefined;
    // PID 1 of the node died with unshare (--kill-child), and every process of its PID namespace
    // with it; wait until the kernel has reaped them all, then for anything in its cgroups.
    for (let i = 0; i < 100; i++) {
      const left = [...(ns ? pidsInPidNamespace(ns) : []), ...cgroupPids(this.o.cgroup)];
      if (left.length === 0) break;
      for (const pid of left) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    this.pidNs = undefined;
    // docker removes a container's cgroups with it; stale ones would cost the next kubelet time.
    for (let i = 0; i < 50 && removeCgroupTree(this.o.cgroup).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
    deleteNetns([this.o.netns]);
  }

  /** `docker restart`: stop, then start with the same file system and bootID. */
  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** A reboot: stop, a new bootID, start. */
  async reboot(): Promise<void> {
    await this.stop();
    writeFileSync(this.path('lab', 'boot_id'), `${randomUUID()}\n`);
    await this.start();
  }

  /** Runs argv inside the node (its namespaces, its root), as `docker exec`. */
  async exec(argv: string[], timeoutMs = 30_000): Promise<{ code: number; stdout: string; stderr: string }> {
    const pid = this.pid1();
    if (pid === undefined) throw new Error(`${this.name} is not running`);
    return new Promise((resolve) => {
      execFile('nsenter', ['-t', String(pid), '-m', '-u', '-i', '-n', '-p', '--', ...argv], { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
      });
    });
  }

  /** The host PID of the node's PID 1 (unshare's child). */
  pid1(): number | undefined {
    const parent = this.init?.pid;
    if (parent === undefined) return undefined;
    try {
      const children = readFileSync(`/proc/${parent}/task/${parent}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
      return children.length ? Number(children[0]) : undefined;
    } catch {
      return undefined;
    }
  }

  private nodePidNamespace(): string | undefined {
    const pid = this.pid1();
    if (pid === undefined) return undefined;
    try {
      return readlinkSync(`/proc/${pid}/ns/pid`);
    } catch {
      return undefined;
    }
  }

  private makeCgroups(): void {
    const parts = this.o.cgroup.split('/');
    for (const h of hierarchies()) {
      let path = join(cgroupRoot, h);
      for (const part of parts) {
        path = join(path, part);
        mkdirSync(path, { recursive: true });
        // A new cpuset cgroup has no CPUs or memory nodes until given its parent's.
        if (h === 'cpuset') {
          for (const f of ['cpuset.cpus', 'cpuset.mems']) {
            if (readFileSync(join(path, f), 'utf8').trim() === '') writeFileSync(join(path, f), readFileSync(join(path, '..', f)));
          }
        }
      }
    }
  }
}

function tailOf(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).map((l) => `    ${l}`).join('\n');
  } catch {
    return '    (no log)';
  }
}

/** Host PIDs of the processes in the PID namespace `ns` (a `pid:[inode]` link). */
function pidsInPidNamespace(ns: string): number[] {
  const pids: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readlinkSync(`/proc/${e}/ns/pid`) === ns) pids.push(Number(e));
    } catch {
      // gone
    }
  }
  return pids;
}

/** The lab's underlay: a bridge in a namespace of its own (kind's docker network), no uplink. */
export async function createUnderlay(netns: string, gatewayCidr: string): Promise<Underlay> {
  const ip = (...args: string[]) => run('ip', args);
  await ip('netns', 'add', netns);
  await ip('-n', netns, 'link', 'set', 'lo', 'up');
  await ip('-n', netns, 'link', 'add', 'br0', 'type', 'bridge');
  await ip('-n', netns, 'addr', 'add', gatewayCidr, 'dev', 'br0');
  await ip('-n', netns, 'link', 'set', 'br0', 'up');
  const gateway = gatewayCidr.split('/')[0]!;
  return {
    async attach(node, address, port) {
      // A deleted namespace is freed asynchronously: its old bridge port may linger a moment.
      spawnSync('ip', ['-n', netns, 'link', 'del', port], { stdio: 'ignore' });
      await ip('netns', 'add', node);
      await ip('-n', netns, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', node);
      await ip('-n', netns, 'link', 'set', port, 'master', 'br0', 'up');
      await ip('-n', node, 'link', 'set', 'lo', 'up');
      await ip('-n', node, 'addr', 'add', `${address}/16`, 'dev', 'eth0');
      await ip('-n', node, 'link', 'set', 'eth0', 'up');
      await ip('-n', node, 'route', 'add', 'default', 'via', gateway);
    },
  };
}
