// A procedure on one node (its migration, its rollback): the runner's steps with the node's record
// kept in its annotations (lib/node-state.ts), an Event on the Node for every step, and what each
// node step works with (NodeRun).
import type { Clock } from '../../lib/clock.js';
import { InterruptedError } from '../../lib/errors.js';
import { phaseAnnotation, type NodeRecord } from '../../lib/node-state.js';
import type { EngineCluster, NodePatch, NodeView } from '../cluster/cluster.js';
import type { DrainOptions } from './drain.js';
import type { NodeRestarter } from './restart.js';
import { describeSteps, Journal, runSteps, type BoundaryHook, type EngineReporter, type Step, type StepResult } from './runner.js';

/** What every node step needs to know, whichever procedure runs it. */
export interface NodeStepOptions {
  runId: string;
  /** The label the CiliumNodeConfig selects on. */
  labelKey: string;
  ciliumNamespace: string;
  drain: DrainOptions;
  restarter: NodeRestarter;
  /** Where the short-lived verify pod runs, and its image. */
  verifyNamespace: string;
  verifyImage: string;
  timeoutsMs: { agentRestart: number; nodeRestart: number; verify: number };
  /** Between observations while waiting. */
  pollMs: number;
}

/** The fixed part of a node step's world: the cluster, the options, time and the person watching. */
export interface NodeEnv {
  cluster: EngineCluster;
  opts: NodeStepOptions;
  clock: Clock;
  report: EngineReporter;
  signal?: AbortSignal | undefined;
}

/** What a node step works with: the node, its record, this step's kept data. */
export interface NodeRun {
  readonly name: string;
  /** `migration` or `rollback`, for messages. */
  readonly procedure: string;
  readonly env: NodeEnv;
  /** The node as last read or written (read afresh before a step that asks for it). */
  readonly node: NodeView;
  /** The procedure's record, as it stands. */
  readonly record: NodeRecord;
  /** What this step kept in the record to resume (old pod UIDs, the restart request), if anything. */
  readonly data: Record<string, unknown> | undefined;
  /** Keeps `data` for this step in the record, written now (before the side effect it protects). */
  keep(data: Record<string, unknown>): Promise<void>;
  /** Records facts (the node was cordoned by someone else) with the next write. */
  note(fields: Partial<NodeRecord>): void;
  /** Cordons the node; the record that this procedure did lands in the same write. */
  cordon(): Promise<void>;
  /** Changes the node (a label, the uncordon) outside the record. */
  patch(patch: Omit<NodePatch, 'annotations'>): Promise<void>;
}

/** A procedure on a node: its steps and where and how it keeps its record. */
export interface NodeProcedure<R extends NodeRecord> {
  /** `migration` or `rollback`. */
  readonly name: string;
  readonly steps: readonly Step<NodeRun>[];
  /** The record on the node, if any. */
  read(node: NodeView): R | undefined;
  /** A fresh record for a node that has none. */
  start(node: NodeView, runId: string, now: Date): R;
  /** The annotations that store `record` (a merge patch's). */
  annotations(record: R): Record<string, string>;
  /** The reason of the Event that tells a step is over. */
  eventReason(step: string): string;
  /** How the boundary hook names a step. */
  boundaryName(step: string): string;
}

/** Runs `procedure` on node `name` from where its record says; returns the step results, the record and the node as last written. */
export async function runNodeProcedure<R extends NodeRecord>(
  procedure: NodeProcedure<R>,
  env: NodeEnv,
  name: string,
  node: NodeView,
  boundary: BoundaryHook = () => {},
): Promise<{ results: StepResult[]; journal: Journal<R, Omit<NodePatch, 'annotations'>>; node: () => NodeView }> {
  const { cluster, clock, report, signal } = env;
  const existing = procedure.read(node);
  let latest = node;
  const journal = new Journal<R, Omit<NodePatch, 'annotations'>>(
    existing ? { ...existing, lastRun: env.opts.runId } : procedure.start(node, env.opts.runId, new Date(clock.now())),
    async (record, also = {}) => {
      latest = await cluster.patchNode(name, { ...also, annotations: procedure.annotations(record) });
    },
    clock,
    (step, at) => boundary(name, procedure.boundaryName(step), at),
  );
  if (existing) report.line(name, `resuming at ${procedure.annotations(existing)[phaseAnnotation] ?? 'the start'} (started by run ${existing.startedBy} at ${existing.startedAt})`);
  await journal.save();
  let current = '';
  const run: NodeRun = {
    name,
    procedure: procedure.name,
    env,
    get node() {
      return latest;
    },
    get record() {
      return journal.record;
    },
    get data() {
      return journal.stepRecord(current)?.data;
    },
    keep: (data) => journal.intent(current, data),
    note: (fields) => journal.note(fields as Partial<R>),
    async cordon() {
      journal.note({ cordonedByUs: true } as Partial<R>);
      await journal.save({ unschedulable: true });
    },
    async patch(patch) {
      latest = await cluster.patchNode(name, patch);
    },
  };
  const results = await runSteps(procedure.steps, {
    subject: name,
    journal,
    // Every write of the record answers with the node as it is then: a step that observes afresh is
    // judged on its intent's write, the others on the run's last write.
    async observe(step) {
      current = step.name;
      return run;
    },
    announce: (step, result) => cluster.recordEvent(latest, 'Normal', procedure.eventReason(step), result.message),
    report,
    clock,
    signal,
    stopped: (step) => new InterruptedError(`${procedure.name} of ${name} stopped before ${step}; the state is recorded on the node`, 'rerun the same command to resume'),
  });
  return { results, journal, node: () => latest };
}

/** The dry run of `procedure` on `node`: each step's description, from where its record says; nothing is written. */
export function describeNodeProcedure<R extends NodeRecord>(procedure: NodeProcedure<R>, env: NodeEnv, node: NodeView): Promise<StepResult[]> {
  const record = procedure.read(node) ?? procedure.start(node, env.opts.runId, new Date(env.clock.now()));
  let current = '';
  const noWrite = () => Promise.reject(new Error('a dry run writes nothing'));
  const run: NodeRun = {
    name: node.name,
    procedure: procedure.name,
    env,
    node,
    record,
    get data() {
      return record.steps[current]?.data;
    },
    keep: noWrite,
    note: () => {},
    cordon: noWrite,
    patch: noWrite,
  };
  return describeSteps(procedure.steps, {
    subject: node.name,
    done: (step) => Boolean(record.steps[step]?.done),
    observe: async (step) => ((current = step.name), run),
    report: env.report,
  });
}
