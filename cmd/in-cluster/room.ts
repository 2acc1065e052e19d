// Whether a run in the cluster can hand over to a new pod in every wave. The run pod has no
// tolerations: it runs only on Ready, schedulable, untainted nodes. When a wave cordons every such
// node, the drain evicts the run pod and its next pod has nowhere to start, so the run stops with
// the wave's nodes cordoned and drained until a person steps in. `run --in-cluster` refuses such a
// plan before it creates anything, and a run pod refuses it before it starts a wave.
import { PreconditionError } from '../../lib/errors.js';
import { readState } from '../../lib/node-state.js';
import type { NodeView } from '../cluster/cluster.js';

/** Taint effects that keep a pod without tolerations off a node (or evict it). */
const blocking = new Set(['NoSchedule', 'NoExecute']);
/**
 * Taints that come and go with a state the migration itself goes through and waits out: the node
 * controller's for the cordon and readiness (judged from those instead), and Cilium's while its
 * agent on the node is not Ready (each migrated node's agent restarts).
 */
const transientTaints = new Set(['node.kubernetes.io/unschedulable', 'node.kubernetes.io/not-ready', 'node.kubernetes.io/unreachable', 'node.cilium.io/agent-not-ready']);

/** Why a pod without tolerations cannot start on `node` once the waves before it are done (`done`: their nodes); undefined when it can. */
function notAHost(node: NodeView, done: ReadonlySet<string>): string | undefined {
  const taint = (node.taints ?? []).find((t) => blocking.has(t.effect) && !transientTaints.has(t.key));
  if (taint) return `tainted ${taint.key}:${taint.effect}`;
  // A node of an earlier wave ends it Ready and, when this migration cordoned it, uncordoned; a
  // cordon someone else made stays.
  if (done.has(node.name)) return !node.unschedulable || readState(node.annotations)?.cordonedByUs === true ? undefined : 'cordoned, not by this migration';
  if (!node.ready) return 'not Ready';
  return node.unschedulable ? 'cordoned' : undefined;
}

export interface StrandedWave {
  /** 1-based, in plan order. */
  wave: number;
  nodes: string[];
  /** The nodes a run pod could run on before this wave (all of them in it). */
  hosts: string[];
  /** The other nodes, and why a run pod cannot run there. */
  others: { node: string; why: string }[];
}

/** The waves that would leave a run pod no node to go to; empty when every wave leaves one. Pure. */
export function strandedWaves(waves: string[][], nodes: NodeView[]): StrandedWave[] {
  const done = new Set<string>();
  const stranded: StrandedWave[] = [];
  waves.forEach((wave, i) => {
    const judged = nodes.map((n) => ({ node: n.name, why: notAHost(n, done) }));
    const hosts = judged.filter((j) => j.why === undefined).map((j) => j.node);
    const inWave = new Set(wave);
    if (!hosts.some((h) => !inWave.has(h))) stranded.push({ wave: i + 1, nodes: wave, hosts, others: judged.filter((j): j is { node: string; why: string } => j.why !== undefined) });
    for (const n of wave) done.add(n);
  });
  return stranded;
}

/** The refusal for stranded waves: what would happen, and what to do instead. */
export function strandedMessage(stranded: StrandedWave[], maxUnavailable: number): { message: string; hint: string } {
  const first = stranded[0]!;
  const hosts = first.hosts.length;
  const message = `wave ${first.wave} (${first.nodes.join(', ')}) would cordon every node a run pod can run on (${hosts ? first.hosts.join(', ') : 'none is Ready, schedulable and untainted'}): the drain would evict the run pod and its next pod could not start, leaving those nodes cordoned${first.others.length ? `; not for a run pod: ${first.others.map((o) => `${o.node} (${o.why})`).join(', ')}` : ''}`;
  const hint = hosts > 1 && maxUnavailable >= hosts
    ? `use --max-unavailable ${hosts - 1} or less, so that every wave leaves a node for the run pod; or run it from a terminal (without --in-cluster)`
    : 'run it from a terminal (without --in-cluster): the cluster has no second node a run pod can move to';
  return { message, hint };
}

/** Throws the refusal when a wave would leave a run pod nowhere to go. */
export function refuseStrandedWaves(waves: string[][], nodes: NodeView[], maxUnavailable: number): void {
  const stranded = strandedWaves(waves, nodes);
  if (stranded.length === 0) return;
  const { message, hint } = strandedMessage(stranded, maxUnavailable);
  throw new PreconditionError(message, hint);
}
