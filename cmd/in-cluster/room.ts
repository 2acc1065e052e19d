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
/** Taints the node controller adds and removes with the node's cordon and readiness: judged from those instead. */
const conditionTaints = new Set(['node.kubernetes.io/unschedulable', 'node.kubernetes.io/not-ready', 'node.kubernetes.io/unreachable']);

/** Whether a pod without tolerations can start on `node` once the waves before it are done (`done`: their nodes). */
function canHost(node: NodeView, done: ReadonlySet<string>): boolean {
  if ((node.taints ?? []).some((t) => blocking.has(t.effect) && !conditionTaints.has(t.key))) return false;
  // A node of an earlier wave ends it Ready and, when this migration cordoned it, uncordoned; a
  // cordon someone else made stays.
  if (done.has(node.name)) return !node.unschedulable || readState(node.annotations)?.cordonedByUs === true;
  return node.ready && !node.unschedulable;
}

export interface StrandedWave {
  /** 1-based, in plan order. */
  wave: number;
  nodes: string[];
  /** The nodes a run pod could run on before this wave (all of them in it). */
  hosts: string[];
}

/** The waves that would leave a run pod no node to go to; empty when every wave leaves one. Pure. */
export function strandedWaves(waves: string[][], nodes: NodeView[]): StrandedWave[] {
  const done = new Set<string>();
  const stranded: StrandedWave[] = [];
  waves.forEach((wave, i) => {
    const hosts = nodes.filter((n) => canHost(n, done)).map((n) => n.name);
    const inWave = new Set(wave);
    if (!hosts.some((h) => !inWave.has(h))) stranded.push({ wave: i + 1, nodes: wave, hosts });
    for (const n of wave) done.add(n);
  });
  return stranded;
}

/** The refusal for stranded waves: what would happen, and what to do instead. */
export function strandedMessage(stranded: StrandedWave[], maxUnavailable: number): { message: string; hint: string } {
  const first = stranded[0]!;
  const hosts = first.hosts.length;
  const message = `wave ${first.wave} (${first.nodes.join(', ')}) would cordon every node a run pod can run on (${hosts ? first.hosts.join(', ') : 'none is Ready, schedulable and untainted'}): the drain would evict the run pod and its next pod could not start, leaving those nodes cordoned`;
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
