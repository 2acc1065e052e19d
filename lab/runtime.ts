// The lab runtime: what kubelet, the container runtime and the CNI plugin do on a real node, for the
// lab's nodes. It watches the pods bound to lab nodes and realises each one: a network namespace
// with a veth to its node and an address from the CNI config the node has at that moment (the
// first file by name in the node's CNI directory, as kubelet picks it: Flannel's 10-flannel.conflist
// gives a 10.244 address from the node's podCIDR, Cilium's 05-cilium.conflist a 10.245 address from
// its CiliumNode), then runs the pod's containers as processes in it (images map to local programs,
// see programFor) and reports status as kubelet does. Deleting a pod stops its processes within the
// grace period, removes the sandbox and then the object. A node restart stops every pod on the node
// and recreates the sandboxes through the CNI config active then.
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { reflect, type KubeObject, type Reflector } from '../lib/kube-watch.js';
import { api, ApiError, type LabClient } from './lab-api.js';
import type { LabNodes } from './lab-nodes.js';
import type { Topology } from './netns.js';
import type { OverlayName } from './overlay-net.js';
import type { ManagedProcess } from './process.js';
import { activeCni, expandVars, nodeHostPaths, programFor, readOnlyExcept, type Container, type LabPrograms } from './runtime-rules.js';

export interface RuntimeNode {
  name: string;
  index: number;
  netns: string;
  internalIp: string;
  /** What /host/ is for pods on this node; its etc/cni/net.d is the node's CNI directory. */
  hostRoot: string;
  /** The node's prober (lab/programs/kubelet-api.ts): kubelet probes pods from the node's namespace. */
  probeSocket?: string;
}

export interface RuntimeOptions {
  kube: LabClient;
  topology: Topology;
  labNodes: LabNodes;
  nodes: RuntimeNode[];
  /** Pod directories (logs, kubeconfigs, ready files) go under it. */
  stateDir: string;
  /** CA of the API server, for the pods' kubeconfigs. */
  caFile: string;
  /** Where pods reach the API server inside the lab (the kubernetes Service address). */
  apiHost: string;
  apiPort: number;
  programs: LabPrograms;
  log: (line: string) => void;
}

interface PodObject extends KubeObject {
  metadata: { name: string; namespace: string; uid: string; resourceVersion?: string; deletionTimestamp?: string; deletionGracePeriodSeconds?: number; labels?: Record<string, string> };
  spec: {
    nodeName?: string;
    hostNetwork?: boolean;
    containers: Container[];
    restartPolicy?: string;
    serviceAccountName?: string;
    automountServiceAccountToken?: boolean;
    terminationGracePeriodSeconds?: number;
  };
  status?: { phase?: string };
}

interface RunningContainer {
  spec: Container;
  proc?: ManagedProcess;
  startedAt: string;
  restarts: number;
  readyFile: string;
  waitsForReadyFile: boolean;
  terminated?: { exitCode: number; finishedAt: string };
}

interface Sandbox {
  uid: string;
  namespace: string;
  name: string;
  node: RuntimeNode;
  ip: string;
  overlay: OverlayName | 'host';
  cidr?: string;
  /** The topology's pod name (pod sandboxes only). */
  topoName?: string;
  dir: string;
  startTime: string;
  containers: Map<string, RunningContainer>;
  ready: boolean;
  /** Network and every container started; before that the sandbox is never Ready. */
  started: boolean;
  /** Its address went back to the pool. */
  released?: boolean;
  /** Readiness probes: the last verdict and when to probe next. */
  probeOk?: boolean;
  nextProbeAt?: number;
  stopping: boolean;
  finished: boolean;
  pod: PodObject;
}

const readyPollMs = 300;
/** Readiness probes every second whatever periodSeconds says: the lab's steps are seconds apart. */
const probePeriodMs = 1000;
const resyncTicks = 20;
const restartBackoffMs = 1000;
const maxConcurrentSyncs = 4;
const firstPodHost = 10;
const lastPodHost = 254;

/** A /24 allocator per pod CIDR that hands out addresses round robin, so a freed address is reused last. */
class PodIpam {
  private readonly used = new Map<string, Set<string>>();
  private readonly next = new Map<string, number>();

  allocate(cidr: string): string {
    const m = /^(\d+\.\d+\.\d+)\.0\/24$/.exec(cidr);
    if (m === null) throw new Error(`pod CIDR ${cidr} is not a /24`);
    const used = this.used.get(cidr) ?? new Set<string>();
    this.used.set(cidr, used);
    const size = lastPodHost - firstPodHost + 1;
    const start = this.next.get(cidr) ?? 0;
    for (let k = 0; k < size; k++) {
      const host = firstPodHost + ((start + k) % size);
      const ip = `${m[1]}.${host}`;
      if (used.has(ip)) continue;
      used.add(ip);
      this.next.set(cidr, (start + k + 1) % size);
      return ip;
    }
    throw new Error(`no free address left in ${cidr}`);
  }

  release(cidr: string, ip: string): void {
    this.used.get(cidr)?.delete(ip);
  }
}

export class LabRuntime {
  private pods = new Map<string, KubeObject>();
  private nodeObjects = new Map<string, KubeObject>();
  private ciliumNodes = new Map<string, KubeObject>();
  private readonly sandboxes = new Map<string, Sandbox>();
  /** Pods this runtime finished with (completed, or deleted): never realised again. */
  private readonly done = new Set<string>();
  private readonly restarting = new Set<string>();
  private readonly restartCounts = new Map<string, Map<string, number>>();
  private readonly work = new Map<string, { again: boolean }>();
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  private readonly ipam = new PodIpam();
  private reflectors: Reflector[] = [];
  private readyTimer: NodeJS.Timeout | undefined;
  private running = 0;
  private ticks = 0;
  private checking = false;
  private readonly waiting: (() => void)[] = [];
  private stopped = false;

  constructor(private readonly o: RuntimeOptions) {}

  /** Starts watching pods, nodes and CiliumNodes; resolves once all three are listed. */
  async start(): Promise<void> {
    const onError = (line: string) => this.o.log(`runtime: ${line}`);
    this.reflectors = [
      reflect(this.o.kube.lite, '/api/v1/nodes', { onChange: (items) => ((this.nodeObjects = items), this.reconcile()), onError }),
      reflect(this.o.kube.lite, '/apis/cilium.io/v2/ciliumnodes', { onChange: (items) => ((this.ciliumNodes = items), this.reconcile()), onError }),
      // A watch that stalls silently would stall the node; a bounded watch is resumed every 30 s.
      reflect(this.o.kube.lite, '/api/v1/pods', { query: { timeoutSeconds: '30' }, onChange: (items) => ((this.pods = items), this.reconcile()), onError }),
    ];
    while (!this.reflectors.every((r) => r.synced())) await new Promise((r) => setTimeout(r, 50));
    this.readyTimer = setInterval(() => {
      void this.checkReadiness();
      // Level-triggered: now and then every pod is looked at again, as kubelet's periodic sync does.
      if (++this.ticks % resyncTicks === 0) this.reconcile();
    }, readyPollMs);
    this.reconcile();
  }

  /** Stops every pod process and sandbox (the topology's destroy removes what is left). */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const r of this.reflectors) r.stop();
    if (this.readyTimer) clearInterval(this.readyTimer);
    for (const t of this.retryTimers) clearTimeout(t);
    await Promise.all([...this.sandboxes.values()].map((sb) => this.stopSandbox(sb, 2).catch(() => undefined)));
  }

  /** What runs where, for `lab status`. */
  summary(): { node: string; cni: string; pods: { legacy: number; cilium: number; host: number } }[] {
    return this.o.nodes.map((n) => {
      const cni = activeCni(join(n.hostRoot, 'etc', 'cni', 'net.d'));
      const pods = { legacy: 0, cilium: 0, host: 0 };
      for (const sb of this.sandboxes.values()) if (sb.node === n && !sb.finished) pods[sb.overlay] += 1;
      return { node: n.name, cni: 'file' in cni ? cni.file : cni.error, pods };
    });
  }

  /**
   * Restarts a node like `docker restart`: NotReady, every pod process stopped and its sandbox
   * removed, a new bootID, Ready again, and every pod bound to the node recreated through the CNI
   * config active now. Resolves once the node is Ready again.
   */
  async restartNode(name: string): Promise<{ pods: number }> {
    const node = this.o.nodes.find((n) => n.name === name);
    if (!node) throw new Error(`${name} is not a lab node (${this.o.nodes.map((n) => n.name).join(', ')})`);
    if (this.restarting.has(name)) throw new Error(`${name} is restarting already`);
    this.restarting.add(name);
    let count = 0;
    try {
      this.o.log(`restart ${name}: stopping the runtime`);
      await this.o.labNodes.goDown(name);
      const onNode = [...this.sandboxes.values()].filter((sb) => sb.node === node);
      count = onNode.length;
      await Promise.all(onNode.map(async (sb) => {
        const counts = new Map([...sb.containers].map(([c, rc]) => [c, rc.restarts + 1]));
        this.restartCounts.set(sb.uid, counts);
        await this.stopSandbox(sb, 0);
        await this.patchStatus(sb.pod, { conditions: podConditions(false), containerStatuses: sb.pod.spec.containers.map((c) => ({ name: c.name, image: c.image, imageID: c.image, ready: false, started: false, restartCount: counts.get(c.name) ?? 0, state: { waiting: { reason: 'ContainerCreating' } } })) }).catch(() => undefined);
      }));
      await new Promise((r) => setTimeout(r, 1000));
      await this.o.labNodes.comeUp(name);
      this.o.log(`restart ${name}: up again with a new bootID; recreating ${count} pods`);
    } finally {
      this.restarting.delete(name);
      this.reconcile();
    }
    return { pods: count };
  }

  private reconcile(): void {
    if (this.stopped) return;
    const seen = new Set<string>();
    for (const obj of this.pods.values()) {
      const pod = obj as PodObject;
      if (!this.nodeByName(pod.spec?.nodeName)) continue;
      seen.add(pod.metadata.uid);
      this.queue(pod.metadata.uid);
    }
    for (const uid of this.sandboxes.keys()) if (!seen.has(uid)) this.queue(uid);
  }

  private queue(uid: string): void {
    const pending = this.work.get(uid);
    if (pending) {
      pending.again = true;
      return;
    }
    const entry = { again: true };
    this.work.set(uid, entry);
    void (async () => {
      while (entry.again && !this.stopped) {
        entry.again = false;
        await this.slot();
        try {
          await this.sync(uid);
        } catch (err) {
          this.o.log(`runtime: pod ${uid.slice(0, 8)}: ${(err as Error).message}`);
          this.retryLater(uid);
        } finally {
          this.release();
        }
      }
      this.work.delete(uid);
    })();
  }

  private retryLater(uid: string, ms = 2000): void {
    const t = setTimeout(() => {
      this.retryTimers.delete(t);
      this.queue(uid);
    }, ms);
    this.retryTimers.add(t);
  }

  private async slot(): Promise<void> {
    if (this.running < maxConcurrentSyncs) {
      this.running++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running--;
  }

  private podByUid(uid: string): PodObject | undefined {
    for (const obj of this.pods.values()) if ((obj as PodObject).metadata.uid === uid) return obj as PodObject;
    return undefined;
  }

  private nodeByName(name: string | undefined): RuntimeNode | undefined {
    return name === undefined ? undefined : this.o.nodes.find((n) => n.name === name);
  }

  private async sync(uid: string): Promise<void> {
    const pod = this.podByUid(uid);
    const sb = this.sandboxes.get(uid);
    if (!pod) {
      // Deleted outright (force delete, or a namespace going away).
      if (sb) await this.stopSandbox(sb, 0);
      this.done.add(uid);
      return;
    }
    if (sb) sb.pod = pod;
    const node = this.nodeByName(pod.spec.nodeName)!;
    if (this.restarting.has(node.name)) return;
    if (pod.metadata.deletionTimestamp) {
      if (sb) await this.stopSandbox(sb, pod.metadata.deletionGracePeriodSeconds ?? pod.spec.terminationGracePeriodSeconds ?? 30);
      this.done.add(uid);
      await this.deletePodObject(pod);
      return;
    }
    if (sb || this.done.has(uid) || pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') return;
    await this.createSandbox(pod, node);
  }

  private async createSandbox(pod: PodObject, node: RuntimeNode): Promise<void> {
    const { namespace, name, uid } = pod.metadata;
    const hostNetwork = pod.spec.hostNetwork === true;
    let overlay: OverlayName | 'host' = 'host';
    let cidr: string | undefined;
    let ip = node.internalIp;
    if (!hostNetwork) {
      const cni = activeCni(join(node.hostRoot, 'etc', 'cni', 'net.d'));
      if ('error' in cni) {
        await this.patchStatus(pod, { phase: 'Pending', conditions: [...podConditions(false), { type: 'PodReadyToStartContainers', status: 'False', reason: 'NetworkNotReady', message: cni.error }] }).catch(() => undefined);
        throw new Error(`${namespace}/${name} on ${node.name}: ${cni.error}`);
      }
      overlay = cni.overlay;
      cidr = overlay === 'legacy' ? (this.nodeObjects.get(`/${node.name}`) as { spec?: { podCIDR?: string } } | undefined)?.spec?.podCIDR : (this.ciliumNodes.get(`/${node.name}`) as { spec?: { ipam?: { podCIDRs?: string[] } } } | undefined)?.spec?.ipam?.podCIDRs?.[0];
      if (!cidr) throw new Error(`${namespace}/${name} on ${node.name}: ${overlay === 'legacy' ? 'the node has no podCIDR' : 'its CiliumNode has no spec.ipam.podCIDRs'} yet`);
      ip = this.ipam.allocate(cidr);
    }
    const dir = join(this.o.stateDir, 'pods', `${namespace}_${name}_${uid.slice(0, 8)}`);
    mkdirSync(dir, { recursive: true });
    const sb: Sandbox = {
      uid, namespace, name, node, ip, overlay, dir, pod,
      ...(cidr ? { cidr } : {}),
      startTime: new Date().toISOString(),
      containers: new Map(),
      ready: false,
      started: false,
      stopping: false,
      finished: false,
    };
    this.sandboxes.set(uid, sb);
    try {
      if (!hostNetwork) {
        sb.topoName = `${uid}-${Date.now().toString(36)}`;
        await this.o.topology.attachPod(node.index, overlay as OverlayName, ip, sb.topoName);
      }
      const kubeconfig = pod.spec.automountServiceAccountToken === false ? undefined : await this.writeKubeconfig(pod, dir);
      // A node restart (or the runtime stopping) may have come in meanwhile: start nothing then.
      if (sb.stopping) throw new Error(`${namespace}/${name}: stopped while its sandbox was being made`);
      const counts = this.restartCounts.get(uid);
      for (const c of pod.spec.containers) this.startContainer(sb, c, kubeconfig, counts?.get(c.name) ?? 0);
      sb.started = true;
      await this.reportRunning(sb);
      this.o.log(`pod ${namespace}/${name} on ${node.name}: ${overlay === 'host' ? 'host network' : `${ip} (${overlay}, ${cidr})`}, ${pod.spec.containers.map((c) => programFor(c, this.o.programs).role).join(', ')}`);
    } catch (err) {
      await this.stopSandbox(sb, 0).catch(() => undefined);
      throw err;
    }
  }

  private netnsOf(sb: Sandbox): string {
    if (sb.topoName === undefined) return sb.node.netns;
    const p = this.o.topology.pods.find((x) => x.name === sb.topoName);
    if (!p) throw new Error(`the sandbox of ${sb.namespace}/${sb.name} is gone`);
    return p.netns;
  }

  private envFor(sb: Sandbox, c: Container, kubeconfig: string | undefined, readyFile: string): Record<string, string> {
    const pod = sb.pod;
    const field = (path: string): string => {
      const label = /^metadata\.labels\['(.+)'\]$/.exec(path);
      if (label) return pod.metadata.labels?.[label[1]!] ?? '';
      switch (path) {
        case 'metadata.name': return pod.metadata.name;
        case 'metadata.namespace': return pod.metadata.namespace;
        case 'metadata.uid': return pod.metadata.uid;
        case 'spec.nodeName': return sb.node.name;
        case 'spec.serviceAccountName': return pod.spec.serviceAccountName ?? 'default';
        case 'status.podIP': return sb.ip;
        case 'status.hostIP': return sb.node.internalIp;
        default: return '';
      }
    };
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin',
      HOME: '/root',
      HOSTNAME: pod.metadata.name,
      KUBERNETES_SERVICE_HOST: this.o.apiHost,
      KUBERNETES_SERVICE_PORT: String(this.o.apiPort),
      // For the lab's own programs (nginx names who served a request; the Cilium emulation needs its node).
      POD_NAME: pod.metadata.name,
      POD_NAMESPACE: pod.metadata.namespace,
      POD_IP: sb.ip,
      NODE_NAME: sb.node.name,
      LAB_HOST_ROOT: sb.node.hostRoot,
      CILIUM_NAMESPACE: pod.metadata.namespace,
      LAB_READY_FILE: readyFile,
      ...(kubeconfig ? { KUBECONFIG: kubeconfig } : {}),
    };
    for (const e of c.env ?? []) {
      env[e.name] = e.value !== undefined ? expandVars(e.value, env) : e.valueFrom?.fieldRef ? field(e.valueFrom.fieldRef.fieldPath) : '';
    }
    return env;
  }

  private startContainer(sb: Sandbox, c: Container, kubeconfig: string | undefined, restarts: number): void {
    const readyFile = join(sb.dir, `${c.name}.ready`);
    rmSync(readyFile, { force: true });
    rmSync(join(sb.dir, `${c.name}.exit`), { force: true });
    const program = programFor(c, this.o.programs);
    const env = this.envFor(sb, c, kubeconfig, readyFile);
    let argv = program.argv.map((a) => expandVars(a, env));
    if (program.role === 'node reboot') {
      // The pod completes, then the node restarts as `lab restart-node` does (a new bootID).
      argv = ['true'];
      setTimeout(() => void this.restartNode(sb.node.name).catch((err: Error) => this.o.log(`reboot of ${sb.node.name}: ${err.message}`)), 500);
    } else if (program.role === 'host command') {
      argv = readOnlyExcept(sb.node.hostRoot, argv.map((a) => nodeHostPaths(a, sb.node.hostRoot)));
    } else if (program.role === 'command') {
      argv = readOnlyExcept(sb.dir, argv);
    }
    const rc: RunningContainer = { spec: c, startedAt: new Date().toISOString(), restarts, readyFile, waitsForReadyFile: program.readyFile };
    sb.containers.set(c.name, rc);
    // A host command acts on the node itself: its network namespace, whatever the pod's own is.
    const netns = program.role === 'host command' ? sb.node.netns : this.netnsOf(sb);
    const proc = this.o.topology.spawn(netns, argv, env, join(sb.dir, `${c.name}.log`));
    rc.proc = proc;
    void proc.exited.then((code) => this.onContainerExit(sb, rc, proc, typeof code === 'number' ? code : 137));
  }

  private async onContainerExit(sb: Sandbox, rc: RunningContainer, proc: ManagedProcess, exitCode: number): Promise<void> {
    if (rc.proc === proc) writeFileSync(join(sb.dir, `${rc.spec.name}.exit`), `${exitCode}\n`);
    if (sb.stopping || rc.proc !== proc || this.stopped) return;
    const policy = sb.pod.spec.restartPolicy ?? 'Always';
    if (policy === 'Always' || (policy === 'OnFailure' && exitCode !== 0)) {
      this.o.log(`pod ${sb.namespace}/${sb.name}: container ${rc.spec.name} exited with ${exitCode}; restarting it`);
      sb.ready = false;
      await this.reportRunning(sb).catch(() => undefined);
      await new Promise((r) => setTimeout(r, restartBackoffMs));
      if (sb.stopping || this.stopped) return;
      this.startContainer(sb, rc.spec, sb.pod.spec.automountServiceAccountToken === false ? undefined : join(sb.dir, 'kubeconfig'), rc.restarts + 1);
      return;
    }
    rc.terminated = { exitCode, finishedAt: new Date().toISOString() };
    if ([...sb.containers.values()].some((c) => !c.terminated)) return;
    const failed = [...sb.containers.values()].some((c) => c.terminated!.exitCode !== 0);
    sb.finished = true;
    this.done.add(sb.uid);
    await this.patchStatus(sb.pod, {
      phase: failed ? 'Failed' : 'Succeeded',
      conditions: podConditions(false, 'PodCompleted'),
      containerStatuses: this.containerStatuses(sb),
    }).catch((err: Error) => this.o.log(`pod ${sb.namespace}/${sb.name}: status: ${err.message}`));
    this.o.log(`pod ${sb.namespace}/${sb.name}: ${failed ? 'Failed' : 'Succeeded'}`);
    await this.stopSandbox(sb, 0);
  }

  private containerStatuses(sb: Sandbox): Record<string, unknown>[] {
    return [...sb.containers.values()].map((rc) => ({
      name: rc.spec.name,
      image: rc.spec.image,
      imageID: rc.spec.image,
      containerID: `lab://${sb.uid}/${rc.spec.name}`,
      ready: sb.ready && !rc.terminated,
      started: !rc.terminated,
      restartCount: rc.restarts,
      state: rc.terminated
        ? { terminated: { exitCode: rc.terminated.exitCode, reason: rc.terminated.exitCode === 0 ? 'Completed' : 'Error', startedAt: rc.startedAt, finishedAt: rc.terminated.finishedAt } }
        : { running: { startedAt: rc.startedAt } },
    }));
  }

  private async reportRunning(sb: Sandbox): Promise<void> {
    await this.patchStatus(sb.pod, {
      phase: 'Running',
      hostIP: sb.node.internalIp,
      hostIPs: [{ ip: sb.node.internalIp }],
      podIP: sb.ip,
      podIPs: [{ ip: sb.ip }],
      startTime: sb.startTime,
      conditions: podConditions(sb.ready),
      containerStatuses: this.containerStatuses(sb),
    });
  }

  private async checkReadiness(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      await Promise.all([...this.sandboxes.values()].map((sb) => this.checkSandbox(sb)));
    } finally {
      this.checking = false;
    }
  }

  /** Ready when every container runs (and the lab's programs have said so), and its readiness probes pass. */
  private async checkSandbox(sb: Sandbox): Promise<void> {
    if (!sb.started || sb.stopping || sb.finished) return;
    const running = [...sb.containers.values()].every((rc) => rc.proc?.running() && (!rc.waitsForReadyFile || existsSync(rc.readyFile)));
    const probes = sb.pod.spec.containers.filter((c) => c.readinessProbe?.httpGet || c.readinessProbe?.tcpSocket);
    if (running && probes.length > 0 && Date.now() >= (sb.nextProbeAt ?? 0)) {
      sb.nextProbeAt = Date.now() + probePeriodMs;
      sb.probeOk = (await Promise.all(probes.map((c) => this.probe(sb, c)))).every(Boolean);
    }
    const ready = running && (probes.length === 0 || sb.probeOk === true);
    if (ready === sb.ready || sb.stopping) return;
    sb.ready = ready;
    await this.reportRunning(sb).catch((err: Error) => {
      sb.ready = !ready;
      this.o.log(`pod ${sb.namespace}/${sb.name}: status: ${err.message}`);
    });
  }

  /** One readiness probe, sent from the pod's node as kubelet sends it. */
  private probe(sb: Sandbox, c: Container): Promise<boolean> {
    const p = c.readinessProbe!;
    const named = (port: number | string) => (typeof port === 'number' ? port : c.ports?.find((x) => x.name === port)?.containerPort ?? Number(port));
    const q = new URLSearchParams({
      host: sb.ip,
      timeoutMs: String((p.timeoutSeconds ?? 1) * 1000),
      ...(p.httpGet ? { type: 'http', port: String(named(p.httpGet.port)), path: p.httpGet.path ?? '/' } : { type: 'tcp', port: String(named(p.tcpSocket!.port)) }),
    });
    const socketPath = sb.node.probeSocket;
    if (socketPath === undefined) return Promise.resolve(true);
    return new Promise((resolve) => {
      const req = httpRequest({ socketPath, path: `/probe?${q}`, timeout: 5000 }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d)).on('end', () => {
          try {
            resolve((JSON.parse(text) as { ok: boolean }).ok);
          } catch {
            resolve(false);
          }
        });
      });
      req.on('error', () => resolve(false)).on('timeout', () => req.destroy());
      req.end();
    });
  }

  private async stopSandbox(sb: Sandbox, graceSeconds: number): Promise<void> {
    sb.stopping = true;
    await Promise.all([...sb.containers.values()].map((rc) => rc.proc?.stop(Math.min(graceSeconds, 30) * 1000 || 100)));
    if (sb.topoName !== undefined) await this.o.topology.removePod(sb.topoName);
    // Once: a second stop must not free an address another pod may hold by now.
    if (sb.cidr !== undefined && !sb.released) this.ipam.release(sb.cidr, sb.ip);
    sb.released = true;
    if (this.sandboxes.get(sb.uid) === sb) this.sandboxes.delete(sb.uid);
  }

  private async deletePodObject(pod: PodObject): Promise<void> {
    try {
      await api(this.o.kube, 'DELETE', `/api/v1/namespaces/${pod.metadata.namespace}/pods/${pod.metadata.name}`, { gracePeriodSeconds: 0, preconditions: { uid: pod.metadata.uid } });
    } catch (err) {
      if (err instanceof ApiError && (err.status === 404 || err.status === 409)) return;
      throw err;
    }
  }

  private async patchStatus(pod: PodObject, status: Record<string, unknown>): Promise<void> {
    try {
      await api(this.o.kube, 'PATCH', `/api/v1/namespaces/${pod.metadata.namespace}/pods/${pod.metadata.name}/status`, { metadata: { uid: pod.metadata.uid }, status }, 'merge');
    } catch (err) {
      // The pod is gone, or the name belongs to a newer pod: nothing to report.
      if (err instanceof ApiError && (err.status === 404 || err.status === 409)) return;
      throw err;
    }
  }

  /** A kubeconfig with a token bound to the pod, pointing at the API server's address inside the lab. */
  private async writeKubeconfig(pod: PodObject, dir: string): Promise<string | undefined> {
    const sa = pod.spec.serviceAccountName ?? 'default';
    let token: string | undefined;
    for (let attempt = 0; attempt < 20 && token === undefined; attempt++) {
      try {
        const res = await api<{ status?: { token?: string } }>(this.o.kube, 'POST', `/api/v1/namespaces/${pod.metadata.namespace}/serviceaccounts/${sa}/token`, {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenRequest',
          spec: { expirationSeconds: 86_400, boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: pod.metadata.name, uid: pod.metadata.uid } },
        });
        token = res.status?.token;
      } catch (err) {
        // The service account controller may not have made the account yet.
        if (!(err instanceof ApiError && err.status === 404) || attempt === 19) {
          this.o.log(`pod ${pod.metadata.namespace}/${pod.metadata.name}: no service account token (${(err as Error).message})`);
          return undefined;
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    if (token === undefined) return undefined;
    const file = join(dir, 'kubeconfig');
    writeFileSync(file, stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'lab', cluster: { server: `https://${this.o.apiHost}:${this.o.apiPort}`, 'certificate-authority': this.o.caFile } }],
      users: [{ name: 'pod', user: { token } }],
      contexts: [{ name: 'lab', context: { cluster: 'lab', user: 'pod', namespace: pod.metadata.namespace } }],
      'current-context': 'lab',
    }), { mode: 0o600 });
    return file;
  }
}

function podConditions(ready: boolean, reason?: string): Record<string, unknown>[] {
  const now = new Date().toISOString();
  const r = ready ? 'True' : 'False';
  return [
    { type: 'PodReadyToStartContainers', status: 'True', lastTransitionTime: now },
    { type: 'Initialized', status: 'True', lastTransitionTime: now },
    { type: 'ContainersReady', status: r, lastTransitionTime: now, ...(reason ? { reason } : {}) },
    { type: 'Ready', status: r, lastTransitionTime: now, ...(reason ? { reason } : {}) },
    { type: 'PodScheduled', status: 'True', lastTransitionTime: now },
  ];
}
