// The legacy CNI, recognised by what it is rather than by a name containing "flannel": Flannel is a
// DaemonSet running the flannel image with its net-conf.json; Calico is calico-node (kube-system or
// calico-system) or the Tigera operator's Installation, with its IP pools; AWS-CNI is
// kube-system/aws-node running the amazon-k8s-cni image. From the same facts: its pod CIDRs (when it
// has any of its own), its tunnels, Calico's node-address autodetection, and the objects its
// manifest created (cmd/migration/legacy-removal.ts says which finalize deletes). Deciding is pure;
// reading is at the end of the file.
import { call, optional, type k8s, type Kube } from '../../lib/kube.js';
import type { Tunnel } from '../../lib/tunnel.js';

export type LegacyKind = 'flannel' | 'calico' | 'aws-cni';

/** One object of the legacy CNI, named the way `kubectl delete` would. */
export interface LegacyObject {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string | undefined;
}

export interface CalicoAutodetection {
  /** As calico-node sees it: "first-found" (its default), "kubernetes-internal-ip", "interface=eth0", ... */
  method: string;
  /** Whether it can choose Cilium's cilium_host interface as the node's address. */
  risky: boolean;
  /** The exact command that makes it use the Kubernetes node's InternalIP. */
  fix: string;
}

export interface LegacyCni {
  kind: LegacyKind;
  /** The DaemonSet that runs it on every node ("namespace/name"); with the Tigera operator, the one it made. */
  daemonSet?: string | undefined;
  /** The Tigera operator's Installation, when Calico is installed by the operator. */
  installation?: string | undefined;
  /** Flannel: the ConfigMap holding net-conf.json. */
  config?: LegacyObject | undefined;
  /** Its pod CIDRs as far as known (Flannel's Network, Calico's IP pools); none for AWS-CNI (VPC subnets). */
  pools: string[];
  /** Where the pools come from, for messages ("net-conf.json", "IPPools", ...). */
  poolSource?: string | undefined;
  /** What it binds on the nodes; empty when not known (an unknown Flannel backend). */
  tunnels: Tunnel[];
  /**
   * Its rules live in nftables tables, not iptables chains: Flannel with EnableNFTables, Calico with
   * felix's NFTablesMode Enabled (or the operator's linuxDataplane Nftables).
   */
  nftables?: boolean | undefined;
  autodetection?: CalicoAutodetection | undefined;
}

/** Calico's crd.projectcalico.org/v1 IPPool, the fields that matter here. */
export interface CalicoIpPool {
  metadata?: { name?: string | undefined } | undefined;
  spec?: { cidr?: string; ipipMode?: string; vxlanMode?: string; disabled?: boolean } | undefined;
}

/** The Tigera operator's operator.tigera.io/v1 Installation, the fields that matter here. */
export interface TigeraInstallation {
  metadata?: { name?: string | undefined } | undefined;
  spec?: {
    calicoNetwork?: {
      ipPools?: { cidr?: string; encapsulation?: string; disabled?: boolean }[];
      nodeAddressAutodetectionV4?: Record<string, unknown> | null;
      /** Iptables (default), BPF, Nftables, VPP. */
      linuxDataplane?: string;
    };
  } | undefined;
}

/** What detection reads from the cluster. */
export interface LegacyFacts {
  daemonSets: k8s.V1DaemonSet[];
  /** ConfigMaps the candidate DaemonSets may use ("namespace/name" -> data); missing ones absent. */
  configMaps: Record<string, Record<string, string>>;
  /** Calico IPPools; undefined when the API is not served (or not readable). */
  ipPools?: CalicoIpPool[] | undefined;
  installations?: TigeraInstallation[] | undefined;
  /** FelixConfiguration `default` spec.vxlanPort, if set. */
  felixVxlanPort?: number | undefined;
  /** FelixConfiguration `default` spec.nftablesMode (Enabled, Disabled), if set. */
  felixNftablesMode?: string | undefined;
}

export const calicoNamespaces = ['kube-system', 'calico-system'];
const calicoVxlanDefaultPort = 4789;
/** Flannel's backends and their default UDP ports (flannel-io/flannel pkg/backend). */
const flannelBackendPorts: Record<string, number> = { vxlan: 8472, udp: 8285, wireguard: 51820 };

export const key = (ns: string | undefined, name: string | undefined) => `${ns ?? ''}/${name ?? ''}`;

/** The repository part of an image reference without registry host, tag or digest: "flannel-io/flannel". */
export function imageRepository(image: string | undefined): string {
  let ref = (image ?? '').split('@')[0]!;
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  if (colon > slash) ref = ref.slice(0, colon);
  const parts = ref.split('/');
  // A first part with a dot or port, or "localhost", is a registry host.
  if (parts.length > 1 && (/[.:]/.test(parts[0]!) || parts[0] === 'localhost')) parts.shift();
  return parts.join('/');
}

const containersOf = (ds: k8s.V1DaemonSet | k8s.V1Deployment) => ds.spec?.template.spec?.containers ?? [];
export const images = (ds: k8s.V1DaemonSet | k8s.V1Deployment) => containersOf(ds).map((c) => imageRepository(c.image));

/** flannel-io/flannel, flannel/flannel, coreos/flannel, rancher/mirrored-flannelcni-flannel; not flannel-cni-plugin. */
export const isFlannelImage = (repo: string) => /(^|\/)[\w.-]*flannel$/.test(repo);
/** calico/node, tigera/cnx-node, and mirrors of them. */
export const isCalicoNodeImage = (repo: string) => /(^|\/)(calico|tigera)\/(cnx-)?node$/.test(repo) || /(^|\/)calico-node$/.test(repo);
export const isCalicoKubeControllersImage = (repo: string) => /(^|\/)(calico|tigera)\/(cnx-)?kube-controllers$/.test(repo);
export const isAwsCniImage = (repo: string) => /(^|\/)amazon-k8s-cni$/.test(repo);

/** The ConfigMaps a DaemonSet mounts or reads variables from, in its namespace. */
export function configMapsUsedBy(ds: k8s.V1DaemonSet | k8s.V1Deployment): string[] {
  const pod = ds.spec?.template.spec;
  const names = new Set<string>();
  for (const v of pod?.volumes ?? []) if (v.configMap?.name) names.add(v.configMap.name);
  for (const c of [...(pod?.initContainers ?? []), ...(pod?.containers ?? [])]) {
    for (const e of c.env ?? []) if (e.valueFrom?.configMapKeyRef?.name) names.add(e.valueFrom.configMapKeyRef.name);
    for (const f of c.envFrom ?? []) if (f.configMapRef?.name) names.add(f.configMapRef.name);
  }
  return [...names];
}

/** The ConfigMaps detection wants to read for these DaemonSets (Flannel's net-conf.json). */
export function configMapsToRead(daemonSets: k8s.V1DaemonSet[]): { namespace: string; name: string }[] {
  const out = new Map<string, { namespace: string; name: string }>();
  for (const ds of daemonSets) {
    if (!images(ds).some(isFlannelImage)) continue;
    const ns = ds.metadata?.namespace ?? '';
    // Older manifests do not mount it under a name we could guess otherwise: kube-flannel-cfg is the manifest's.
    for (const name of [...configMapsUsedBy(ds), 'kube-flannel-cfg']) out.set(key(ns, name), { namespace: ns, name });
  }
  return [...out.values()];
}

/** A JSON field looked up as Go's encoding/json does (case-insensitively). */
function field(o: unknown, name: string): unknown {
  if (!o || typeof o !== 'object') return undefined;
  const k = Object.keys(o).find((x) => x.toLowerCase() === name.toLowerCase());
  return k === undefined ? undefined : (o as Record<string, unknown>)[k];
}

/** Flannel's tunnel from net-conf.json's Backend (flanneld's default backend is udp). */
export function flannelTunnels(backend: unknown): Tunnel[] {
  const type = String(field(backend, 'Type') ?? 'udp').toLowerCase();
  if (type === 'host-gw') return [{ protocol: 'none' }];
  if (type === 'ipip') return [{ protocol: 'ipip' }];
  const port = type === 'wireguard' ? Number(field(backend, 'ListenPort')) || flannelBackendPorts.wireguard : Number(field(backend, 'Port')) || flannelBackendPorts[type];
  if (type === 'vxlan' || type === 'udp' || type === 'wireguard') return [{ protocol: type, port }];
  return [];
}

function detectFlannel(ds: k8s.V1DaemonSet, facts: LegacyFacts): LegacyCni | undefined {
  if (!images(ds).some(isFlannelImage)) return undefined;
  const ns = ds.metadata?.namespace ?? '';
  // Its configuration is a ConfigMap it uses (or the manifest's kube-flannel-cfg) holding net-conf.json.
  const cmName = [...configMapsUsedBy(ds), 'kube-flannel-cfg'].find((n) => facts.configMaps[key(ns, n)]?.['net-conf.json'] !== undefined);
  if (!cmName) return undefined;
  const legacy: LegacyCni = { kind: 'flannel', daemonSet: key(ns, ds.metadata?.name), config: { apiVersion: 'v1', kind: 'ConfigMap', namespace: ns, name: cmName }, pools: [], tunnels: [] };
  try {
    const conf = JSON.parse(facts.configMaps[key(ns, cmName)]!['net-conf.json']!) as unknown;
    const network = field(conf, 'Network');
    const ipv6 = field(conf, 'IPv6Network');
    legacy.pools = [network, ipv6].filter((n): n is string => typeof n === 'string' && n.length > 0);
    legacy.poolSource = `net-conf.json in ${ns}/${cmName}`;
    legacy.tunnels = flannelTunnels(field(conf, 'Backend'));
    legacy.nftables = field(conf, 'EnableNFTables') === true;
  } catch {
    // An unreadable net-conf.json leaves its CIDR and tunnel unknown; it is Flannel's all the same.
  }
  return legacy;
}

const envOf = (ds: k8s.V1DaemonSet, container: (c: k8s.V1Container) => boolean) => {
  const c = containersOf(ds).find(container);
  return Object.fromEntries((c?.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]));
};

/** Whether a Go regular expression (Calico's interface filters) matches cilium_host; our regex engine is close enough for interface names. */
function matchesCiliumHost(patterns: string): boolean {
  return patterns.split(',').some((p) => {
    try {
      return new RegExp(p.trim()).test('cilium_host');
    } catch {
      return false;
    }
  });
}

/** calico-node's IP_AUTODETECTION_METHOD (autodetection_methods.go): which ones can end on cilium_host. */
export function autodetectionRisky(method: string): boolean {
  if (method === 'kubernetes-internal-ip') return false;
  if (method.startsWith('interface=')) return matchesCiliumHost(method.slice('interface='.length));
  if (method.startsWith('skip-interface=')) return !matchesCiliumHost(method.slice('skip-interface='.length));
  // first-found (the default: it skips docker, cali, flannel, ... but not cilium_*), can-reach=, cidr=.
  return true;
}

/** The operator's nodeAddressAutodetectionV4 as the IP_AUTODETECTION_METHOD it becomes. */
export function operatorAutodetectionMethod(spec: Record<string, unknown> | null | undefined): string {
  const s = spec ?? {};
  if (s.kubernetes === 'NodeInternalIP') return 'kubernetes-internal-ip';
  if (typeof s.interface === 'string') return `interface=${s.interface}`;
  if (typeof s.skipInterface === 'string') return `skip-interface=${s.skipInterface}`;
  if (typeof s.canReach === 'string') return `can-reach=${s.canReach}`;
  if (Array.isArray(s.cidrs)) return `cidr=${s.cidrs.join(',')}`;
  return 'first-found';
}

/** Calico's tunnels from its pools: VXLAN (on Felix's port) or IP-in-IP for each enabled pool that encapsulates. */
function poolTunnels(pools: { vxlan: boolean; ipip: boolean }[], vxlanPort: number): Tunnel[] {
  const tunnels: Tunnel[] = [];
  if (pools.some((p) => p.vxlan)) tunnels.push({ protocol: 'vxlan', port: vxlanPort });
  if (pools.some((p) => p.ipip)) tunnels.push({ protocol: 'ipip' });
  return tunnels.length ? tunnels : [{ protocol: 'none' }];
}

const encapsulates = (mode: string | undefined) => /^(always|crosssubnet|cross-subnet)$/i.test(mode ?? '');

function detectCalico(facts: LegacyFacts): LegacyCni | undefined {
  const installation = facts.installations?.find((i) => i.metadata?.name === 'default') ?? facts.installations?.[0];
  const ds = facts.daemonSets.find((d) => d.metadata?.name === 'calico-node' && calicoNamespaces.includes(d.metadata.namespace ?? '') && images(d).some(isCalicoNodeImage));
  if (!installation && !ds) return undefined;
  const env = ds ? envOf(ds, (c) => c.name === 'calico-node' || isCalicoNodeImage(imageRepository(c.image))) : {};
  const vxlanPort = Number(env.FELIX_VXLANPORT) || facts.felixVxlanPort || calicoVxlanDefaultPort;
  const legacy: LegacyCni = { kind: 'calico', daemonSet: ds ? key(ds.metadata?.namespace, ds.metadata?.name) : undefined, pools: [], tunnels: [] };
  if (installation) legacy.installation = installation.metadata?.name ?? 'default';
  // Felix's own variable wins over the FelixConfiguration, as in felix's config loading; the
  // operator sets the dataplane through its Installation.
  const nftablesMode = env.FELIX_NFTABLESMODE || facts.felixNftablesMode;
  if (/^enabled$/i.test(nftablesMode ?? '') || /^nftables$/i.test(installation?.spec?.calicoNetwork?.linuxDataplane ?? '')) legacy.nftables = true;

  // The IPPools are what Calico allocates from now; the Installation and the variables only say
  // what was asked for when it was installed.
  const ipPools = (facts.ipPools ?? []).filter((p) => p.spec?.cidr);
  const opPools = (installation?.spec?.calicoNetwork?.ipPools ?? []).filter((p) => p.cidr);
  if (ipPools.length) {
    legacy.pools = ipPools.map((p) => p.spec!.cidr!);
    legacy.poolSource = 'IPPools (crd.projectcalico.org/v1)';
    legacy.tunnels = poolTunnels(ipPools.filter((p) => !p.spec?.disabled).map((p) => ({ vxlan: encapsulates(p.spec?.vxlanMode), ipip: encapsulates(p.spec?.ipipMode) })), vxlanPort);
  } else if (opPools.length) {
    legacy.pools = opPools.map((p) => p.cidr!);
    legacy.poolSource = `Installation ${legacy.installation} spec.calicoNetwork.ipPools`;
    // The operator's default encapsulation is IPIP.
    legacy.tunnels = poolTunnels(opPools.filter((p) => !p.disabled).map((p) => ({ vxlan: /^VXLAN/.test(p.encapsulation ?? ''), ipip: /^IPIP/.test(p.encapsulation ?? 'IPIP') })), vxlanPort);
  } else if (ds) {
    legacy.pools = [env.CALICO_IPV4POOL_CIDR || '192.168.0.0/16'];
    legacy.poolSource = `${legacy.daemonSet} CALICO_IPV4POOL_CIDR`;
    legacy.tunnels = poolTunnels([{ vxlan: encapsulates(env.CALICO_IPV4POOL_VXLAN), ipip: encapsulates(env.CALICO_IPV4POOL_IPIP) }], vxlanPort);
  }

  if (installation) {
    const method = operatorAutodetectionMethod(installation.spec?.calicoNetwork?.nodeAddressAutodetectionV4);
    const current = installation.spec?.calicoNetwork?.nodeAddressAutodetectionV4 ?? {};
    // A merge patch: the methods exclude each other, so every other one set now is removed.
    const patch = { spec: { calicoNetwork: { nodeAddressAutodetectionV4: { ...Object.fromEntries(Object.keys(current).filter((k) => k !== 'kubernetes').map((k) => [k, null])), kubernetes: 'NodeInternalIP' } } } };
    legacy.autodetection = { method, risky: autodetectionRisky(method), fix: `kubectl patch installation ${legacy.installation} --type=merge -p '${JSON.stringify(patch)}'` };
  } else if (ds) {
    // IP set to an address (or "none") turns autodetection off.
    const ip = env.IP ?? 'autodetect';
    const method = env.IP_AUTODETECTION_METHOD || 'first-found';
    legacy.autodetection = {
      method,
      risky: ip === 'autodetect' && autodetectionRisky(method),
      fix: `kubectl -n ${ds.metadata?.namespace} set env daemonset/${ds.metadata?.name} -c calico-node IP_AUTODETECTION_METHOD=kubernetes-internal-ip`,
    };
  }
  return legacy;
}

function detectAwsCni(facts: LegacyFacts): LegacyCni | undefined {
  const ds = facts.daemonSets.find((d) => d.metadata?.name === 'aws-node' && d.metadata.namespace === 'kube-system' && images(d).some(isAwsCniImage));
  // Pods take VPC addresses from the node's ENIs: no range of its own, no tunnel.
  return ds ? { kind: 'aws-cni', daemonSet: key(ds.metadata?.namespace, ds.metadata?.name), pools: [], tunnels: [{ protocol: 'none' }] } : undefined;
}

/** The legacy CNI the facts show, if any: Flannel, then Calico, then AWS-CNI. */
export function detectLegacy(facts: LegacyFacts): LegacyCni | undefined {
  for (const ds of facts.daemonSets) {
    const flannel = detectFlannel(ds, facts);
    if (flannel) return flannel;
  }
  return detectCalico(facts) ?? detectAwsCni(facts);
}

// ---- reading ----

const customList = async <T>(kube: Kube, group: string, version: string, plural: string) =>
  ((await kube.custom.listClusterCustomObject({ group, version, plural })) as { items: T[] }).items;

/** Reads what detection needs (a few requests whatever the cluster size) and detects the legacy CNI. */
export async function readLegacyCni(kube: Kube, daemonSets: k8s.V1DaemonSet[]): Promise<LegacyCni | undefined> {
  const wanted = configMapsToRead(daemonSets);
  const [cms, ipPools, installations, felix] = await Promise.all([
    Promise.all(wanted.map((w) => call(kube, `get configmap ${w.namespace}/${w.name}`, () => optional(() => kube.core.readNamespacedConfigMap(w))))),
    call(kube, 'list ippools.crd.projectcalico.org', () => optional(() => customList<CalicoIpPool>(kube, 'crd.projectcalico.org', 'v1', 'ippools'))),
    call(kube, 'list installations.operator.tigera.io', () => optional(() => customList<TigeraInstallation>(kube, 'operator.tigera.io', 'v1', 'installations'))),
    call(kube, 'get felixconfiguration default', () => optional(() => kube.custom.getClusterCustomObject({ group: 'crd.projectcalico.org', version: 'v1', plural: 'felixconfigurations', name: 'default' }) as Promise<{ spec?: { vxlanPort?: number; nftablesMode?: string } }>)),
  ]);
  const configMaps: LegacyFacts['configMaps'] = {};
  wanted.forEach((w, i) => {
    const data = cms[i]?.data;
    if (cms[i]) configMaps[key(w.namespace, w.name)] = data ?? {};
  });
  return detectLegacy({ daemonSets, configMaps, ipPools, installations, felixVxlanPort: felix?.spec?.vxlanPort, felixNftablesMode: felix?.spec?.nftablesMode });
}

/** Namespaces finalize never deletes, whatever it finds in them. */
export const systemNamespaces = new Set(['kube-system', 'kube-public', 'kube-node-lease', 'default', 'calico-system', 'tigera-operator']);
