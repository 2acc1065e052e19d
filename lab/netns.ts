// A real data plane for tests: Kubernetes "nodes" and "pods" as Linux network namespaces, joined by
// two VXLAN overlays side by side (Flannel's flannel.1 and Cilium's cilium_vxlan), as on a cluster
// half way through a migration. See docs REFERENCE.md section 5.
//
// Containment: nothing is ever added to the host's own namespace. Every link is created from inside
// a namespace of ours (`ip -n NS link add ... peer ... netns OTHER`), so not even a transient
// interface appears in the root namespace; the underlay bridge lives in a namespace of its own and no
// namespace has a route out, so no lab packet can reach the machine's uplink.
//
// Cleanup: namespaces are deleted by destroy(), by an exit hook (normal exit, SIGINT, SIGTERM,
// SIGHUP), and, after a SIGKILL, by the next createTopology(), which reaps the namespaces of owners
// that are gone. The owner is recorded with its start time so a recycled PID is not mistaken for it.
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { forgetDir, removeOnExit, startProcess, type ManagedProcess } from './process.js';
import { claimPrefix, disownNamespace, installExitHooks, namePrefix, ownerDir, ownNamespace, reapStaleTopologies, releasePrefix } from './netns-owners.js';
import { waitUntil } from './wait.js';

export { reapStaleTopologies };

export type OverlayName = 'legacy' | 'cilium';

export interface OverlaySpec {
  readonly dev: string;
  readonly vni: number;
  readonly udpPort: number;
  /** First two octets of the overlay's /16; node i owns <net>.i.0/24 and its VTEP is <net>.i.0. */
  readonly net: string;
  /** Distinguishes the overlays in the deterministic VTEP MACs. */
  readonly macTag: number;
}

/** The two overlays every node carries. */
export const netnsOverlays: Readonly<Record<OverlayName, OverlaySpec>> = {
  legacy: { dev: 'flannel.1', vni: 1, udpPort: 8472, net: '10.244', macTag: 1 },
  cilium: { dev: 'cilium_vxlan', vni: 2, udpPort: 8473, net: '10.245', macTag: 2 },
};

export interface NetnsNode {
  index: number;
  name: string;
  netns: string;
  underlayIp: string;
  legacyCidr: string;
  ciliumCidr: string;
}

export interface NetnsPod {
  name: string;
  netns: string;
  node: NetnsNode;
  overlay: OverlayName;
  ip: string;
}

export interface ExecResult {
  /** Exit code; 124 when the command ran out of time, 127 when it could not be started. */
  code: number;
  stdout: string;
  stderr: string;
}

export interface TopologyOptions {
  /** Names of the nodes (default node-0, node-1, ...). */
  nodeNames?: readonly string[];
}

export interface Topology {
  readonly prefix: string;
  /** The namespace holding the underlay bridge. */
  readonly underlayNetns: string;
  readonly nodes: readonly NetnsNode[];
  readonly pods: readonly NetnsPod[];
  /** Creates a pod namespace on node `nodeIndex`, addressed from that node's CIDR for `overlay`. */
  addPod(nodeIndex: number, overlay: OverlayName, name: string): Promise<NetnsPod>;
  /** Runs `argv` inside one of this topology's namespaces (ip netns exec); never throws on a non-zero exit. */
  exec(netns: string, argv: string[], opts?: { timeoutMs?: number }): Promise<ExecResult>;
  /** Starts a long-running `argv` inside one of this topology's namespaces; destroy() stops it. */
  spawn(netns: string, argv: string[], env?: NodeJS.ProcessEnv, logFile?: string): ManagedProcess;
  /** Drops incoming UDP to `port` on node `nodeIndex` (iptables INPUT), as a broken overlay would. */
  dropUdpPort(nodeIndex: number, port: number): Promise<void>;
  /** Undoes dropUdpPort. */
  restoreUdpPort(nodeIndex: number, port: number): Promise<void>;
  /** Sets the MTU of `dev` in node `nodeIndex`. */
  setMtu(nodeIndex: number, dev: string, mtu: number): Promise<void>;
  /** Stops the processes started in it and deletes every namespace it made; safe to call twice. */
  destroy(): Promise<void>;
}

export class NetnsError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

const maxNodes = 200;
const firstPodHost = 10;
const lastPodHost = 254;
const commandTimeoutMs = 15_000;
const linkUpTimeoutMs = 5_000;

/** Why network namespaces cannot be used here, or undefined when they can. */
export function netnsUnsupportedReason(): string | undefined {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  const probes: [string, string[]][] = [
    ['ip', ['netns', 'list']],
    ['bridge', ['-V']],
    ['iptables', ['--version']],
  ];
  for (const [file, args] of probes) {
    const r = spawnSync(file, args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 5_000 });
    if (r.error || r.status !== 0) {
      return `\`${file} ${args.join(' ')}\` does not work (${r.error?.message ?? r.stderr.toString().trim()}); install iproute2 and iptables`;
    }
  }
  return undefined;
}

/** True when this process may build topologies (root, with ip, bridge and iptables working). */
export function netnsSupported(): boolean {
  return netnsUnsupportedReason() === undefined;
}

/** Builds an underlay bridge and `nodeCount` nodes carrying both overlays, fully meshed. */
export async function createTopology(nodeCount: number, options: TopologyOptions = {}): Promise<Topology> {
  if (!Number.isInteger(nodeCount) || nodeCount < 1 || nodeCount > maxNodes) {
    throw new NetnsError(`a topology has 1 to ${maxNodes} nodes, not ${nodeCount}`);
  }
  const reason = netnsUnsupportedReason();
  if (reason !== undefined) throw new NetnsError(reason);
  reapStaleTopologies();
  installExitHooks();
  const prefix = claimPrefix();
  if (prefix === undefined) throw new NetnsError(`no free topology prefix; delete stale files in ${ownerDir} and namespaces named ${namePrefix}*`);
  const topology = new NetnsTopology(prefix);
  try {
    if (options.nodeNames !== undefined && options.nodeNames.length !== nodeCount) throw new NetnsError(`${options.nodeNames.length} node names for ${nodeCount} nodes`);
    await topology.build(nodeCount, options.nodeNames);
  } catch (err) {
    await topology.destroy().catch(() => {});
    throw err;
  }
  return topology;
}

class NetnsTopology implements Topology {
  readonly underlayNetns: string;
  readonly nodes: NetnsNode[] = [];
  readonly pods: NetnsPod[] = [];
  private readonly namespaces = new Set<string>();
  private readonly processes = new Set<ManagedProcess>();
  private readonly nextHost = new Map<string, number>();
  private podCount = 0;
  private logDir: string | undefined;
  private destroying: Promise<void> | undefined;

  constructor(readonly prefix: string) {
    this.underlayNetns = `${prefix}-ul`;
  }

  async build(nodeCount: number, names: readonly string[] | undefined): Promise<void> {
    const ul = this.underlayNetns;
    await this.addNetns(ul);
    await ip(ul, 'link', 'add', 'br0', 'type', 'bridge');
    await ip(ul, 'link', 'set', 'br0', 'up');

    for (let i = 0; i < nodeCount; i++) {
      const node: NetnsNode = {
        index: i,
        name: names?.[i] ?? `node-${i}`,
        netns: `${this.prefix}-n${i}`,
        underlayIp: underlayIp(i),
        legacyCidr: `${netnsOverlays.legacy.net}.${i}.0/24`,
        ciliumCidr: `${netnsOverlays.cilium.net}.${i}.0/24`,
      };
      const ns = node.netns;
      await this.addNetns(ns);
      // Before any link exists, so every link inherits rp_filter=0 from "default": overlay traffic
      // is asymmetric mid-migration (request over one overlay, reply over the other).
      await sysctl(ns, {
        'net.ipv4.ip_forward': '1',
        'net.ipv4.conf.all.rp_filter': '0',
        'net.ipv4.conf.default.rp_filter': '0',
      });
      const port = `n${i}`;
      await ip(ul, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
      await ip(ul, 'link', 'set', port, 'master', 'br0', 'up');
      await ip(ns, 'addr', 'add', `${node.underlayIp}/16`, 'dev', 'eth0');
      await ip(ns, 'link', 'set', 'eth0', 'up');
      for (const [name, o] of overlayEntries()) {
        const vxlan = ['id', String(o.vni), 'dstport', String(o.udpPort), 'dev', 'eth0', 'local', node.underlayIp, 'nolearning'];
        await ip(ns, 'link', 'add', o.dev, 'address', vtepMac(name, i), 'type', 'vxlan', ...vxlan);
        await ip(ns, 'addr', 'add', `${vtepIp(name, i)}/32`, 'dev', o.dev);
        await ip(ns, 'link', 'set', o.dev, 'up');
      }
      this.nodes.push(node);
    }

    for (const node of this.nodes) {
      for (const peer of this.nodes) {
        if (peer === node) continue;
        for (const [name, o] of overlayEntries()) {
          const vtep = vtepIp(name, peer.index);
          const mac = vtepMac(name, peer.index);
          await ip(node.netns, 'neigh', 'add', vtep, 'lladdr', mac, 'dev', o.dev, 'nud', 'permanent');
          await must('bridge', ['-n', node.netns, 'fdb', 'append', mac, 'dev', o.dev, 'dst', peer.underlayIp]);
          await ip(node.netns, 'route', 'add', name === 'legacy' ? peer.legacyCidr : peer.ciliumCidr, 'via', vtep, 'dev', o.dev, 'onlink');
        }
      }
    }

    for (const node of this.nodes) {
      await waitLinkUp(ul, `n${node.index}`);
      await waitLinkUp(node.netns, 'eth0');
      for (const [, o] of overlayEntries()) await waitLinkUp(node.netns, o.dev);
    }
  }

  async addPod(nodeIndex: number, overlay: OverlayName, name: string): Promise<NetnsPod> {
    this.assertLive();
    const node = this.node(nodeIndex);
    if (!(overlay in netnsOverlays)) throw new NetnsError(`unknown overlay ${String(overlay)}; use legacy or cilium`);
    const key = `${nodeIndex}/${overlay}`;
    const host = this.nextHost.get(key) ?? firstPodHost;
    if (host > lastPodHost) throw new NetnsError(`node ${nodeIndex} has no ${overlay} address left`);
    this.nextHost.set(key, host + 1);
    if (this.pods.some((p) => p.name === name)) throw new NetnsError(`a pod named ${name} exists already`);
    const k = this.podCount++;
    const pod: NetnsPod = { name, netns: `${this.prefix}-p${k}`, node, overlay, ip: `${netnsOverlays[overlay].net}.${nodeIndex}.${host}` };
    const hostSide = `vp${k}`;
    // Listed before it is built, so destroy finds a pod that failed half way.
    this.pods.push(pod);

    await this.addNetns(pod.netns);
    await ip(pod.netns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', hostSide, 'netns', node.netns);
    await ip(pod.netns, 'addr', 'add', `${pod.ip}/32`, 'dev', 'eth0');
    await ip(pod.netns, 'link', 'set', 'eth0', 'up');
    // The pod ARPs for every destination; the node answers by proxy ARP. proxy_delay defaults to
    // 0.8 s of random delay per answer, longer than a one-second ping timeout, hence 0 (as Calico).
    await sysctl(node.netns, {
      [`net.ipv4.conf.${hostSide}.proxy_arp`]: '1',
      [`net.ipv4.conf.${hostSide}.rp_filter`]: '0',
      [`net.ipv4.neigh.${hostSide}.proxy_delay`]: '0',
    });
    await ip(node.netns, 'link', 'set', hostSide, 'up');
    await waitLinkUp(pod.netns, 'eth0');
    await waitLinkUp(node.netns, hostSide);
    await ip(pod.netns, 'route', 'add', 'default', 'dev', 'eth0');
    await ip(node.netns, 'route', 'add', `${pod.ip}/32`, 'dev', hostSide);
    return pod;
  }

  async exec(netns: string, argv: string[], opts: { timeoutMs?: number } = {}): Promise<ExecResult> {
    this.assertOwn(netns);
    return run('ip', ['netns', 'exec', netns, ...argv], opts.timeoutMs ?? commandTimeoutMs);
  }

  spawn(netns: string, argv: string[], env?: NodeJS.ProcessEnv, logFile?: string): ManagedProcess {
    this.assertOwn(netns);
    const [program] = argv;
    if (program === undefined) throw new NetnsError('spawn needs a program to run');
    if (logFile === undefined) {
      if (this.logDir === undefined) {
        this.logDir = mkdtempSync(join(tmpdir(), `${this.prefix}-logs-`));
        removeOnExit(this.logDir);
      }
      logFile = join(this.logDir, `${netns}-${this.processes.size}.log`);
    }
    // ip netns exec execs the program, so the PID handed back is the program's own.
    const proc = startProcess(`${netns}:${program}`, 'ip', ['netns', 'exec', netns, ...argv], logFile, env);
    this.processes.add(proc);
    void proc.exited.then(() => this.processes.delete(proc));
    return proc;
  }

  async dropUdpPort(nodeIndex: number, port: number): Promise<void> {
    this.assertLive();
    const ns = this.node(nodeIndex).netns;
    if ((await iptables(ns, '-C', port)).code !== 0) await mustResult(iptables(ns, '-A', port), `iptables -A in ${ns}`);
  }

  async restoreUdpPort(nodeIndex: number, port: number): Promise<void> {
    this.assertLive();
    const ns = this.node(nodeIndex).netns;
    // Bounded: a rule added more than a few times over was not added by dropUdpPort.
    for (let i = 0; i < 16; i++) {
      if ((await iptables(ns, '-C', port)).code !== 0) return;
      await mustResult(iptables(ns, '-D', port), `iptables -D in ${ns}`);
    }
    throw new NetnsError(`could not remove the UDP ${port} drop rule in ${ns}`);
  }

  async setMtu(nodeIndex: number, dev: string, mtu: number): Promise<void> {
    this.assertLive();
    await ip(this.node(nodeIndex).netns, 'link', 'set', 'dev', dev, 'mtu', String(mtu));
  }

  destroy(): Promise<void> {
    this.destroying ??= this.teardown();
    return this.destroying;
  }

  private async teardown(): Promise<void> {
    await Promise.all([...this.processes].map((p) => p.stop(2_000)));
    this.processes.clear();
    const failures: string[] = [];
    // Pods first, the underlay last: deleting a namespace takes its veth ends (and their peers) along.
    for (const ns of [...this.namespaces].reverse()) {
      const r = await run('ip', ['netns', 'del', ns], commandTimeoutMs);
      if (r.code !== 0 && !/No such file/.test(r.stderr)) failures.push(`${ns}: ${r.stderr.trim()}`);
      else {
        this.namespaces.delete(ns);
        disownNamespace(ns);
      }
    }
    if (this.logDir !== undefined) {
      rmSync(this.logDir, { recursive: true, force: true });
      forgetDir(this.logDir);
    }
    if (failures.length > 0) {
      throw new NetnsError(`could not delete namespaces (the exit hook retries): ${failures.join('; ')}`);
    }
    releasePrefix(this.prefix);
  }

  private async addNetns(ns: string): Promise<void> {
    // Tracked before it exists, so an interruption between the two still deletes it.
    this.namespaces.add(ns);
    ownNamespace(ns);
    await must('ip', ['netns', 'add', ns]);
    await ip(ns, 'link', 'set', 'lo', 'up');
  }

  private node(index: number): NetnsNode {
    const node = this.nodes[index];
    if (node === undefined) throw new NetnsError(`no node ${index}; this topology has nodes 0 to ${this.nodes.length - 1}`);
    return node;
  }

  private assertLive(): void {
    if (this.destroying !== undefined) throw new NetnsError(`topology ${this.prefix} is destroyed`);
  }

  private assertOwn(netns: string): void {
    this.assertLive();
    if (!this.namespaces.has(netns)) throw new NetnsError(`${netns} is not a namespace of topology ${this.prefix}`);
  }
}

function overlayEntries(): [OverlayName, OverlaySpec][] {
  return Object.entries(netnsOverlays) as [OverlayName, OverlaySpec][];
}

/** The underlay address of node `i` (kind's docker network is 172.18.0.0/16 too). */
function underlayIp(i: number): string {
  return `172.18.0.${i + 2}`;
}

/** The VTEP address of node `i` on an overlay: the first address of its /24. */
function vtepIp(overlay: OverlayName, i: number): string {
  return `${netnsOverlays[overlay].net}.${i}.0`;
}

// Locally administered, and known before the device exists, so peers can be programmed up front.
/** The VTEP MAC of node `i` on an overlay. */
function vtepMac(overlay: OverlayName, i: number): string {
  const hex = (n: number) => n.toString(16).padStart(2, '0');
  return `02:00:${hex(netnsOverlays[overlay].macTag)}:00:${hex(i >> 8)}:${hex(i & 0xff)}`;
}

// ---- running commands ----

function run(file: string, args: string[], timeoutMs: number): Promise<ExecResult> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err === null) return resolve({ code: 0, stdout, stderr });
      if (typeof err.code === 'number') return resolve({ code: err.code, stdout, stderr });
      if (err.killed) return resolve({ code: 124, stdout, stderr: `${stderr}(killed after ${timeoutMs} ms)\n` });
      resolve({ code: 127, stdout, stderr: `${stderr}${err.message}\n` });
    });
  });
}

async function mustResult(result: Promise<ExecResult>, what: string): Promise<ExecResult> {
  const r = await result;
  if (r.code !== 0) throw new NetnsError(`${what} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  return r;
}

function must(file: string, args: string[]): Promise<ExecResult> {
  return mustResult(run(file, args, commandTimeoutMs), `${file} ${args.join(' ')}`);
}

function ip(netns: string, ...args: string[]): Promise<ExecResult> {
  return must('ip', ['-n', netns, ...args]);
}

async function sysctl(netns: string, values: Record<string, string>): Promise<void> {
  const args = Object.entries(values).map(([k, v]) => `${k}=${v}`);
  await must('ip', ['netns', 'exec', netns, 'sysctl', '-q', '-w', ...args]);
}

function iptables(netns: string, op: '-A' | '-C' | '-D', port: number): Promise<ExecResult> {
  return run('ip', ['netns', 'exec', netns, 'iptables', '-w', '5', op, 'INPUT', '-p', 'udp', '--dport', String(port), '-j', 'DROP'], commandTimeoutMs);
}

async function waitLinkUp(netns: string, dev: string): Promise<void> {
  let last = '';
  await waitUntil(`${dev} in ${netns} to come up`, async () => {
    const r = await run('ip', ['-n', netns, '-o', 'link', 'show', 'dev', dev], commandTimeoutMs);
    last = r.code === 0 ? r.stdout : r.stderr;
    const flags = /<([^>]*)>/.exec(last)?.[1]?.split(',') ?? [];
    return flags.includes('UP') && flags.includes('LOWER_UP') ? true : undefined;
  }, linkUpTimeoutMs, 20).catch(() => {
    throw new NetnsError(`${dev} in ${netns} did not come up within ${linkUpTimeoutMs} ms: ${last.trim()}`);
  });
}
