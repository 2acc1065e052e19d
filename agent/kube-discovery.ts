// Discovery from the Kubernetes API: the agent pods, the nodes and the CiliumNodes, each kept by a
// watch (lib/kube-watch.ts), never by periodic LIST. While the API server is away the last view
// stays, so probing goes on with the peers the agent knew.
//
// What each agent receives is multiplied by the number of agents: every write to a Node reaches
// all of them. So the nodes are watched as metadata only (the labels and the phase annotation are
// all the agent reads of them; a full Node carries its image list, conditions and status, ten times
// the bytes), a node's address comes from its agent pod's status.hostIPs, and of every object only
// the fields below are kept (BENCHMARKS.md, "Agent with 1,000-node discovery").
import type { LiteKube } from '../lib/kube-lite.js';
import { reflect, type KubeObject, type ReflectOptions, type Reflector } from '../lib/kube-watch.js';
import type { AgentEndpoint, ClusterView, Discovery, NodeInfo } from './discovery.js';

interface PodObject extends KubeObject {
  metadata?: KubeObject['metadata'] & { deletionTimestamp?: string };
  spec?: { nodeName?: string };
  status?: { podIP?: string; phase?: string; hostIP?: string; hostIPs?: { ip: string }[] };
}
interface NodeObject extends KubeObject {
  metadata?: KubeObject['metadata'] & { labels?: Record<string, string>; annotations?: Record<string, string> };
}
interface CiliumNodeObject extends KubeObject {
  spec?: { ipam?: { podCIDRs?: string[] } };
}

/** One collection discovery keeps: where, how, and what of each object it keeps. */
export interface DiscoveryWatch {
  name: 'pods' | 'nodes' | 'ciliumNodes';
  path: string;
  query?: Record<string, string>;
  metadataOnly: boolean;
  keep(obj: KubeObject): KubeObject;
}

/** The watches of one agent, exactly as it sends them (bench/apiserver-watchers.ts replays them). */
export function discoveryWatches(namespace: string, agentSelector: string, phaseAnnotation: string): DiscoveryWatch[] {
  return [
    {
      name: 'pods',
      path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`,
      query: { labelSelector: agentSelector },
      metadataOnly: false,
      keep: (o: PodObject): PodObject => ({
        metadata: { name: o.metadata?.name, namespace: o.metadata?.namespace, ...(o.metadata?.deletionTimestamp ? { deletionTimestamp: o.metadata.deletionTimestamp } : {}) },
        spec: { nodeName: o.spec?.nodeName },
        status: { podIP: o.status?.podIP, phase: o.status?.phase, hostIP: o.status?.hostIP, hostIPs: o.status?.hostIPs?.map((h) => ({ ip: h.ip })) },
      }),
    },
    {
      name: 'nodes',
      path: '/api/v1/nodes',
      metadataOnly: true,
      keep: (o: NodeObject): NodeObject => {
        const phase = o.metadata?.annotations?.[phaseAnnotation];
        return { metadata: { name: o.metadata?.name, labels: o.metadata?.labels ?? {}, annotations: phase === undefined ? {} : { [phaseAnnotation]: phase } } };
      },
    },
    {
      name: 'ciliumNodes',
      path: '/apis/cilium.io/v2/ciliumnodes',
      metadataOnly: false,
      keep: (o: CiliumNodeObject): CiliumNodeObject => ({ metadata: { name: o.metadata?.name }, spec: { ipam: { podCIDRs: o.spec?.ipam?.podCIDRs ?? [] } } }),
    },
  ];
}

/**
 * How long the view waits after a change for more before it is recomputed. A wave writes to every
 * one of its nodes several times and each write reaches every agent as its own event: recomputing
 * the view (all nodes, all agents) for each one was most of an agent's CPU during a wave at 1,000
 * nodes (BENCHMARKS.md, "Agent with 1,000-node discovery"). Small next to the focus probe interval.
 */
export const viewCoalesceMs = 200;

export function kubeDiscovery(kube: LiteKube, namespace: string, agentSelector: string, phaseAnnotation: string, log: (line: string) => void, coalesceMs = viewCoalesceMs): Discovery {
  let reflectors: Reflector[] = [];
  let timer: NodeJS.Timeout | undefined;
  return {
    start(onChange) {
      const collections = { pods: new Map<string, KubeObject>(), nodes: new Map<string, KubeObject>(), ciliumNodes: new Map<string, KubeObject>() };
      const synced = { pods: false, nodes: false, ciliumNodes: false };
      let first = true;
      let pending = false;
      const recompute = () => {
        pending = false;
        timer = undefined;
        onChange(view(collections.pods, collections.nodes, collections.ciliumNodes));
      };
      const emit = () => {
        if (pending || !synced.pods || !synced.nodes) return;
        pending = true;
        // The first view at once (readiness waits for it); later ones gather the events of a burst.
        if (first) {
          first = false;
          queueMicrotask(recompute);
        } else timer = setTimeout(recompute, coalesceMs);
      };
      reflectors = discoveryWatches(namespace, agentSelector, phaseAnnotation).map((w) => {
        const opts: ReflectOptions = {
          query: w.query,
          metadataOnly: w.metadataOnly,
          keep: w.keep,
          onChange: (items) => ((collections[w.name] = items), (synced[w.name] = true), emit()),
          onError: log,
        };
        // Without Cilium's CRDs there is nothing to watch; look again now and then.
        if (w.name === 'ciliumNodes') Object.assign(opts, { minBackoffMs: 5000, maxBackoffMs: 60_000 });
        return reflect(kube, w.path, opts);
      });
      function view(p: Map<string, KubeObject>, n: Map<string, KubeObject>, c: Map<string, KubeObject>): ClusterView {
        const agents: AgentEndpoint[] = [];
        const addresses = new Map<string, string[]>();
        for (const o of p.values() as Iterable<PodObject>) {
          // The node's own address, as its kubelet reports it on every pod it runs.
          const hostIPs = o.status?.hostIPs?.map((h) => h.ip) ?? (o.status?.hostIP ? [o.status.hostIP] : []);
          if (o.spec?.nodeName && hostIPs.length) addresses.set(o.spec.nodeName, hostIPs);
          if (o.metadata?.deletionTimestamp || !o.status?.podIP || !o.spec?.nodeName || o.status.phase !== 'Running') continue;
          agents.push({ node: o.spec.nodeName, pod: o.metadata?.name ?? '', ip: o.status.podIP });
        }
        const nodeInfos: NodeInfo[] = [...(n.values() as Iterable<NodeObject>)].map((o) => ({
          name: o.metadata?.name ?? '',
          addresses: addresses.get(o.metadata?.name ?? '') ?? [],
          labels: o.metadata?.labels ?? {},
          phase: o.metadata?.annotations?.[phaseAnnotation],
        }));
        const ciliumNodeCidrs: Record<string, string[]> = {};
        for (const o of c.values() as Iterable<CiliumNodeObject>) ciliumNodeCidrs[o.metadata?.name ?? ''] = o.spec?.ipam?.podCIDRs ?? [];
        return { agents, nodes: nodeInfos, ciliumNodeCidrs };
      }
    },
    stop() {
      clearTimeout(timer);
      for (const r of reflectors) r.stop();
    },
  };
}
