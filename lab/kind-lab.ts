// The lab as a kind cluster without docker: a real control plane in a network namespace of its own
// on a private underlay (kind's docker network, 172.18.0.0/16), real nodes (lab/node/lab-node.ts:
// kubelet, containerd, runc) named, labelled, tainted and identified as kind's are, kube-proxy and
// Flannel from its manifest, Cilium in migration mode from its Helm chart through helm (as the README
// tells users), the images built locally and imported into every node, and a registry mirror
// serving the same images to pulls. The machine reaches the API server only through a
// forwarder on its loopback; no route leads from the machine into the lab or out of it.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { systemClock } from '../lib/clock.js';
import { pollUntil } from '../lib/poll.js';
import { writeAdminKubeconfig } from './admin-kubeconfig.js';
import { kindNodeLabels, kindNodes, type SimulatedNode } from './cluster-objects.js';
import { defaultLayout, describeLayout, withLegacy, type LabLayout } from './layout.js';
import { startControlPlane, type ControlPlane } from './control-plane.js';
import { calicoDaemonSet, calicoKubeControllers, calicoManifestObjects, calicoNamespace } from './calico.js';
import { buildImages, buildNodeRootfs, holdArchive } from './images/build.js';
import { calicoBase, calicoImages, calicoRelease } from './images/calico.js';
import { labBases, labImages, type DebianBase, type ImageSpec } from './images/catalog.js';
import { api, apiOrNotFound, labClient, type LabClient } from './lab-api.js';
import { ciliumVersion } from './images/cilium.js';
import { flannelManifestObjects, kubeProxyObjects } from './node/addons.js';
import { ciliumRelease, installCilium, writeHelmWrapper } from './node/cilium-install.js';
import { claimPrefix, labMarker, removeLab } from './node/lab-resources.js';
import { createUnderlay, LabNode, type Underlay } from './node/lab-node.js';
import { clientKubeconfig, kubeletConfig } from './node/node-config.js';
import { issueClientCert } from './pki.js';
import { startProcess, type ManagedProcess } from './process.js';
import type { RegistryIndex } from './registry.js';

/** The underlay (kind's docker network), its gateway, and the control plane's address on it. */
export const kindNetwork = { cidr: '172.18.0.0/16', gateway: '172.18.0.1', controlPlane: '172.18.0.254' } as const;
/** kind's cluster name, in the nodes' providerID (kind://docker/kind/NODE). */
export const kindClusterName = 'kind';

/** The CNIs the lab can run before the migration (`lab up --legacy`). */
export const legacyCnis = ['flannel', 'calico'] as const;
export type LegacyCni = (typeof legacyCnis)[number];

export interface KindLabOptions {
  stateDir: string;
  nodes: number;
  /** The repository's dist/ (the bundled programs: the gateway, the registry, the docker shim). */
  distDir: string;
  /** The control-plane and node binary directories (lab/bins/build.sh --dir GROUP). */
  binDir: string;
  nodeBinDir: string;
  /** Cilium's binaries (its images' files) and helm with Cilium's chart (lab/bins/build.sh --dir cilium, cilium-chart). */
  ciliumBinDir: string;
  chartDir: string;
  /** Pod CIDRs, tunnel ports and Cilium's namespace (default: the seed's). */
  layout?: LabLayout;
  serviceCidr?: string;
  /** The legacy CNI (default flannel); calico needs `calicoBinDir` (lab/bins/build.sh --dir calico). */
  legacy?: LegacyCni;
  calicoBinDir?: string;
  /** Install Cilium in migration mode (default true): the seed's cluster before the migration. */
  cilium?: boolean;
  /** nginx replicas to deploy as the seed does (0: none). */
  nginxReplicas?: number;
  /** Aborts a start under way (`lab down` while it comes up). */
  signal?: AbortSignal;
  /** The images every node gets (default: lab/images/catalog.ts's labImages on labBases); add to them, e.g. Cilium's. */
  images?: { bases: DebianBase[]; images: ImageSpec[] };
  log: (line: string) => void;
}

export interface KindNodeStatus {
  name: string;
  role: SimulatedNode['role'];
  internalIp: string;
  netns: string;
  running: boolean;
  startedAt: string;
  bootID: string;
}

/** Paths inside a real lab's state directory. */
export function kindPaths(stateDir: string) {
  return {
    marker: join(stateDir, labMarker),
    nodes: join(stateDir, 'nodes'),
    bin: join(stateDir, 'bin'),
    docker: join(stateDir, 'bin', 'docker'),
    helm: join(stateDir, 'bin', 'helm'),
    kubeconfig: join(stateDir, 'kubeconfig'),
    registryIndex: join(stateDir, 'registry-index.json'),
    logs: join(stateDir, 'logs'),
  };
}

export class KindLab {
  readonly nodes = new Map<string, LabNode>();
  private readonly extra: ManagedProcess[] = [];
  private busy = new Set<string>();

  private constructor(
    readonly o: KindLabOptions,
    readonly prefix: string,
    readonly cp: ControlPlane,
    readonly kube: LabClient,
  ) {}

  /** Brings the lab up; on failure removes whatever it made and throws. */
  static async up(o: KindLabOptions): Promise<KindLab> {
    const t0 = Date.now();
    const took = () => `${((Date.now() - t0) / 1000).toFixed(1)}s`;
    const paths = kindPaths(o.stateDir);
    const layout = withLegacy(o.layout ?? defaultLayout, o.legacy ?? 'flannel');
    const prefix = claimPrefix(o.stateDir);
    writeFileSync(paths.marker, JSON.stringify({ prefix, pid: process.pid }));
    for (const d of [paths.nodes, paths.bin, paths.logs]) mkdirSync(d, { recursive: true });
    let cp: ControlPlane | undefined;
    let lab: KindLab | undefined;
    try {
      const progress = (line: string) => o.log(line);
      const rootfs = await buildNodeRootfs({ nodeBinDir: o.nodeBinDir, distDir: o.distDir, progress });
      const repoRoot = join(o.distDir, '..');
      const calico = o.legacy === 'calico' ? { release: calicoRelease(repoRoot), dir: o.calicoBinDir ?? '' } : undefined;
      if (calico && !calico.dir) throw new Error('the calico lab needs the calico binaries (lab/bins/build.sh calico)');
      // Calico's images only where Calico runs: the other labs' archive stays as it was.
      const extra = o.images ?? (calico ? { bases: [...labBases, calicoBase], images: [...labImages(repoRoot), ...calicoImages(calico.release, calico.dir, o.nodeBinDir)] } : {});
      const images = await buildImages({ nodeBinDir: o.nodeBinDir, ciliumBinDir: o.ciliumBinDir, distDir: o.distDir, progress, ...extra });
      const index: RegistryIndex = {};
      for (const i of images.images) for (const n of i.names) index[n] = i.digest;
      writeFileSync(paths.registryIndex, JSON.stringify(index, null, 2));
      o.log(`images ready (${took()})`);

      const underlayNs = `${prefix}-ul`;
      const underlay = await createUnderlay(underlayNs, `${kindNetwork.gateway}/16`);
      // The control plane's namespace routes to the pod networks through kind-control-plane, whose
      // routing table the CNIs keep (the API server reaches pods for pods/proxy, kubelets directly).
      const cpNs = `${prefix}-cp`;
      await underlay.attach(cpNs, kindNetwork.controlPlane, 'cp');
      spawnSync('ip', ['-n', cpNs, 'route', 'replace', 'default', 'via', nodeIp(0)]);
      o.log(`starting the control plane in ${cpNs} at ${kindNetwork.controlPlane}`);
      cp = await startControlPlane({
        binDir: o.binDir, kwok: false, kubelets: true,
        netns: { name: cpNs, address: kindNetwork.controlPlane, gateway: [process.execPath, join(o.distDir, 'lab', 'egress-proxy.js')] },
        clusterCidr: layout.legacyCidr, ...(o.serviceCidr ? { serviceCidr: o.serviceCidr } : {}),
        progress: (l) => o.log(`  ${l}`),
      });
      // Through the forwarder: kind's names, so that tools written for kind find their context.
      writeAdminKubeconfig(cp, paths.kubeconfig, { cluster: 'kind-kind', user: 'kind-kind' });
      const kube = labClient(paths.kubeconfig);
      lab = new KindLab(o, prefix, cp, kube);
      lab.startRegistry(underlayNs, images.blobs, paths.registryIndex);
      writeDockerShim(paths.docker, o.distDir, o.stateDir);
      writeHelmWrapper(paths.helm, { chartDir: o.chartDir, stateDir: o.stateDir });
      o.log(`control plane up (${took()}); layout: ${describeLayout(layout, o.legacy)}`);

      const names = kindNodes(o.nodes - 1);
      const archive = holdArchive(images.archive, join(paths.nodes, basename(images.archive)));
      for (const [i, n] of names.entries()) await lab.createNode(n, i, underlay, rootfs, archive);
      // The control-plane node registers first, so it gets the first pod CIDR, as on kind.
      const [first, ...rest] = [...lab.nodes.values()];
      await first!.start();
      await lab.waitNodesRegistered([first!.name]);
      await Promise.all(rest.map((n) => n.start()));
      o.log(`${names.length} nodes started: ${names.map((n) => n.name).join(', ')} (${took()})`);
      await lab.waitNodesRegistered(names.map((n) => n.name));
      for (const n of names) {
        await api(kube, 'PATCH', `/api/v1/nodes/${n.name}`, { metadata: { labels: kindNodeLabels(n) } }, 'merge');
      }

      const clusterCidr = layout.legacyCidr;
      const legacyName = calico ? `Calico ${calico.release}` : 'Flannel';
      o.log(`installing kube-proxy (as kubeadm does) and ${calico ? `Calico ${calico.release} (its calico-vxlan.yaml, VXLAN ${layout.legacyTunnelPort}, pool ${clusterCidr})` : `Flannel (its kube-flannel.yml: VXLAN ${layout.legacyTunnelPort}, ${clusterCidr})`}`);
      await lab.apply(kubeProxyObjects({ apiServer: cp.internalServer!, clusterCidr }));
      if (calico) {
        await lab.apply(calicoManifestObjects(join(calico.dir, 'manifests', 'calico-vxlan.yaml'), { poolCidr: clusterCidr, apiServer: { host: kindNetwork.controlPlane, port: Number(new URL(cp.internalServer!).port) } }));
        await lab.waitDaemonSets([['kube-system', 'kube-proxy'], [calicoNamespace, calicoDaemonSet]]);
        await lab.waitDeployment(calicoNamespace, calicoKubeControllers);
      } else {
        await lab.apply(flannelManifestObjects(join(o.nodeBinDir, 'manifests', 'kube-flannel.yml'), { network: clusterCidr, vxlanPort: layout.legacyTunnelPort }));
        await lab.waitDaemonSets([['kube-system', 'kube-proxy'], ['kube-flannel', 'kube-flannel-ds']]);
      }
      await lab.waitNodesReady();
      o.log(`${names.length} nodes Ready with kube-proxy and ${legacyName} (${took()})`);
      if (o.cilium ?? true) {
        const version = ciliumVersion(join(o.distDir, '..'));
        o.log(`installing Cilium ${version} in migration mode with helm in namespace ${layout.ciliumNamespace} (VXLAN ${layout.ciliumTunnelPort}, ${layout.ciliumCidr})`);
        const [host, port] = [kindNetwork.controlPlane, Number(new URL(cp.internalServer!).port)];
        await installCilium({ chartDir: o.chartDir, repoRoot: join(o.distDir, '..'), kubeconfig: paths.kubeconfig, stateDir: o.stateDir, version, apiServer: { host, port }, layout }, o.log);
        await lab.waitDaemonSets([[layout.ciliumNamespace, ciliumRelease.daemonSet]], 600_000);
        // One operator leads; the chart's second replica needs a second node (required anti-affinity).
        await lab.waitDeployment(layout.ciliumNamespace, ciliumRelease.operator, 300_000, 1);
        await lab.waitCiliumNodes();
        o.log(`Cilium agents Ready on ${names.length} nodes, the operator has given each its pod CIDR (${took()})`);
      }
      if ((o.nginxReplicas ?? 0) > 0) {
        await cp.kubectl(['create', 'deployment', 'nginx', '--image', 'nginx', '--port', '80', '--replicas', String(o.nginxReplicas)]);
        await lab.waitDeployment('default', 'nginx');
        o.log(`nginx: ${o.nginxReplicas} replicas Ready (${took()})`);
      }
      return lab;
    } catch (err) {
      if (lab) await lab.down().catch(() => undefined);
      else {
        await cp?.stop().catch(() => undefined);
        await removeLab(prefix, o.stateDir, true).catch(() => undefined);
      }
      throw err;
    }
  }

  private async createNode(n: SimulatedNode, i: number, underlay: Underlay, rootfs: string, archive: string): Promise<void> {
    const dir = join(kindPaths(this.o.stateDir).nodes, n.name);
    const ip = nodeIp(i);
    const cert = await issueClientCert(this.cp.pki, `system:node:${n.name}`, ['system:nodes']);
    const node = new LabNode({
      name: n.name, role: n.role, ip, dir,
      netns: `${this.prefix}-n${i}`, port: `n${i}`, cgroup: `${this.prefix}/${n.name}`,
      rootfs, images: { archive, id: archive.replace(/^.*lab-images-|\.oci\.tar$/g, '') },
      underlay, log: this.o.log,
    });
    node.create({
      kubeletConfig: kubeletConfig({
        // As kind: a cluster of one node has no control-plane taint, or nothing could run on it.
        nodeName: n.name, nodeIp: ip, cgroupRoot: `${this.prefix}/${n.name}`, controlPlane: n.role === 'control-plane' && this.o.nodes > 1,
        clusterDns: serviceIp(this.o.serviceCidr ?? '10.96.0.0/16', 10), providerID: `kind://docker/${kindClusterName}/${n.name}`,
      }),
      kubeconfig: clientKubeconfig({ server: this.cp.internalServer!, caPem: readFileSync(this.cp.pki.caCert, 'utf8'), certPem: readFileSync(cert.cert, 'utf8'), keyPem: readFileSync(cert.key, 'utf8'), user: `system:node:${n.name}` }),
      caPem: readFileSync(this.cp.pki.caCert, 'utf8'),
    });
    this.nodes.set(n.name, node);
  }

  private startRegistry(underlayNs: string, blobs: string, index: string): void {
    this.extra.push(startProcess('registry', 'nsenter', [`--net=/run/netns/${underlayNs}`, '--', process.execPath, join(this.o.distDir, 'lab', 'registry.js'),
      '--listen', `${kindNetwork.gateway}:5000`, '--blobs', blobs, '--index', index], join(kindPaths(this.o.stateDir).logs, 'registry.log')));
  }

  node(name: string): LabNode {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`no lab node ${name} (nodes: ${[...this.nodes.keys()].join(', ')})`);
    return n;
  }

  /** One operation on a node at a time. */
  private async exclusive<T>(name: string, fn: (n: LabNode) => Promise<T>): Promise<T> {
    const n = this.node(name);
    if (this.busy.has(name)) throw new Error(`${name} is being restarted already`);
    this.busy.add(name);
    try {
      return await fn(n);
    } finally {
      this.busy.delete(name);
    }
  }

  /** `docker restart NODE`. */
  restartNode(name: string): Promise<KindNodeStatus> {
    return this.exclusive(name, async (n) => {
      await n.restart();
      return this.nodeStatus(n);
    });
  }

  /** A reboot: as restart, with a new bootID. */
  rebootNode(name: string): Promise<KindNodeStatus> {
    return this.exclusive(name, async (n) => {
      await n.reboot();
      return this.nodeStatus(n);
    });
  }

  nodeStatus(n: LabNode): KindNodeStatus {
    return { name: n.name, role: n.o.role, internalIp: n.o.ip, netns: n.o.netns, running: n.running(), startedAt: n.startedAt?.toISOString() ?? '', bootID: n.bootId() };
  }

  status(): KindNodeStatus[] {
    return [...this.nodes.values()].map((n) => this.nodeStatus(n));
  }

  /** Drops (or stops dropping) incoming UDP to `port` in a node's network namespace. */
  async udpPort(name: string, port: number, drop: boolean): Promise<void> {
    const n = this.node(name);
    const rule = ['INPUT', '-p', 'udp', '--dport', String(port), '-j', 'DROP'];
    const ipt = (op: string) => spawnSync('ip', ['netns', 'exec', n.o.netns, 'iptables', '-w', '5', op, ...rule], { encoding: 'utf8' });
    if (drop) {
      if (ipt('-C').status !== 0 && ipt('-A').status !== 0) throw new Error(`iptables -A failed in ${n.o.netns}`);
    } else {
      for (let i = 0; i < 16 && ipt('-C').status === 0; i++) ipt('-D');
    }
  }

  /** Stops everything and removes what the lab made; returns what is left (nothing, normally). */
  async down(): Promise<string[]> {
    await Promise.all([...this.nodes.values()].map((n) => n.stop().catch((err: Error) => this.o.log(`stopping ${n.name}: ${err.message}`))));
    await Promise.all(this.extra.map((p) => p.stop(2000)));
    await this.cp.stop().catch((err: Error) => this.o.log(`control plane: ${err.message}`));
    // The state directory itself (with the daemon's log) is `lab down`'s to remove.
    return removeLab(this.prefix, this.o.stateDir, true);
  }

  async apply(objects: Record<string, unknown>[]): Promise<void> {
    await this.cp.kubectl(['apply', '--server-side', '--field-manager=cilium-migrate-lab', '-f', '-'], { input: objects.map((x) => JSON.stringify(x)).join('\n') });
  }

  /** The lab's waiting loop (lib/poll.ts) with what it waits for shown as it changes; an error from `check` counts as not yet (the API server may be busy). */
  private async poll<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>, describe: () => Promise<string>): Promise<T> {
    let last = '';
    return pollUntil(async () => {
      const v = await check().catch(() => undefined);
      if (v !== undefined) return v;
      const now = await describe().catch(() => '');
      if (now !== last && now) this.o.log(`  waiting for ${what}: ${now}`);
      last = now;
      return undefined;
    }, {
      clock: systemClock,
      deadline: systemClock.now() + timeoutMs,
      intervalMs: 500,
      signal: this.o.signal,
      stopped: () => new Error(`stopped while waiting for ${what}`),
      timedOut: () => new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}${last ? ` (${last})` : ''}`),
    });
  }

  private async waitNodesRegistered(names: string[]): Promise<void> {
    const listed = async () => new Set((await api<{ items: { metadata: { name: string } }[] }>(this.kube, 'GET', '/api/v1/nodes')).items.map((n) => n.metadata.name));
    await this.poll('the nodes to register', 180_000, async () => {
      const have = await listed();
      return names.every((n) => have.has(n)) ? true : undefined;
    }, async () => {
      const have = await listed();
      return `${names.filter((n) => have.has(n)).length}/${names.length} registered`;
    });
  }

  async waitNodesReady(timeoutMs = 240_000): Promise<void> {
    const notReady = async () => (await api<{ items: { metadata: { name: string }; status?: { conditions?: { type: string; status: string }[] } }[] }>(this.kube, 'GET', '/api/v1/nodes')).items
      .filter((n) => !n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).map((n) => n.metadata.name);
    await this.poll('every node Ready', timeoutMs, async () => ((await notReady()).length === 0 ? true : undefined), async () => `not Ready: ${(await notReady()).join(', ')}`);
  }

  private async waitDaemonSets(sets: [string, string][], timeoutMs = 300_000): Promise<void> {
    const state = async () => Promise.all(sets.map(async ([ns, name]) => {
      const ds = await apiOrNotFound<{ status?: { numberReady?: number; desiredNumberScheduled?: number } }>(this.kube, 'GET', `/apis/apps/v1/namespaces/${ns}/daemonsets/${name}`);
      return { name: `${ns}/${name}`, ready: ds?.status?.numberReady ?? 0, want: ds?.status?.desiredNumberScheduled ?? 0 };
    }));
    await this.poll(`${sets.map(([, n]) => n).join(' and ')} on every node`, timeoutMs, async () => ((await state()).every((s) => s.want === this.nodes.size && s.ready === s.want) ? true : undefined),
      async () => (await state()).map((s) => `${s.name} ${s.ready}/${this.nodes.size}`).join(', '));
  }

  /**
   * Every node's CiliumNode has the pod CIDR the operator allocates (cluster-pool IPAM), and no node
   * carries the operator's agent-not-ready taint any more: it lingers a little after the agents
   * are Ready, and pods created meanwhile would all land on the nodes without it.
   */
  async waitCiliumNodes(timeoutMs = 180_000): Promise<void> {
    const state = async () => {
      const cidrs = new Map((await api<{ items: { metadata: { name: string }; spec?: { ipam?: { podCIDRs?: string[] } } }[] }>(this.kube, 'GET', '/apis/cilium.io/v2/ciliumnodes')).items
        .map((n) => [n.metadata.name, n.spec?.ipam?.podCIDRs ?? []]));
      const tainted = new Set((await api<{ items: { metadata: { name: string }; spec?: { taints?: { key: string }[] } }[] }>(this.kube, 'GET', '/api/v1/nodes')).items
        .filter((n) => n.spec?.taints?.some((t) => t.key === ciliumRelease.agentNotReadyTaint)).map((n) => n.metadata.name));
      return [...this.nodes.keys()].map((n) => ({ n, cidrs: cidrs.get(n) ?? [], tainted: tainted.has(n) }));
    };
    await this.poll('a Cilium pod CIDR for every node and no agent-not-ready taint', timeoutMs, async () => ((await state()).every((x) => x.cidrs.length > 0 && !x.tainted) ? true : undefined),
      async () => (await state()).map((x) => `${x.n} ${x.cidrs.join(',') || 'no CIDR'}${x.tainted ? ' (tainted)' : ''}`).join(', '));
  }

  /** Waits until every replica (or `atLeast` of them) is Ready. */
  async waitDeployment(ns: string, name: string, timeoutMs = 240_000, atLeast?: number): Promise<void> {
    const d = () => api<{ spec: { replicas: number }; status: { readyReplicas?: number } }>(this.kube, 'GET', `/apis/apps/v1/namespaces/${ns}/deployments/${name}`);
    await this.poll(`deployment ${ns}/${name}`, timeoutMs, async () => {
      const x = await d();
      return (x.status.readyReplicas ?? 0) >= Math.min(atLeast ?? x.spec.replicas, x.spec.replicas) ? true : undefined;
    }, async () => {
      const x = await d();
      return `${x.status.readyReplicas ?? 0}/${x.spec.replicas} Ready`;
    });
  }
}

/** kind's addresses: kind-control-plane 172.18.0.2, kind-worker .3, ... */
export function nodeIp(index: number): string {
  const n = index + 2;
  return `172.18.${Math.floor(n / 256)}.${n % 256}`;
}

function serviceIp(cidr: string, host: number): string {
  const parts = cidr.split('/')[0]!.split('.').map(Number);
  parts[3] = (parts[3] ?? 0) + host;
  return parts.join('.');
}


/** `docker` for the lab's nodes (restart, inspect), so the plugin's --restart kind runs unchanged: put its directory first on PATH. */
function writeDockerShim(file: string, distDir: string, stateDir: string): void {
  writeFileSync(file, `#!/bin/sh\n# docker for the cilium-migrate lab's nodes: restart and inspect (lab/docker-shim.ts)\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(join(distDir, 'lab', 'docker.js'))} --state-dir ${JSON.stringify(stateDir)} "$@"\n`);
  chmodSync(file, 0o755);
}

