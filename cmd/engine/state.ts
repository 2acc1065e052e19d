// A node's migration state, kept on the Node itself so any run can resume any other's work:
// `cilium-migrate.io/phase` for people (kubectl get nodes -L), `cilium-migrate.io/state` (JSON) for
// the engine. Every step records its intent here before it acts and its result after.
import { annotationPrefix } from '../../lib/defaults.js';

export const phaseAnnotation = `${annotationPrefix}/phase`;
export const stateAnnotation = `${annotationPrefix}/state`;
/** A rollback under way (cmd/engine/rollback-node.ts). */
export const rollbackAnnotation = `${annotationPrefix}/rollback`;

/** The steps of a node migration, in order (DESIGN.md "The node step machine"). */
export const stepNames = ['baseline-gate', 'cordon', 'drain', 'label', 'restart-agent', 'restart-node', 'verify', 'gate', 'uncordon'] as const;
export type StepName = (typeof stepNames)[number];

export interface StepRecord {
  /** When the step recorded its intent (ISO time). */
  intent?: string;
  /** When it finished. */
  done?: string;
  /** What the step needs to resume (old pod UIDs, restart request time, ...). */
  data?: Record<string, unknown>;
}

export interface NodeState {
  /** Version of this record's shape. */
  v: 1;
  /** The run that started this node's migration, and the last one that worked on it. */
  startedBy: string;
  lastRun: string;
  startedAt: string;
  /** Whether the node was unschedulable before we touched it: then we never uncordon it. */
  wasUnschedulable: boolean;
  /** Set when this migration cordoned the node (so only then it uncordons). */
  cordonedByUs: boolean;
  bootID: string;
  steps: Partial<Record<StepName, StepRecord>>;
  /** Set once every step is done. */
  migratedAt?: string;
}

/** `finishing`: every step is done but the run stopped before recording the node as migrated. */
export type Phase = 'pending' | StepName | 'finishing' | 'migrated';

/** The state recorded on a node, or undefined when none (or an unreadable one) is there. */
export function readState(annotations: Record<string, string> | undefined): NodeState | undefined {
  const raw = annotations?.[stateAnnotation];
  if (!raw) return undefined;
  try {
    const parsed = JSON.parse(raw) as NodeState;
    return parsed && parsed.v === 1 && typeof parsed.steps === 'object' ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** The phase shown to people: the first step not done, or migrated. */
export function phaseOf(state: NodeState | undefined): Phase {
  if (!state) return 'pending';
  if (state.migratedAt) return 'migrated';
  return stepNames.find((s) => !state.steps[s]?.done) ?? 'finishing';
}

/** A node's phase, counting a node finalize has passed (its records removed, `phase=finalized` left) as migrated. */
export function nodePhase(annotations: Record<string, string>): Phase {
  return annotations[phaseAnnotation] === 'finalized' ? 'migrated' : phaseOf(readState(annotations));
}

/** The annotations that store `state` (a merge patch's metadata.annotations). */
export function stateAnnotations(state: NodeState): Record<string, string> {
  return { [stateAnnotation]: JSON.stringify(state), [phaseAnnotation]: phaseOf(state) };
}

/** A fresh state for a node seen for the first time. */
export function initialState(runId: string, now: Date, unschedulable: boolean, bootID: string): NodeState {
  return { v: 1, startedBy: runId, lastRun: runId, startedAt: now.toISOString(), wasUnschedulable: unschedulable, cordonedByUs: false, bootID, steps: {} };
}
