// One read of everything `status` and `plan` need (nodes, pods, CiliumNodes, DaemonSets, PDBs),
// a handful of LISTs whatever the cluster size, and the pure functions that turn it into a status
// table and a migration plan. The big collections (pods, nodes, CiliumNodes) are read in pages of
// `listPageSize`, as kubectl does, as plain JSON (client-node's typed parsing of 30,000 pods costs
// seconds), and of each object only what the views use is kept, so memory follows the kept fields,
// not the objects' size (BENCHMARKS.md, "status and plan at 1,000 nodes x 30 pods").
import { Agent as HttpsAgent } from 'node:https';
import { agentNamespace, ciliumClusterCidr, ciliumNamespace, maxResponseBytes } from '../../lib/defaults.js';
import { call, k8s, rawRequest, translateKubeError, type Kube, type RawResponse } from '../../lib/kube.js';
import { classifyAddress, legacyNote, type Overlay, type OverlayNetworks } from '../../lib/overlay.js';
import { selectorMatches, type LabelSelector } from '../../lib/selector.js';
import { classifyDrainPods, type DrainFlags } from '../cluster/drain-filter.js';
import { toDrainPod, toNodeView } from '../cluster/kube-cluster.js';
import type { NodeView } from '../cluster/cluster.js';
import { expectedOverlay, nodePhase, phaseAnnotation, type Phase } from '../../lib/node-state.js';
import { ciliumClusterCidrs, readCiliumConfig } from './cilium-config.js';
import { readLegacyCni, type LegacyCni } from './legacy-cni.js';

export interface ViewPod {
  namespace: string;
  name: string;
  node: string;
  ip: string;
  hostNetwork: boolean;
  labels: Record<string, string>;
  raw: k8s.V1Pod;
}

export interface ClusterSnapshot {
  nodes: NodeView[];
  pods: ViewPod[];
  /** Per node, its CiliumNode's pod CIDRs. */
  ciliumCidrs: Record<string, string[]>;
  daemonSets: Set<string>;
  pdbs: { namespace: string; name: string; selector: LabelSelector | undefined; disruptionsAllowed: number }[];
  /** Probe agent pods by node. */
  agents: Record<string, { pod: string; ready: boolean }>;
  /** The legacy CNI's pod CIDRs when known (detail only: see lib/overlay.ts). */
  legacyCidrs: string[];
  /** Cilium's configured cluster-pool CIDRs (cilium-config), for nodes without a CiliumNode CIDR. */
  ciliumClusterCidrs: string[];
  /** The nodes' own addresses. */
  nodeAddresses?: string[];
  /** The legacy CNI, when one was recognised. */
  legacy?: LegacyCni | undefined;
}

/** Objects per LIST page (kubectl's --chunk-size default). */
export const listPageSize = 500;

/** One page of a LIST: `onHead` is shown the start of the answer while the rest still arrives. */
export type PageFetch = (token: string | undefined, onHead: (head: string) => void) => Promise<RawResponse>;

/**
 * The continue token in the head of a list's answer, when the head names it: the API server writes
 * a built-in kind's list as kind, apiVersion, metadata, items (a custom resource's list has its
 * metadata after the items, so there the token comes with the whole answer).
 */
export function continueInHead(head: string): string | undefined {
  return /^\{"kind":"[^"]*","apiVersion":"[^"]*","metadata":\{[^{}]*?"continue":"([^"\\]+)"/.exec(head)?.[1];
}

/**
 * Every item of a collection, page by page (limit/continue), each passed through `keep` as its page
 * arrives so only the kept fields stay in memory. As soon as a page's head names the next page's
 * token, the next page is asked for, so that the API server encodes it while this process parses
 * the one before (one page ahead at most). `missing` answers a 404 (a CRD not installed).
 */
export async function pagedItems<T>(fetchPage: PageFetch, keep: (item: Record<string, unknown>) => T, fail: (res: RawResponse) => Error, missing?: T[]): Promise<T[]> {
  interface Page { res: Promise<RawResponse>; headToken?: string; next?: { token: string; page: Page } }
  let current: Page | undefined;
  const ahead = (page: Page) => {
    if (page === current && page.headToken && !page.next) page.next = { token: page.headToken, page: start(page.headToken) };
  };
  const start = (token: string | undefined): Page => {
    const page: Page = { res: undefined as unknown as Promise<RawResponse> };
    page.res = fetchPage(token, (head) => {
      const next = continueInHead(head);
      if (next) page.headToken = next;
      ahead(page);
    });
    // A page asked for ahead may never be awaited (the one before failed): its failure is not news.
    page.res.catch(() => undefined);
    return page;
  };
  const out: T[] = [];
  current = start(undefined);
  for (;;) {
    const page: Page = current;
    const res = await page.res;
    if (res.status === 404 && missing) return missing;
    if (res.status !== 200) throw fail(res);
    const body = res.body as { items?: Record<string, unknown>[]; metadata?: { continue?: string } };
    for (const item of body.items ?? []) out.push(keep(item));
    const token = body.metadata?.continue || undefined;
    if (!token) return out;
    current = page.next?.token === token ? page.next.page : start(token);
    ahead(current);
  }
}

/** Every item of the collection at `path`, in pages of `pageSize` over `agent`'s kept-alive connections (pagedItems). */
export async function listPaged<T>(kube: Kube, what: string, path: string, keep: (item: Record<string, unknown>) => T, agent: HttpsAgent, missing?: T[], pageSize = listPageSize): Promise<T[]> {
  const url = (token: string | undefined) => `${path}${path.includes('?') ? '&' : '?'}limit=${pageSize}${token ? `&continue=${encodeURIComponent(token)}` : ''}`;
  return pagedItems(
    (token, onHead) => rawRequest(kube, 'GET', url(token), undefined, 60_000, 'application/json', agent, maxResponseBytes, onHead),
    keep,
    (res) => translateKubeError(new k8s.ApiException(res.status, (res.body as { message?: string } | undefined)?.message ?? `HTTP ${res.status}`, res.body, res.headers as Record<string, string>), what, kube.server),
    missing,
  );
}

/** What status, plan and finalize read of a pod (JSON field names, as toDrainPod and toPodView take them). */
function keepPod(p: Record<string, unknown>): k8s.V1Pod {
  const pod = p as k8s.V1Pod;
  const m = pod.metadata ?? {};
  const mirror = m.annotations?.['kubernetes.io/config.mirror'];
  return {
    metadata: {
      name: m.name, namespace: m.namespace, uid: m.uid, labels: m.labels,
      ...(mirror !== undefined ? { annotations: { 'kubernetes.io/config.mirror': mirror } } : {}),
      ...(m.ownerReferences ? { ownerReferences: m.ownerReferences.map((o) => ({ apiVersion: o.apiVersion, kind: o.kind, name: o.name, uid: o.uid, controller: o.controller })) } : {}),
      ...(m.deletionTimestamp ? { deletionTimestamp: m.deletionTimestamp } : {}),
    },
    spec: {
      nodeName: pod.spec?.nodeName, hostNetwork: pod.spec?.hostNetwork,
      // Only whether a volume is an emptyDir matters (drain-filter); the rest of the spec is dropped.
      containers: [],
      volumes: pod.spec?.volumes?.filter((v) => v.emptyDir !== undefined && v.emptyDir !== null).map((v) => ({ name: v.name, emptyDir: {} })),
    },
    status: { phase: pod.status?.phase, podIP: pod.status?.podIP, conditions: pod.status?.conditions?.filter((c) => c.type === 'Ready').map((c) => ({ type: c.type, status: c.status })) },
  };
}

/** What the views read of a node (toNodeView's fields and the addresses). */
function keepNode(n: Record<string, unknown>): k8s.V1Node {
  const node = n as k8s.V1Node;
  const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
  return {
    metadata: { name: node.metadata?.name, uid: node.metadata?.uid, labels: node.metadata?.labels, annotations: node.metadata?.annotations },
    spec: { unschedulable: node.spec?.unschedulable, providerID: node.spec?.providerID, podCIDR: node.spec?.podCIDR, podCIDRs: node.spec?.podCIDRs, taints: node.spec?.taints?.map((t) => ({ key: t.key, effect: t.effect })) },
    status: {
      conditions: ready ? [{ type: ready.type, status: ready.status, lastTransitionTime: ready.lastTransitionTime }] : [],
      addresses: node.status?.addresses,
      ...(node.status?.nodeInfo ? { nodeInfo: { bootID: node.status.nodeInfo.bootID } as k8s.V1NodeSystemInfo } : {}),
    },
  };
}

/** Reads the cluster in O(1) requests per page. Cilium's CIDRs come from cilium-config in `ciliumNamespace`, else `ciliumCidrs`. */
export async function readCluster(kube: Kube, opts: { agentNamespace?: string; ciliumNamespace?: string; ciliumCidrs?: string[] } = {}): Promise<ClusterSnapshot> {
  // One keep-alive connection for the pages of all three paged collections.
  const agent = new HttpsAgent({ keepAlive: true, maxSockets: 3 });
  const [nodes, pods, cns, dss, pdbs, ciliumConfig] = await Promise.all([
    listPaged(kube, 'list nodes', '/api/v1/nodes', keepNode, agent).then((items) => ({ items })),
    listPaged(kube, 'list pods', '/api/v1/pods', keepPod, agent).then((items) => ({ items })),
    listPaged(kube, 'list ciliumnodes', '/apis/cilium.io/v2/ciliumnodes', (c) => {
      const cn = c as { metadata?: { name?: string }; spec?: { ipam?: { podCIDRs?: string[] } } };
      return { metadata: { name: cn.metadata?.name ?? '' }, spec: { ipam: { podCIDRs: cn.spec?.ipam?.podCIDRs ?? [] } } };
    }, agent, []).then((items) => ({ items })),
    call(kube, 'list daemonsets', () => kube.apps.listDaemonSetForAllNamespaces()),
    call(kube, 'list poddisruptionbudgets', () => kube.policy.listPodDisruptionBudgetForAllNamespaces()),
    readCiliumConfig(kube, opts.ciliumNamespace ?? ciliumNamespace),
  ]).finally(() => agent.destroy());
  const legacy = await readLegacyCni(kube, dss.items);
  const ns = opts.agentNamespace ?? agentNamespace;
  const agents: ClusterSnapshot['agents'] = {};
  for (const p of pods.items) {
    if (p.metadata?.namespace === ns && p.metadata.labels?.['app.kubernetes.io/name'] === 'cilium-migrate-agent' && p.spec?.nodeName) {
      agents[p.spec.nodeName] = { pod: p.metadata.name ?? '', ready: p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false };
    }
  }
  const configured = ciliumClusterCidrs(ciliumConfig);
  return {
    nodes: nodes.items.map(toNodeView),
    pods: pods.items
      .filter((p) => p.spec?.nodeName)
      .map((p) => ({ namespace: p.metadata?.namespace ?? '', name: p.metadata?.name ?? '', node: p.spec!.nodeName!, ip: p.status?.podIP ?? '', hostNetwork: p.spec?.hostNetwork === true, labels: p.metadata?.labels ?? {}, raw: p })),
    ciliumCidrs: Object.fromEntries(cns.items.map((c) => [c.metadata.name, c.spec?.ipam?.podCIDRs ?? []])),
    daemonSets: new Set(dss.items.map((d) => `${d.metadata?.namespace}/${d.metadata?.name}`)),
    pdbs: pdbs.items.map((p) => ({ namespace: p.metadata?.namespace ?? '', name: p.metadata?.name ?? '', selector: p.spec?.selector as LabelSelector | undefined, disruptionsAllowed: p.status?.disruptionsAllowed ?? 0 })),
    agents,
    legacyCidrs: legacy?.pools ?? [],
    ciliumClusterCidrs: configured.length ? configured : opts.ciliumCidrs ?? [ciliumClusterCidr],
    nodeAddresses: nodes.items.flatMap((n) => (n.status?.addresses ?? []).filter((a) => a.type === 'InternalIP' || a.type === 'ExternalIP').map((a) => a.address)),
    legacy,
  };
}

export interface NodeStatus {
  node: string;
  role: 'control-plane' | 'worker';
  phase: Phase;
  /** Where the node's new pods go. */
  overlay: 'legacy' | 'cilium';
  /** The node's legacy pod CIDRs where the legacy CNI allocates per node (Flannel: spec.podCIDR), else its pools. */
  legacyCidrs: string[];
  ciliumCidrs: string[];
  pods: Record<'legacy' | 'cilium' | 'other', number>;
  agent: 'ready' | 'not-ready' | 'missing';
  cordoned: boolean;
}

export interface ClusterStatus {
  nodes: NodeStatus[];
  summary: { nodes: number; migrated: number; podsOnLegacy: number; podsOnCilium: number };
  /** What the legacy CNI's known CIDRs add (pods counted legacy outside them), for people. */
  notes: string[];
}

const networks = new WeakMap<ClusterSnapshot, OverlayNetworks>();

/** The snapshot as lib/overlay.ts's networks (built once per snapshot). */
export function snapshotNetworks(snap: ClusterSnapshot): OverlayNetworks {
  let nets = networks.get(snap);
  if (!nets) {
    nets = { ciliumNodeCidrs: snap.ciliumCidrs, ciliumCidrs: snap.ciliumClusterCidrs, nodeAddresses: new Set(snap.nodeAddresses ?? []), legacyCidrs: snap.legacyCidrs };
    networks.set(snap, nets);
  }
  return nets;
}

/** The overlay of a pod on `node` (lib/overlay.ts): inside its node's Cilium CIDRs (else the cluster pool's) is Cilium, any other pod address legacy. */
export const podOverlay = (snap: ClusterSnapshot, node: string, ip: string): Overlay => classifyAddress(ip, node, snapshotNetworks(snap));

/** The pods of each node, in one pass. */
export function podsByNode(snap: ClusterSnapshot): Map<string, ViewPod[]> {
  const byNode = new Map<string, ViewPod[]>();
  for (const p of snap.pods) {
    const list = byNode.get(p.node);
    if (list) list.push(p);
    else byNode.set(p.node, [p]);
  }
  return byNode;
}

/** Pods on the legacy network whose address is outside every known legacy CIDR, and what that suggests. */
export function legacyOutsidePools(snap: ClusterSnapshot, pods: ViewPod[]): string | undefined {
  const outside = pods.filter((p) => legacyNote(p.ip, snap.legacyCidrs) !== undefined);
  if (outside.length === 0) return undefined;
  const shown = outside.slice(0, 3).map((p) => `${p.namespace}/${p.name} ${p.ip}`).join(', ');
  return `${outside.length} pod${outside.length === 1 ? '' : 's'} counted on the legacy network ${outside.length === 1 ? 'is' : 'are'} outside the legacy CNI's pod CIDRs (${snap.legacyCidrs.join(', ')}): ${shown}${outside.length > 3 ? ', ...' : ''}; if ${outside.length === 1 ? 'it is' : 'they are'} Cilium's, check --cilium-namespace (cilium-config ${snap.ciliumClusterCidrs.join(', ')}) and the CiliumNodes`;
}

/** Per node: phase, overlay, CIDRs, pods per overlay, agent; and the cluster summary. */
export function clusterStatus(snap: ClusterSnapshot, labelKey: string): ClusterStatus {
  const byNode = podsByNode(snap);
  const onLegacy: ViewPod[] = [];
  // Flannel (and the Kubernetes default) give each node a range of spec.podCIDR; Calico and AWS-CNI do not.
  const perNodeLegacy = !snap.legacy || snap.legacy.kind === 'flannel';
  const nodes = [...snap.nodes].sort((a, b) => a.name.localeCompare(b.name)).map((n): NodeStatus => {
    const pods = { legacy: 0, cilium: 0, other: 0 };
    for (const p of byNode.get(n.name) ?? []) {
      if (p.hostNetwork || !p.ip) continue;
      const o = podOverlay(snap, n.name, p.ip);
      if (o === 'legacy') onLegacy.push(p);
      if (o === 'legacy' || o === 'cilium') pods[o]++;
      else pods.other++;
    }
    const agent = snap.agents[n.name];
    return {
      node: n.name,
      role: n.controlPlane ? 'control-plane' : 'worker',
      phase: nodePhase(n.annotations),
      overlay: expectedOverlay(n.labels, labelKey, n.annotations[phaseAnnotation]),
      legacyCidrs: perNodeLegacy ? n.podCIDRs : snap.legacyCidrs,
      ciliumCidrs: snap.ciliumCidrs[n.name] ?? [],
      pods,
      agent: agent ? (agent.ready ? 'ready' : 'not-ready') : 'missing',
      cordoned: n.unschedulable,
    };
  });
  const outside = legacyOutsidePools(snap, onLegacy);
  return {
    nodes,
    summary: {
      nodes: nodes.length,
      migrated: nodes.filter((n) => n.phase === 'migrated').length,
      podsOnLegacy: nodes.reduce((s, n) => s + n.pods.legacy, 0),
      podsOnCilium: nodes.reduce((s, n) => s + n.pods.cilium, 0),
    },
    notes: outside ? [outside] : [],
  };
}

export interface PlannedNode {
  node: string;
  wave: number;
  role: 'control-plane' | 'worker';
  phase: Phase;
  /** Pods the drain will evict. */
  evicts: string[];
  /** What will stop the drain (pods needing a flag, budgets allowing no disruption now). */
  blockers: string[];
}

/**
 * The order: nodes already under way first (to finish them), then workers, then control-plane
 * nodes last; migrated nodes left out. Nodes go in waves of at most `maxUnavailable`, in that
 * order; a wave never mixes workers and control-plane nodes, and never holds together more pods
 * of one PodDisruptionBudget than the budget allows to be disrupted, so the drains of one wave do
 * not wait on each other.
 */
export function migrationPlan(snap: ClusterSnapshot, flags: DrainFlags, maxUnavailable: number, now: Date): PlannedNode[] {
  const rank = (n: NodeView) => {
    const phase = nodePhase(n.annotations);
    return phase !== 'pending' ? 0 : n.controlPlane ? 2 : 1;
  };
  const todo = snap.nodes.filter((n) => nodePhase(n.annotations) !== 'migrated').sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name));
  const size = Math.max(1, maxUnavailable);
  const byNode = podsByNode(snap);
  let wave = 0;
  let current = { nodes: 0, role: '', budgets: new Map<string, number>() };
  return todo.map((n) => {
    const onNode = byNode.get(n.name) ?? [];
    const decisions = classifyDrainPods(onNode.map((p) => toDrainPod(p.raw)), flags, (ns, name) => snap.daemonSets.has(`${ns}/${name}`), now);
    const evicting = decisions.filter((d) => d.action === 'evict');
    const blockers = decisions.filter((d) => d.action === 'refuse').map((d) => `${d.pod.namespace}/${d.pod.name}: ${d.reason}`);
    const budgets = new Map<string, number>();
    for (const pdb of snap.pdbs) {
      const covered = evicting.filter((d) => d.pod.namespace === pdb.namespace && selectorMatches(pdb.selector, onNode.find((p) => p.namespace === d.pod.namespace && p.name === d.pod.name)?.labels ?? {}));
      if (covered.length === 0) continue;
      budgets.set(`${pdb.namespace}/${pdb.name}`, covered.length);
      if (pdb.disruptionsAllowed === 0) blockers.push(`PodDisruptionBudget ${pdb.namespace}/${pdb.name} allows no disruption now (${covered.length} pod${covered.length === 1 ? '' : 's'} on the node)`);
    }
    const role = n.controlPlane ? 'control-plane' : 'worker';
    const allowed = (key: string) => snap.pdbs.find((p) => `${p.namespace}/${p.name}` === key)?.disruptionsAllowed ?? 0;
    const contended = [...budgets].some(([key, count]) => (current.budgets.get(key) ?? 0) > 0 && (current.budgets.get(key) ?? 0) + count > allowed(key));
    if (wave === 0 || current.nodes >= size || current.role !== role || contended) {
      wave++;
      current = { nodes: 0, role, budgets: new Map() };
    }
    current.nodes++;
    for (const [key, count] of budgets) current.budgets.set(key, (current.budgets.get(key) ?? 0) + count);
    return {
      node: n.name,
      wave,
      role,
      phase: nodePhase(n.annotations),
      evicts: evicting.map((d) => `${d.pod.namespace}/${d.pod.name}`),
      blockers,
    };
  });
}

/** The plan's nodes grouped by wave, in order. */
export function planWaves(plan: PlannedNode[]): string[][] {
  const waves: string[][] = [];
  for (const p of plan) (waves[p.wave - 1] ??= []).push(p.node);
  return waves.filter((w) => w.length > 0);
}
