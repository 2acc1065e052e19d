// Discovery from the Kubernetes API: the agent pods, the nodes and the CiliumNodes, each kept by a
// watch (lib/kube-watch.ts), never by periodic LIST. While the API server is away the last view
// stays, so probing goes on with the peers the agent knew.
import type { LiteKube } from '../lib/kube-lite.js';
import { reflect, type KubeObject, type Reflector } from '../lib/kube-watch.js';
import type { AgentEndpoint, ClusterView, Discovery, NodeInfo } from './discovery.js';

interface PodObject extends KubeObject {
  metadata?: KubeObject['metadata'] & { deletionTimestamp?: string };
  spec?: { nodeName?: string };
  status?: { podIP?: string; phase?: string };
}
interface NodeObject extends KubeObject {
  metadata?: KubeObject['metadata'] & { labels?: Record<string, string>; annotations?: Record<string, string> };
  status?: { addresses?: { type: string; address: string }[] };
}
interface CiliumNodeObject extends KubeObject {
  spec?: { ipam?: { podCIDRs?: string[] } };
}

export function kubeDiscovery(kube: LiteKube, namespace: string, agentSelector: string, phaseAnnotation: string, log: (line: string) => void): Discovery {
  let reflectors: Reflector[] = [];
  return {
    start(onChange) {
      let pods = new Map<string, KubeObject>();
      let nodes = new Map<string, KubeObject>();
      let ciliumNodes = new Map<string, KubeObject>();
      const synced = { pods: false, nodes: false, ciliumNodes: false };
      let pending = false;
      const emit = () => {
        if (pending || !synced.pods || !synced.nodes) return;
        pending = true;
        // Coalesce a burst of events into one recomputation.
        queueMicrotask(() => {
          pending = false;
          onChange(view(pods, nodes, ciliumNodes));
        });
      };
      reflectors = [
        reflect(kube, `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`, {
          query: { labelSelector: agentSelector },
          onChange: (items) => ((pods = items), (synced.pods = true), emit()),
          onError: log,
        }),
        reflect(kube, '/api/v1/nodes', { onChange: (items) => ((nodes = items), (synced.nodes = true), emit()), onError: log }),
        reflect(kube, '/apis/cilium.io/v2/ciliumnodes', {
          onChange: (items) => ((ciliumNodes = items), (synced.ciliumNodes = true), emit()),
          onError: log,
          // Without Cilium's CRDs there is nothing to watch; look again now and then.
          minBackoffMs: 5000,
          maxBackoffMs: 60_000,
        }),
      ];
      function view(p: Map<string, KubeObject>, n: Map<string, KubeObject>, c: Map<string, KubeObject>): ClusterView {
        const agents: AgentEndpoint[] = [];
        for (const o of p.values() as Iterable<PodObject>) {
          if (o.metadata?.deletionTimestamp || !o.status?.podIP || !o.spec?.nodeName || o.status.phase !== 'Running') continue;
          agents.push({ node: o.spec.nodeName, pod: o.metadata?.name ?? '', ip: o.status.podIP });
        }
        const nodeInfos: NodeInfo[] = [...(n.values() as Iterable<NodeObject>)].map((o) => ({
          name: o.metadata?.name ?? '',
          addresses: (o.status?.addresses ?? []).filter((a) => a.type === 'InternalIP' || a.type === 'ExternalIP').map((a) => a.address),
          labels: o.metadata?.labels ?? {},
          phase: o.metadata?.annotations?.[phaseAnnotation],
        }));
        const ciliumNodeCidrs: Record<string, string[]> = {};
        for (const o of c.values() as Iterable<CiliumNodeObject>) ciliumNodeCidrs[o.metadata?.name ?? ''] = o.spec?.ipam?.podCIDRs ?? [];
        return { agents, nodes: nodeInfos, ciliumNodeCidrs };
      }
    },
    stop() {
      for (const r of reflectors) r.stop();
    },
  };
}
