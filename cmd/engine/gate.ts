// The connectivity gate as the engine sees it: a baseline before the first cordon and a check
// with the node in focus after its restart. The reachability-matrix gate (matrix-gate.ts) is the
// default; `clusterStateGate` checks what can be checked without probe agents (--gate cluster-state).
import type { Verdict } from '../../lib/connectivity-gate.js';
import { ciliumAgentSelector, ciliumNamespace } from '../../lib/defaults.js';
import { classifyPod } from '../../lib/overlay.js';
import type { EngineCluster, NodeView } from '../cluster/cluster.js';

export interface GateResult {
  verdict: Verdict;
  /** Why, one line per finding, naming nodes and pods. */
  reasons: string[];
}

export interface BaselineResult extends GateResult {
  /** What the gate wants kept on the node (what already failed), so a resumed run judges against the same baseline. */
  record?: Record<string, unknown> | undefined;
}

export interface Gate {
  readonly name: string;
  /** Before anything is touched: is the cluster healthy enough to start? */
  baseline(): Promise<BaselineResult>;
  /**
   * After the node's restart: does the node work on Cilium? Only evidence newer than `since`
   * counts; `baseline` is the record the baseline step kept, if any; `inFlight` names other nodes
   * being migrated at the same time (a wave), whose cells their own gates judge.
   */
  check(focus: NodeView, since: Date, baseline?: Record<string, unknown>, inFlight?: string[]): Promise<GateResult>;
  /** The gate for the nodes of one wave, when they can share work (one matrix read per round). */
  forWave?(wave: string[]): Gate;
}

/** Which pods on a node are on the legacy network: outside its Cilium pod CIDRs (host-network pods and pods without an IP aside). */
export function podsOffCilium<T extends { podIP: string; hostNetwork: boolean }>(pods: T[], ciliumCidrs: string[]): T[] {
  const nets = { ciliumNodeCidrs: {}, ciliumCidrs, nodeAddresses: [] };
  return pods.filter((p) => classifyPod({ ip: p.podIP, node: undefined, hostNetwork: p.hostNetwork }, nets) === 'legacy');
}

/** The gate without probe agents: Cilium agent pods Ready, new pods on the focus node on Cilium. */
export function clusterStateGate(cluster: EngineCluster, nodes: () => Promise<NodeView[]>, agentNamespace = ciliumNamespace): Gate {
  const agentReady = async (node: string) => (await cluster.listNodePods(node, ciliumAgentSelector)).some((p) => p.namespace === agentNamespace && p.ready);
  return {
    name: 'cluster-state',
    async baseline() {
      // Two LISTs whatever the cluster size: the nodes and every Cilium agent pod.
      const [all, agents] = await Promise.all([nodes(), cluster.listPodsBySelector(agentNamespace, ciliumAgentSelector)]);
      const withReadyAgent = new Set(agents.filter((p) => p.ready).map((p) => p.nodeName));
      const reasons = all.filter((n) => n.ready && !withReadyAgent.has(n.name)).map((n) => `node ${n.name}: no Ready Cilium agent pod (${agentNamespace}, ${ciliumAgentSelector})`);
      return reasons.length ? { verdict: 'FAIL', reasons } : { verdict: 'PASS', reasons: ['every Ready node has a Ready Cilium agent pod'] };
    },
    async check(focus, since) {
      const reasons: string[] = [];
      if (!(await agentReady(focus.name))) reasons.push(`node ${focus.name}: its Cilium agent pod is not Ready`);
      const cidrs = await cluster.ciliumPodCidrs(focus.name);
      if (!cidrs || cidrs.length === 0) {
        reasons.push(`CiliumNode ${focus.name} has no spec.ipam.podCIDRs: is the Cilium operator running in cluster-pool mode?`);
        return { verdict: 'FAIL', reasons };
      }
      const fresh = (await cluster.listNodePods(focus.name)).filter((p) => p.createdAt.getTime() >= since.getTime() && p.phase === 'Running');
      const off = podsOffCilium(fresh, cidrs);
      for (const p of off) reasons.push(`pod ${p.namespace}/${p.name} started on ${focus.name} after the restart but has ${p.podIP}, outside ${cidrs.join(', ')}`);
      if (reasons.length) return { verdict: 'FAIL', reasons };
      return { verdict: 'PASS', reasons: [`Cilium agent Ready on ${focus.name}; ${fresh.filter((p) => !p.hostNetwork).length} new pods inside ${cidrs.join(', ')}`] };
    },
  };
}
