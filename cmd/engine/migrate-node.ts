// A node's migration (DESIGN.md "The node step machine") as a list of steps the runner runs:
// baseline gate, cordon, drain, label, restart the Cilium agent, restart the node, verify, gate,
// uncordon; then the node is marked migrated. Every step records its intent on the Node before it
// acts and its result after, so a run killed anywhere resumes where it stopped.
import { createHash } from 'node:crypto';
import type { Clock } from '../../lib/clock.js';
import { GateError, roundsVerdict, type Verdict } from '../../lib/connectivity-gate.js';
import { ciliumAgentSelector } from '../../lib/defaults.js';
import { InterruptedError, PreconditionError } from '../../lib/errors.js';
import { initialState, phaseOf, readState, rollbackAnnotation, stateAnnotations, type MigrationStep, type NodeState } from '../../lib/node-state.js';
import { classifyAddress } from '../../lib/overlay.js';
import { pollUntil } from '../../lib/poll.js';
import type { EngineCluster, NodeView } from '../cluster/cluster.js';
import { podsOffCilium, type Gate, type GateResult } from './gate.js';
import { describeNodeProcedure, runNodeProcedure, type NodeProcedure, type NodeRun, type NodeStepOptions } from './node-procedure.js';
import { cordonStep, drainStep, evictAsDrain, refuseBeforeTouching, restartAgentStep, restartNodeStep, uncordonStep, verifyPodStep } from './node-steps.js';
import type { BoundaryHook, EngineReporter, Step, StepResult } from './runner.js';

export { RestartRefusedError, restartRequestId } from './node-steps.js';
export type { BoundaryHook, EngineReporter, StepOutcome, StepResult } from './runner.js';

export interface EngineOptions extends NodeStepOptions {
  /** Evict the pods left on the legacy network after the restart (their controllers recreate them). */
  restartStragglers: boolean;
  timeoutsMs: NodeStepOptions['timeoutsMs'] & { gate: number };
  gate: { rounds: number; intervalMs: number };
  dryRun: boolean;
}

export interface NodeResult {
  node: string;
  result: 'migrated' | 'dry-run';
  steps: StepResult[];
}

/** A gate or verify of `node` that did not pass: the node stays cordoned with its phase recorded. */
export const gateError = (node: string, step: string, result: GateResult) =>
  GateError.of(`${step} for ${node}`, result, 'the node stays cordoned with its phase recorded; fix the cause and rerun to resume');

const eventReason: Record<MigrationStep, string> = {
  'baseline-gate': 'MigrationBaseline',
  cordon: 'MigrationCordon',
  drain: 'MigrationDrain',
  label: 'MigrationLabel',
  'restart-agent': 'MigrationAgentRestart',
  'restart-node': 'MigrationNodeRestart',
  verify: 'MigrationVerify',
  gate: 'MigrationGate',
  uncordon: 'MigrationUncordon',
};

/** Before anything is touched: is the cluster healthy enough to start? What fails already is kept as the baseline. */
function baselineGateStep(gate: Gate): Step<NodeRun> {
  return {
    name: 'baseline-gate',
    describe: () => ({ outcome: 'would-apply', message: 'run the baseline gate before touching anything (what fails already is recorded as the baseline)' }),
    isDone: () => undefined,
    async apply(run) {
      const result = await gate.baseline();
      if (result.verdict !== 'PASS') throw gateError(run.name, 'baseline gate', result);
      // Kept on the node: a resumed run judges the gate against this baseline, not a new one.
      if (result.record) await run.keep(result.record);
      return { outcome: 'applied', message: `PASS (${gate.name}): ${result.reasons.join('; ')}` };
    },
  };
}

/** The label the CiliumNodeConfig selects: from its next start, the node's Cilium agent applies it. */
const labelStep: Step<NodeRun> = {
  name: 'label',
  describe: (run) => (run.node.labels[run.env.opts.labelKey] === 'true'
    ? { outcome: 'not-needed', message: `already labelled ${run.env.opts.labelKey}=true` }
    : { outcome: 'would-apply', message: `label ${run.env.opts.labelKey}=true so the CiliumNodeConfig selects the node` }),
  isDone: (run) => (run.node.labels[run.env.opts.labelKey] === 'true' ? { outcome: 'not-needed', message: `already labelled ${run.env.opts.labelKey}=true` } : undefined),
  async apply(run) {
    await run.patch({ labels: { [run.env.opts.labelKey]: 'true' } });
    return { outcome: 'applied', message: `labelled ${run.env.opts.labelKey}=true` };
  },
};

/** A new pod on the node must get an address inside the node's Cilium pod CIDRs; pods left on the legacy network are named (or evicted). */
function verifyOnCilium(restartStragglers: boolean): Step<NodeRun> {
  return verifyPodStep({
    podName: (node) => `cilium-migrate-verify-${createHash('sha256').update(node).digest('hex').slice(0, 10)}`,
    expectation: 'its IP is inside the node\'s Cilium pod CIDRs',
    async prepare(run) {
      const cidrs = await run.env.cluster.ciliumPodCidrs(run.name);
      if (!cidrs || cidrs.length === 0) {
        throw gateError(run.name, 'verify', { verdict: 'FAIL', reasons: [`CiliumNode ${run.name} has no spec.ipam.podCIDRs: is the Cilium operator running in cluster-pool mode?`] });
      }
      return cidrs;
    },
    async judge(run, ip, cidrs, podName) {
      const { name } = run;
      if (classifyAddress(ip, name, { ciliumNodeCidrs: { [name]: cidrs }, ciliumCidrs: [], nodeAddresses: [] }) !== 'cilium') {
        throw gateError(name, 'verify', { verdict: 'FAIL', reasons: [`a new pod on ${name} got ${ip}, outside its Cilium pod CIDRs ${cidrs.join(', ')}: the CNI config was not switched (is 05-cilium.conflist written? was the agent restarted after labelling?)`] });
      }
      const stragglers = podsOffCilium((await run.env.cluster.listNodePods(name)).filter((p) => p.name !== podName), cidrs);
      let message = `a new pod got ${ip}, inside ${cidrs.join(', ')}`;
      if (stragglers.length === 0) return { outcome: 'applied', message };
      const list = stragglers.map((p) => `${p.namespace}/${p.name} (${p.podIP})`).join(', ');
      if (!restartStragglers) {
        run.env.report.line(name, `verify: warning: ${stragglers.length} pods still on the legacy network: ${list}`);
        return { outcome: 'applied', message: `${message}; pods still on the legacy network (rerun with --restart-stragglers to restart them): ${list}` };
      }
      // Through the Eviction API, PodDisruptionBudgets honoured, as the drain: never a plain delete.
      const managed = stragglers.filter((p) => p.controller);
      const asDrainPods = managed.map((p) => ({ namespace: p.namespace, name: p.name, uid: p.uid, phase: p.phase, controller: p.controller, mirror: false, emptyDir: false }));
      await evictAsDrain(run, asDrainPods, { ...run.env.opts.drain, disableEviction: false, podSelector: undefined, timeoutMs: run.env.opts.timeoutsMs.verify }, 'verify: evicting stragglers:');
      message += `; evicted pods left on the legacy network (their controllers recreate them): ${managed.map((p) => `${p.namespace}/${p.name} (${p.podIP})`).join(', ')}`;
      const unmanaged = stragglers.filter((p) => !p.controller);
      if (unmanaged.length) run.env.report.line(name, `verify: warning: left alone (no controller would recreate them): ${unmanaged.map((p) => `${p.namespace}/${p.name}`).join(', ')}`);
      return { outcome: 'applied', message };
    },
  });
}

/** The gate with the node in focus: `rounds` passes in a row, `intervalMs` apart, within `timeoutMs`, on evidence since the node's last change. */
function gateStep(gate: Gate, o: { rounds: number; intervalMs: number; timeoutMs: number }): Step<NodeRun> {
  return {
    name: 'gate',
    describe: (run) => ({ outcome: 'would-apply', message: `pass the gate ${o.rounds} times in a row with ${run.name} in focus` }),
    isDone: () => undefined,
    async apply(run) {
      const { clock, signal, report } = run.env;
      const steps = run.record.steps;
      // Evidence counts from the node's last change on: its restart, else the agent's.
      const since = new Date(steps['restart-node']?.done ?? steps['restart-agent']?.done ?? run.record.startedAt);
      const baseline = steps['baseline-gate']?.data;
      const history: Verdict[] = [];
      let last: GateResult = { verdict: 'UNKNOWN', reasons: ['the gate has not run yet'] };
      const passed = await pollUntil(async () => {
        last = await gate.check(run.node, since, baseline);
        history.push(last.verdict);
        const { verdict, streak } = roundsVerdict(history, o.rounds);
        report.status(run.name, `gate: ${last.verdict} (${streak}/${o.rounds} passes in a row)`);
        return verdict === 'PASS' ? streak : undefined;
      }, {
        clock, deadline: clock.now() + o.timeoutMs, intervalMs: o.intervalMs, signal,
        stopped: () => new InterruptedError(`stopped during the gate of ${run.name}; the state is recorded on the node`, 'rerun the same command to resume'),
        timedOut: () => gateError(run.name, 'gate', last),
      });
      return { outcome: 'applied', message: `PASS ${passed} times in a row (${gate.name}): ${last.reasons.join('; ')}` };
    },
  };
}

/** The migration of a node: its steps, and its record in `cilium-migrate.io/state`. */
export function migrationProcedure(gate: Gate, opts: EngineOptions): NodeProcedure<NodeState> {
  return {
    name: 'migration',
    steps: [
      baselineGateStep(gate),
      cordonStep,
      drainStep,
      labelStep,
      restartAgentStep('it applies the CiliumNodeConfig at start'),
      restartNodeStep,
      verifyOnCilium(opts.restartStragglers),
      gateStep(gate, { rounds: opts.gate.rounds, intervalMs: opts.gate.intervalMs, timeoutMs: opts.timeoutsMs.gate }),
      uncordonStep,
    ],
    read: (node) => readState(node.annotations),
    start: (node, runId, now) => initialState(runId, now, node.unschedulable, node.bootID),
    annotations: stateAnnotations,
    eventReason: (step) => eventReason[step as MigrationStep],
    boundaryName: (step) => step,
  };
}

/** Refusals before anything is touched. */
async function checkPreconditions(cluster: EngineCluster, node: NodeView, opts: EngineOptions, clock: Clock): Promise<void> {
  if (node.annotations[rollbackAnnotation]) {
    throw new PreconditionError(`a rollback of ${node.name} is under way (annotation ${rollbackAnnotation})`, `finish it first: kubectl cilium-migrate rollback ${node.name}`);
  }
  const configs = await cluster.nodeConfigsSelecting(opts.ciliumNamespace, { ...node.labels, [opts.labelKey]: 'true' });
  if (configs.length === 0) {
    throw new PreconditionError(
      `no CiliumNodeConfig in ${opts.ciliumNamespace} selects nodes labelled ${opts.labelKey}=true, so labelling ${node.name} would change nothing`,
      'apply one first: kubectl cilium-migrate prepare, or kubectl apply --server-side -f manifests/ciliumnodeconfig.yaml',
    );
  }
  // A pod the drain would refuse stops the run here, before the node is cordoned (a dry run says it instead).
  if (!opts.dryRun) await refuseBeforeTouching({ cluster, opts, clock }, node.name, Boolean(readState(node.annotations)?.steps.drain?.done));
  const agents = (await cluster.listNodePods(node.name, ciliumAgentSelector)).filter((p) => p.namespace === opts.ciliumNamespace);
  if (agents.length === 0 && !node.labels[opts.labelKey]) {
    throw new PreconditionError(
      `no Cilium agent pod (${ciliumAgentSelector}) runs on ${node.name} in ${opts.ciliumNamespace}`,
      'install Cilium in migration mode first (kubectl cilium-migrate values --phase initial), then rerun',
    );
  }
}

/** Migrates one node; returns the step results or throws a typed error with the state recorded. */
export async function migrateNode(
  cluster: EngineCluster,
  gate: Gate,
  name: string,
  opts: EngineOptions,
  clock: Clock,
  report: EngineReporter,
  signal?: AbortSignal,
  boundary: BoundaryHook = () => {},
): Promise<NodeResult> {
  const node = await cluster.getNode(name);
  const existing = readState(node.annotations);
  if (phaseOf(existing) === 'migrated') {
    throw new PreconditionError(`node ${name} is already migrated (at ${existing?.migratedAt})`, 'nothing to do; `status` shows every node\'s phase');
  }
  await checkPreconditions(cluster, node, opts, clock);
  const procedure = migrationProcedure(gate, opts);
  const env = { cluster, opts, clock, report, signal };
  if (opts.dryRun) return { node: name, result: 'dry-run', steps: await describeNodeProcedure(procedure, env, node) };

  const { results, journal, node: latest } = await runNodeProcedure(procedure, env, name, node, boundary);
  // The last step's done on its own first: "migrated" is recorded only once every step is.
  await journal.flush();
  journal.note({ migratedAt: new Date(clock.now()).toISOString() });
  await journal.save();
  await cluster.recordEvent(latest(), 'Normal', 'MigrationComplete', `migrated to Cilium by run ${opts.runId}`);
  report.line(name, 'migrated');
  return { node: name, result: 'migrated', steps: results };
}
