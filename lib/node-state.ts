// The node-state contract: what the plugin records on a Node while it migrates it or rolls it back,
// and what that says. The plugin (its engine, status, plan, finalize), the probe agents (which nodes
// are in the migration's focus, which overlay a node's pods belong on) and the lab read it here.
//
// On the Node: `cilium-migrate.io/phase` for people (kubectl get nodes -L cilium-migrate.io/phase)
// and for the agents; `cilium-migrate.io/state` (JSON) for the migration's record and
// `cilium-migrate.io/rollback` (JSON) for a rollback's. Every step records its intent in the record
// before it acts and its result after, so any run resumes any other's work.
import { annotationPrefix } from './defaults.js';

export const phaseAnnotation = `${annotationPrefix}/phase`;
export const stateAnnotation = `${annotationPrefix}/state`;
export const rollbackAnnotation = `${annotationPrefix}/rollback`;

/** The steps of a node migration, in order (DESIGN.md "The node step machine"). */
export const migrationSteps = ['baseline-gate', 'cordon', 'drain', 'label', 'restart-agent', 'restart-node', 'verify', 'gate', 'uncordon'] as const;
export type MigrationStep = (typeof migrationSteps)[number];

/**
 * The steps of a rollback to the legacy CNI, in order. The agent restarts before the CNI files are
 * restored: an agent that still applies the node config renames restored files back at once
 * (REFERENCE.md section 1).
 */
export const rollbackSteps = ['cordon', 'drain', 'unlabel', 'restart-agent', 'restore-cni', 'restart-node', 'verify', 'uncordon'] as const;
export type RollbackStep = (typeof rollbackSteps)[number];

export interface StepRecord {
  /** When the step recorded its intent (ISO time). */
  intent?: string;
  /** When it finished. */
  done?: string;
  /** What the step needs to resume (old pod UIDs, restart request time, ...). */
  data?: Record<string, unknown>;
}

/** The record of one procedure (a migration or a rollback) on a node. */
export interface NodeRecord<S extends string = string> {
  /** Version of this record's shape. */
  v: 1;
  /** The run that started the procedure on this node, and the last one that worked on it. */
  startedBy: string;
  lastRun: string;
  startedAt: string;
  /** Whether the node was unschedulable before we touched it: then we never uncordon it. */
  wasUnschedulable: boolean;
  /** Set when this procedure cordoned the node (so only then it uncordons). */
  cordonedByUs: boolean;
  steps: Partial<Record<S, StepRecord>>;
}

/** A migration's record (`cilium-migrate.io/state`). */
export interface NodeState extends NodeRecord<MigrationStep> {
  bootID: string;
  /** Set once every step is done. */
  migratedAt?: string;
}

/** A rollback's record (`cilium-migrate.io/rollback`); removed, with the migration's, when the rollback ends. */
export type RollbackState = NodeRecord<RollbackStep>;

/** `finishing`: every step is done but the run stopped before recording the node as migrated. */
export type Phase = 'pending' | MigrationStep | 'finishing' | 'migrated';

/** The phase a node carries once `finalize` has made Cilium the cluster's only CNI (its label is gone then). */
export const finalizedPhase = 'finalized';

const isRecord = (r: unknown): r is NodeRecord => typeof r === 'object' && r !== null && (r as NodeRecord).v === 1 && typeof (r as NodeRecord).steps === 'object' && (r as NodeRecord).steps !== null;

function parse(raw: string | undefined): unknown {
  if (!raw) return undefined;
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return undefined;
  }
}

/** The migration recorded on a node, or undefined when none (or an unreadable one) is there. */
export function readState(annotations: Record<string, string> | undefined): NodeState | undefined {
  const parsed = parse(annotations?.[stateAnnotation]);
  return isRecord(parsed) ? (parsed as NodeState) : undefined;
}

/**
 * The rollback recorded on a node. Records written before rollback and migration shared one shape
 * name the run `runId`; they are read as started by that run, so a resumed rollback asks for its
 * node restart under the same request id (and finds a reboot pod of the first run as its own).
 */
export function readRollback(annotations: Record<string, string> | undefined): RollbackState | undefined {
  const parsed = parse(annotations?.[rollbackAnnotation]);
  if (!isRecord(parsed)) return undefined;
  const { runId, ...rest } = parsed as RollbackState & { runId?: string };
  const startedBy = rest.startedBy ?? runId ?? '';
  return redoEarlyRestore({ ...rest, startedBy, lastRun: rest.lastRun ?? startedBy });
}

/** What `restore-cni` keeps with its intent since it runs after `restart-agent`; a done restore without it ran in the earlier order. */
export const restoredAfterAgent = 'afterAgentRestart';

/**
 * Records of the earlier order restored the CNI files before the agent restart, and an agent that
 * still applied the node config renamed them back at once: unless its verify passed, such a
 * rollback restores them again after the agent restart, and restarts the node again after that
 * (a restart recorded before it ran on the wrong files). Whether the agent restart is done or not.
 */
function redoEarlyRestore(record: RollbackState): RollbackState {
  const restore = record.steps['restore-cni'];
  if (!restore?.done || restore.data?.[restoredAfterAgent] === true || record.steps.verify?.done) return record;
  const { 'restart-node': _restartedOnWrongFiles, ...steps } = record.steps;
  return { ...record, steps: { ...steps, 'restore-cni': { ...(restore.intent ? { intent: restore.intent } : {}), data: { redo: 'its earlier run restored the files before the agent restart' } } } };
}

/** The first of `steps` the record has not done, or undefined when every one is. */
export function nextStep<S extends string>(record: NodeRecord<S>, steps: readonly S[]): S | undefined {
  return steps.find((s) => !record.steps[s]?.done);
}

/** The phase shown to people: the first step not done, or migrated. */
export function phaseOf(state: NodeState | undefined): Phase {
  if (!state) return 'pending';
  if (state.migratedAt) return 'migrated';
  return nextStep(state, migrationSteps) ?? 'finishing';
}

/** The phase a rollback under way shows: `rollback-<its next step>`. */
export const rollbackPhase = (state: RollbackState) => `rollback-${nextStep(state, rollbackSteps) ?? 'finishing'}`;

/** A node's phase, counting a node finalize has passed (its records removed, `phase=finalized` left) as migrated. */
export function nodePhase(annotations: Record<string, string>): Phase {
  return annotations[phaseAnnotation] === finalizedPhase ? 'migrated' : phaseOf(readState(annotations));
}

/** Phases in which nothing is happening to a node: not started, done, or finalized. */
const restingPhases = new Set<string>(['pending', 'migrated', finalizedPhase]);

/** Whether the phase annotation `phase` says a migration or a rollback is under way on its node (its cells are the gate's focus). */
export const isUnderWay = (phase: string | undefined): boolean => phase !== undefined && phase !== '' && !restingPhases.has(phase);

/** The overlay a node's pods should be on: Cilium once the node carries the migration label, or after finalize. */
export function expectedOverlay(nodeLabels: Record<string, string>, labelKey: string, phase?: string): 'legacy' | 'cilium' {
  return nodeLabels[labelKey] === 'true' || phase === finalizedPhase ? 'cilium' : 'legacy';
}

/** Whether there is anything to roll back on a node: the migration label, a migration record, or a rollback under way. */
export function needsRollback(node: { labels: Record<string, string>; annotations: Record<string, string> }, labelKey: string): boolean {
  return node.labels[labelKey] !== undefined || readState(node.annotations) !== undefined || readRollback(node.annotations) !== undefined;
}

/** The annotations that store a migration's `state` (a merge patch's metadata.annotations). */
export function stateAnnotations(state: NodeState): Record<string, string> {
  return { [stateAnnotation]: JSON.stringify(state), [phaseAnnotation]: phaseOf(state) };
}

/** The annotations that store a rollback's `state`. */
export function rollbackAnnotations(state: RollbackState): Record<string, string> {
  return { [rollbackAnnotation]: JSON.stringify(state), [phaseAnnotation]: rollbackPhase(state) };
}

/** The annotations that remove every record of the plugin from a node (back to `pending`). */
export const clearedAnnotations: Record<string, null> = { [rollbackAnnotation]: null, [stateAnnotation]: null, [phaseAnnotation]: null };

/** A fresh migration record for a node seen for the first time. */
export function initialState(runId: string, now: Date, unschedulable: boolean, bootID: string): NodeState {
  return { v: 1, startedBy: runId, lastRun: runId, startedAt: now.toISOString(), wasUnschedulable: unschedulable, cordonedByUs: false, bootID, steps: {} };
}
