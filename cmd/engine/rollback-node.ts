// Returns one node to the legacy CNI (REFERENCE.md section 1: Cilium's guide has no rollback), as a
// list of steps the runner runs, sharing the migration's: cordon, drain, remove the migration label,
// restart the Cilium agent and wait for the new one (it no longer applies the node config) to be
// Ready, only then delete Cilium's CNI config and restore the renamed `*.cilium_bak` files on the
// host, restart the node, check that a new pod gets a legacy address, uncordon if we cordoned. The
// agent goes first because since 1.14 an agent that applies the node config (cni-exclusive,
// write-cni-conf-when-ready) watches /etc/cni/net.d and renames restored files back at once. Every
// step records its intent on the Node first (annotation `cilium-migrate.io/rollback`), so a killed
// rollback resumes; at the end the node's migration records are removed and it is `pending` again.
import type { Clock } from '../../lib/clock.js';
import { cidrContains } from '../../lib/cidr.js';
import { PreconditionError } from '../../lib/errors.js';
import { clearedAnnotations, needsRollback, readRollback, readState, restoredAfterAgent, rollbackAnnotations, rollbackSteps, type RollbackState, type RollbackStep } from '../../lib/node-state.js';
import { classifyAddress } from '../../lib/overlay.js';
import type { EngineCluster, NodeView } from '../cluster/cluster.js';
import { hostCommandPodName, restoreLegacyCniScript, runHostScript } from './host-command.js';
import { gateError } from './migrate-node.js';
import { describeNodeProcedure, runNodeProcedure, type NodeProcedure, type NodeRun, type NodeStepOptions } from './node-procedure.js';
import { cordonStep, drainStep, refuseBeforeTouching, restartAgentStep, restartNodeStep, uncordonStep, verifyPodStep } from './node-steps.js';
import type { BoundaryHook, EngineReporter, Step, StepResult } from './runner.js';

export interface RollbackOptions extends NodeStepOptions {
  /** Image of the privileged pod that restores the CNI files (needs sh, and nsenter). */
  hostImage: string;
  /** Cilium's configured cluster-pool CIDRs, for a node whose CiliumNode has none. */
  ciliumClusterCidrs?: string[] | undefined;
  timeoutsMs: NodeStepOptions['timeoutsMs'] & { hostCommand: number };
  dryRun?: boolean | undefined;
}

export interface RollbackResult {
  node: string;
  result: 'rolled-back' | 'dry-run';
  steps: StepResult[];
}

/** The migration label goes: the CiliumNodeConfig no longer selects the node. */
const unlabelStep: Step<NodeRun> = {
  name: 'unlabel',
  describe: (run) => (run.node.labels[run.env.opts.labelKey] === undefined
    ? { outcome: 'not-needed', message: `no ${run.env.opts.labelKey} label` }
    : { outcome: 'would-apply', message: `remove ${run.env.opts.labelKey} so the CiliumNodeConfig no longer selects the node` }),
  isDone: (run) => (run.node.labels[run.env.opts.labelKey] === undefined ? { outcome: 'not-needed', message: `no ${run.env.opts.labelKey} label` } : undefined),
  async apply(run) {
    await run.patch({ labels: { [run.env.opts.labelKey]: null } });
    return { outcome: 'applied', message: `removed ${run.env.opts.labelKey}: the CiliumNodeConfig no longer selects the node` };
  },
};

/**
 * On the host, through a privileged pod: Cilium's CNI config goes, the legacy ones it renamed come
 * back. After the agent restart: the agent that applied the node config would rename them back.
 */
function restoreCniStep(hostImage: string, timeoutMs: number): Step<NodeRun> {
  return {
    name: 'restore-cni',
    describe: (run) => ({ outcome: 'would-apply', message: `run a privileged pod of ${hostImage} on ${run.name} that deletes 05-cilium.conflist and restores the *.cilium_bak files${redoNote(run)}` }),
    isDone: () => undefined,
    // The mark tells a resumed run this restore came after the agent restart (readRollback redoes one without it).
    intentData: async (run) => ({ [restoredAfterAgent]: true, ...(run.data?.redo ? { redo: run.data.redo } : {}) }),
    async apply(run) {
      const { cluster, opts, clock, signal } = run.env;
      const pod = await runHostScript(cluster, { namespace: opts.ciliumNamespace, node: run.name, purpose: 'rollback', request: opts.runId, image: hostImage, script: restoreLegacyCniScript, timeoutMs, pollMs: opts.pollMs }, clock, signal);
      return { outcome: 'applied', message: `deleted 05-cilium.conflist and restored the *.cilium_bak files (pod ${pod})${redoNote(run)}` };
    },
  };
}

/** Why a restore recorded done runs again (a record of the earlier order), if it does. */
const redoNote = (run: NodeRun) => (typeof run.data?.redo === 'string' ? `; again: ${run.data.redo}` : '');

/** A new pod on the node must get an address on the legacy network. */
function verifyOnLegacy(ciliumClusterCidrs: string[]): Step<NodeRun> {
  return verifyPodStep({
    podName: (node) => hostCommandPodName('rollback-verify', node, ''),
    expectation: 'its IP is on the legacy network, outside the node\'s Cilium pod CIDRs',
    prepare: async (run) => (await run.env.cluster.ciliumPodCidrs(run.name)) ?? [],
    async judge(run, ip, cilium) {
      const legacy = (await run.env.cluster.getNode(run.name)).podCIDRs;
      const verdict = rollbackVerdict(ip, run.name, { ciliumNodeCidrs: cilium, ciliumClusterCidrs, nodePodCidrs: legacy });
      if (!verdict.ok) throw gateError(run.name, 'rollback verify', { verdict: 'FAIL', reasons: [verdict.reason] });
      return { outcome: 'applied', message: verdict.message };
    },
  });
}

/** A fresh rollback record: only a cordon the stopped migration made counts as ours; any other (from before the migration, or made after it finished) stays. */
function startRollback(node: NodeView, runId: string, now: Date): RollbackState {
  const migration = readState(node.annotations);
  const midMigrationCordon = migration !== undefined && !migration.migratedAt && migration.cordonedByUs && !migration.steps.uncordon?.done && node.unschedulable;
  return {
    v: 1,
    startedBy: runId,
    lastRun: runId,
    startedAt: now.toISOString(),
    wasUnschedulable: midMigrationCordon ? migration!.wasUnschedulable : node.unschedulable,
    cordonedByUs: midMigrationCordon,
    steps: {},
  };
}

const eventReason = (step: string) => `Rollback${step.replace(/(^|-)(\w)/g, (_m, _d, c: string) => c.toUpperCase())}`;

/** The rollback of a node: its steps (most of them the migration's), and its record in `cilium-migrate.io/rollback`. */
export function rollbackProcedure(opts: RollbackOptions): NodeProcedure<RollbackState> {
  const steps: Record<RollbackStep, Step<NodeRun>> = {
    cordon: cordonStep,
    drain: drainStep,
    unlabel: unlabelStep,
    'restart-agent': restartAgentStep('it no longer applies the CiliumNodeConfig, so it leaves restored CNI files alone', '; it no longer applies the CiliumNodeConfig on this node'),
    'restore-cni': restoreCniStep(opts.hostImage, opts.timeoutsMs.hostCommand),
    'restart-node': restartNodeStep,
    verify: verifyOnLegacy(opts.ciliumClusterCidrs ?? []),
    uncordon: uncordonStep,
  };
  return {
    name: 'rollback',
    // In the order of rollbackSteps (lib/node-state.ts), which status and the phases follow too.
    steps: rollbackSteps.map((s) => steps[s]),
    read: (node) => readRollback(node.annotations),
    start: startRollback,
    annotations: rollbackAnnotations,
    eventReason,
    boundaryName: (step) => `rollback-${step}`,
  };
}

/** Rolls one node back to the legacy CNI; returns the step results or throws a typed error with the state recorded. */
export async function rollbackNode(cluster: EngineCluster, name: string, opts: RollbackOptions, clock: Clock, report: EngineReporter, signal?: AbortSignal, boundary: BoundaryHook = () => {}): Promise<RollbackResult> {
  const node = await cluster.getNode(name);
  if (!needsRollback(node, opts.labelKey)) {
    throw new PreconditionError(`node ${name} was never migrated (no ${opts.labelKey} label, no migration record): nothing to roll back`);
  }
  const procedure = rollbackProcedure(opts);
  const env = { cluster, opts, clock, report, signal };
  if (opts.dryRun) return { node: name, result: 'dry-run', steps: await describeNodeProcedure(procedure, env, node) };
  // A pod the drain would refuse stops the rollback here, before the node is cordoned.
  await refuseBeforeTouching(env, name, Boolean(readRollback(node.annotations)?.steps.drain?.done));

  const { results, journal, node: latest } = await runNodeProcedure(procedure, env, name, node, boundary);
  await journal.flush();
  // Back to where it started: no migration records, so `run` treats it as any pending node.
  await cluster.patchNode(name, { annotations: clearedAnnotations });
  await cluster.recordEvent(latest(), 'Normal', 'RollbackComplete', `returned to the legacy CNI by run ${opts.runId}`);
  report.line(name, 'rolled back to the legacy CNI');
  return { node: name, result: 'rolled-back', steps: results };
}

/**
 * Whether a new pod's address shows the node back on the legacy CNI: on the legacy network means
 * outside the node's Cilium pod CIDRs (lib/overlay.ts), whatever range the legacy CNI uses (Calico's
 * pools and AWS-CNI's VPC addresses are not the node's spec.podCIDR). Pure.
 */
export function rollbackVerdict(ip: string, node: string, nets: { ciliumNodeCidrs: string[]; ciliumClusterCidrs: string[]; nodePodCidrs: string[] }): { ok: true; message: string } | { ok: false; reason: string } {
  const overlay = classifyAddress(ip, node, { ciliumNodeCidrs: { [node]: nets.ciliumNodeCidrs }, ciliumCidrs: nets.ciliumClusterCidrs, nodeAddresses: [] });
  const cilium = nets.ciliumNodeCidrs.length ? nets.ciliumNodeCidrs : nets.ciliumClusterCidrs;
  if (overlay === 'cilium') return { ok: false, reason: `a new pod on ${node} got ${ip}, inside its Cilium pod CIDRs ${cilium.join(', ')}: is 05-cilium.conflist still on the host? was the node restarted?` };
  if (overlay !== 'legacy') return { ok: false, reason: `a new pod on ${node} got "${ip}", which is no pod address` };
  const inside = nets.nodePodCidrs.filter((c) => cidrContains(c, ip));
  return { ok: true, message: inside.length ? `a new pod got ${ip}, inside the legacy ${inside.join(', ')}` : `a new pod got ${ip}, on the legacy network (outside the Cilium pod CIDRs ${cilium.join(', ') || 'of the node'})` };
}
