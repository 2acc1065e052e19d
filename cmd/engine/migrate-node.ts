// The node step machine (DESIGN.md): baseline gate, cordon, drain, label, restart the Cilium agent,
// restart the node, verify, gate, uncordon, mark migrated. Each step looks at the cluster first,
// records its intent on the Node before it acts and its result after, and does nothing when it is
// done already, so a run killed anywhere resumes where it stopped.
import { createHash } from 'node:crypto';
import { GateError, roundsVerdict, type Verdict } from '../../lib/connectivity-gate.js';
import { ExitCode, InterruptedError, PreconditionError, TimeoutError } from '../../lib/errors.js';
import { classifyAddress } from '../../lib/overlay.js';
import { pollUntil } from '../../lib/poll.js';
import { ciliumAgentSelector } from '../../lib/defaults.js';
import type { EngineCluster, NodePatch, NodeView, PodView } from '../cluster/cluster.js';
import type { DrainPod } from '../cluster/drain-filter.js';
import type { Clock } from '../../lib/clock.js';
import { drainNode, DrainRefusedError, evictPods, planDrain, podKey, type DrainOptions, type DrainProgress } from './drain.js';
import { podsOffCilium, type Gate, type GateResult } from './gate.js';
import { restartBaseline, restartCompletion, RestartRequestError, type NodeRestarter, type RestartBaseline } from './restart.js';
import { initialState, migrationSteps as stepNames, phaseOf, readState, rollbackAnnotation, stateAnnotations, type MigrationStep as StepName, type NodeState } from '../../lib/node-state.js';

export interface EngineOptions {
  runId: string;
  /** The label the CiliumNodeConfig selects on. */
  labelKey: string;
  ciliumNamespace: string;
  drain: DrainOptions;
  restarter: NodeRestarter;
  /** Delete pods left on the legacy CIDR after the restart (their controllers recreate them). */
  restartStragglers: boolean;
  /** Where the short-lived verify pod runs, and its image. */
  verifyNamespace: string;
  verifyImage: string;
  timeoutsMs: { agentRestart: number; nodeRestart: number; verify: number; gate: number };
  gate: { rounds: number; intervalMs: number };
  /** Between observations while waiting. */
  pollMs: number;
  dryRun: boolean;
}

export type StepOutcome = 'done-before' | 'applied' | 'would-apply' | 'not-needed';

export interface StepResult {
  step: StepName;
  outcome: StepOutcome;
  message: string;
  durationMs: number;
}

export interface NodeResult {
  node: string;
  result: 'migrated' | 'dry-run';
  steps: StepResult[];
}

/** What the engine tells the person running it. */
export interface EngineReporter {
  /** A line of the log: a step started, finished, or something worth knowing. */
  line(node: string, text: string): void;
  /** A live status (drain progress); a terminal redraws it in place. `key` says what changed in substance. */
  status(node: string, text: string, key?: string): void;
}

/** Called at every step boundary; tests use it to kill the run at exact points. */
export type BoundaryHook = (node: string, step: string, at: 'intent' | 'done') => void;

/** A gate or verify of `node` that did not pass: the node stays cordoned with its phase recorded. */
export const gateError = (node: string, step: string, result: GateResult) =>
  GateError.of(`${step} for ${node}`, result, 'the node stays cordoned with its phase recorded; fix the cause and rerun to resume');

const eventReason: Record<StepName, string> = {
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
  let node = await cluster.getNode(name);
  const existing = readState(node.annotations);
  if (phaseOf(existing) === 'migrated') {
    throw new PreconditionError(`node ${name} is already migrated (at ${existing?.migratedAt})`, 'nothing to do; `status` shows every node\'s phase');
  }
  await checkPreconditions(cluster, node, opts);

  if (opts.dryRun) return dryRun(cluster, node, existing, opts, clock, report);

  let state: NodeState;
  if (existing) {
    state = { ...existing, lastRun: opts.runId };
    report.line(name, `resuming at ${phaseOf(existing)} (started by run ${existing.startedBy} at ${existing.startedAt})`);
  } else {
    state = initialState(opts.runId, new Date(clock.now()), node.unschedulable, node.bootID);
  }
  // A step's "done" is written together with the next step's intent: one patch instead of two. A
  // run killed in between redoes that step, which finds it done already (every step looks at the
  // cluster first) and changes nothing. The "done" boundary of a step is when its done is written.
  let unsavedDone: StepName[] = [];
  // `also` rides in the same patch as the state: a cordon and the record that we made it land
  // together or not at all, so a resumed run never mistakes an admin's cordon for ours.
  const save = async (also: Omit<NodePatch, 'annotations'> = {}) => {
    node = await cluster.patchNode(name, { ...also, annotations: stateAnnotations(state) });
    const saved = unsavedDone;
    unsavedDone = [];
    for (const s of saved) boundary(name, s, 'done');
  };
  await save();

  const results: StepResult[] = [];
  const checkStop = () => {
    if (signal?.aborted) throw new InterruptedError(`stopped before ${phaseOf(state)} on ${name}; the state is recorded on the node`, 'rerun the same command to resume');
  };

  for (const step of stepNames) {
    checkStop();
    const started = clock.now();
    const record = state.steps[step] ?? {};
    if (record.done) {
      results.push({ step, outcome: 'done-before', message: 'done in an earlier run', durationMs: 0 });
      continue;
    }
    const intent = async (data?: Record<string, unknown>, extra: Partial<NodeState> = {}) => {
      const first = !state.steps[step]?.intent;
      const previous = state.steps[step] ?? {};
      state = { ...state, ...extra, steps: { ...state.steps, [step]: { ...previous, intent: previous.intent ?? new Date(clock.now()).toISOString(), ...(data ? { data } : {}) } } };
      await save();
      if (first || data) boundary(name, step, 'intent');
    };
    report.line(name, `${step}: started`);
    const cordon = async () => {
      state = { ...state, cordonedByUs: true };
      await save({ unschedulable: true });
    };
    const { outcome, message } = await runStep(step, { cluster, gate, opts, clock, report, signal, name, getNode: () => node, state: () => state, intent, cordon, record });
    state = { ...state, steps: { ...state.steps, [step]: { ...state.steps[step], done: new Date(clock.now()).toISOString() } } };
    await cluster.recordEvent(node, 'Normal', eventReason[step], message);
    unsavedDone.push(step);
    const durationMs = clock.now() - started;
    results.push({ step, outcome, message, durationMs });
    report.line(name, `${step}: ${message} (${(durationMs / 1000).toFixed(1)}s)`);
  }

  // The last step's done on its own first: "migrated" is recorded only once every step is.
  if (unsavedDone.length > 0) await save();
  state = { ...state, migratedAt: new Date(clock.now()).toISOString() };
  await save();
  await cluster.recordEvent(node, 'Normal', 'MigrationComplete', `migrated to Cilium by run ${opts.runId}`);
  report.line(name, 'migrated');
  return { node: name, result: 'migrated', steps: results };
}

async function checkPreconditions(cluster: EngineCluster, node: NodeView, opts: EngineOptions): Promise<void> {
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
  if (!readState(node.annotations)?.steps.drain?.done) {
    // A pod the drain would refuse stops the run here, before the node is cordoned.
    const refused = (await planDrain(cluster, node.name, opts.drain, new Date())).filter((d) => d.action === 'refuse');
    if (refused.length > 0 && !opts.dryRun) throw new DrainRefusedError(node.name, refused);
    // --pod-selector leaves the other pods where they are, and the restart would stop them
    // without their PodDisruptionBudgets: refused here, before anything is touched.
    if (opts.drain.podSelector && opts.restarter.method !== 'none' && !opts.dryRun) {
      const selected = new Set((await planDrain(cluster, node.name, opts.drain, new Date())).map((d) => d.pod.uid));
      const unselected = (await planDrain(cluster, node.name, { ...opts.drain, podSelector: undefined }, new Date())).filter((d) => d.action === 'evict' && !selected.has(d.pod.uid));
      if (unselected.length) {
        throw new PreconditionError(
          `--pod-selector ${opts.drain.podSelector} leaves ${unselected.length} pod${unselected.length === 1 ? '' : 's'} on ${node.name} that the restart (--restart ${opts.restarter.method}) would stop without their PodDisruptionBudgets: ${unselected.slice(0, 10).map((d) => podKey(d.pod)).join(', ')}${unselected.length > 10 ? ', ...' : ''}`,
          'nothing was changed; drop --pod-selector (every pod is evicted), or use --restart none',
        );
      }
    }
  }
  const agents = (await cluster.listNodePods(node.name, ciliumAgentSelector)).filter((p) => p.namespace === opts.ciliumNamespace);
  if (agents.length === 0 && !node.labels[opts.labelKey]) {
    throw new PreconditionError(
      `no Cilium agent pod (${ciliumAgentSelector}) runs on ${node.name} in ${opts.ciliumNamespace}`,
      'install Cilium in migration mode first (kubectl cilium-migrate values --phase initial), then rerun',
    );
  }
}

async function dryRun(cluster: EngineCluster, node: NodeView, state: NodeState | undefined, opts: EngineOptions, clock: Clock, report: EngineReporter): Promise<NodeResult> {
  const steps: StepResult[] = [];
  const add = (step: StepName, outcome: StepOutcome, message: string) => {
    steps.push({ step, outcome, message, durationMs: 0 });
    report.line(node.name, `${step}: ${outcome === 'would-apply' ? 'would ' : ''}${message}`);
  };
  for (const step of stepNames) {
    if (state?.steps[step]?.done) {
      add(step, 'done-before', 'done in an earlier run');
      continue;
    }
    switch (step) {
      case 'baseline-gate':
        add(step, 'would-apply', 'run the baseline gate before touching anything (what fails already is recorded as the baseline)');
        break;
      case 'cordon':
        if (node.unschedulable) add(step, 'not-needed', 'already cordoned by someone else; it will stay cordoned afterwards');
        else add(step, 'would-apply', `cordon ${node.name} (set spec.unschedulable)`);
        break;
      case 'drain': {
        const plan = await planDrain(cluster, node.name, opts.drain, new Date(clock.now()));
        const evict = plan.filter((d) => d.action === 'evict').map((d) => podKey(d.pod));
        const refuse = plan.filter((d) => d.action === 'refuse');
        const text = `evict ${evict.length} pod${evict.length === 1 ? '' : 's'}${evict.length ? `: ${evict.join(', ')}` : ''}` +
          (refuse.length ? `; would REFUSE (nothing evicted) because of ${refuse.map((d) => `${podKey(d.pod)} (${d.reason})`).join(', ')}` : '');
        add(step, 'would-apply', text);
        break;
      }
      case 'label':
        if (node.labels[opts.labelKey] === 'true') add(step, 'not-needed', `already labelled ${opts.labelKey}=true`);
        else add(step, 'would-apply', `label ${opts.labelKey}=true so the CiliumNodeConfig selects the node`);
        break;
      case 'restart-agent':
        add(step, 'would-apply', `delete the Cilium agent pod on ${node.name} and wait for a new one to be Ready (it applies the CiliumNodeConfig at start)`);
        break;
      case 'restart-node':
        add(step, opts.restarter.method === 'none' ? 'not-needed' : 'would-apply', opts.restarter.method === 'none' ? 'no restart (--restart none)' : `restart the node (--restart ${opts.restarter.method}) and wait until it is back`);
        break;
      case 'verify':
        add(step, 'would-apply', `start a pod on ${node.name} and check its IP is inside the node's Cilium pod CIDRs`);
        break;
      case 'gate':
        add(step, 'would-apply', `pass the gate ${opts.gate.rounds} times in a row with ${node.name} in focus`);
        break;
      case 'uncordon':
        if (node.unschedulable && !state?.cordonedByUs) add(step, 'not-needed', 'leave the node cordoned: it was cordoned by someone else');
        else add(step, 'would-apply', `uncordon ${node.name}`);
        break;
    }
  }
  return { node: node.name, result: 'dry-run', steps };
}

interface StepContext {
  cluster: EngineCluster;
  gate: Gate;
  opts: EngineOptions;
  clock: Clock;
  report: EngineReporter;
  signal: AbortSignal | undefined;
  name: string;
  getNode: () => NodeView;
  state: () => NodeState;
  intent: (data?: Record<string, unknown>, extra?: Partial<NodeState>) => Promise<void>;
  /** Cordons the node and records that we did, in one patch. */
  cordon: () => Promise<void>;
  record: { intent?: string; data?: Record<string, unknown> };
}

async function runStep(step: StepName, ctx: StepContext): Promise<{ outcome: StepOutcome; message: string }> {
  const { cluster, opts, clock, name } = ctx;
  switch (step) {
    case 'baseline-gate': {
      await ctx.intent();
      const result = await ctx.gate.baseline();
      if (result.verdict !== 'PASS') throw gateError(name, 'baseline gate', result);
      // Kept on the node: a resumed run judges the gate against this baseline, not a new one.
      if (result.record) await ctx.intent(result.record);
      return { outcome: 'applied', message: `PASS (${ctx.gate.name}): ${result.reasons.join('; ')}` };
    }
    case 'cordon': {
      // Only our own change from schedulable to unschedulable, recorded in the same patch, makes
      // the cordon ours; a node found cordoned now (first run or resume) is its admin's.
      const fresh = await cluster.getNode(name);
      if (fresh.unschedulable && ctx.state().cordonedByUs) return { outcome: 'applied', message: 'cordoned' };
      if (fresh.unschedulable) {
        await ctx.intent(undefined, { wasUnschedulable: true, cordonedByUs: false });
        return { outcome: 'not-needed', message: 'already cordoned by someone else; it stays cordoned after the migration' };
      }
      await ctx.intent();
      await ctx.cordon();
      return { outcome: 'applied', message: 'cordoned' };
    }
    case 'drain': {
      await ctx.intent();
      await ensureCordoned(ctx, 'drain');
      const drained = await drainNode(cluster, name, opts.drain, clock, (p: DrainProgress) => ctx.report.status(name, drainStatus(p), `${p.phase}|${Math.ceil(p.left / 10)}|${p.blocked.map((b) => b.pod).join(',')}`), ctx.signal);
      for (const w of drained.warnings) ctx.report.line(name, `drain: warning: ${w.pod}: ${w.reason}`);
      return { outcome: 'applied', message: `evicted ${drained.evicted.length} pod${drained.evicted.length === 1 ? '' : 's'}; ${drained.skipped.length} stay (DaemonSet or mirror pods)` };
    }
    case 'label': {
      if (ctx.getNode().labels[opts.labelKey] === 'true') return { outcome: 'not-needed', message: `already labelled ${opts.labelKey}=true` };
      await ctx.intent();
      await cluster.patchNode(name, { labels: { [opts.labelKey]: 'true' } });
      return { outcome: 'applied', message: `labelled ${opts.labelKey}=true` };
    }
    case 'restart-agent': {
      const current = await agentPods(ctx);
      // The UIDs to replace are the ones seen when the intent was first recorded.
      const old = (ctx.record.data?.oldUids as string[] | undefined) ?? current.map((p) => p.uid);
      if (!ctx.record.data) await ctx.intent({ oldUids: old });
      for (const p of current) if (old.includes(p.uid)) await cluster.deletePodByUid(p.namespace, p.name, p.uid);
      const fresh = await waitFor(ctx, `a new Ready Cilium agent pod on ${name}`, opts.timeoutsMs.agentRestart, async () => {
        const pods = await agentPods(ctx);
        return pods.find((p) => !old.includes(p.uid) && p.ready);
      });
      return { outcome: 'applied', message: `Cilium agent pod replaced (${fresh.name} Ready)` };
    }
    case 'restart-node': {
      if (opts.restarter.method === 'none') {
        await ctx.intent();
        return { outcome: 'not-needed', message: 'no node restart (--restart none)' };
      }
      // Intent (the baseline) is recorded before the request and `requested` after it, whatever the
      // request's outcome: a run killed in between requests the restart again (with the same request
      // id, so a reboot pod already created counts as the request), and a rerun never asks twice.
      let baseline = ctx.record.data?.baseline as (Omit<RestartBaseline, 'requestedAt'> & { requestedAt: string }) | undefined;
      const previous = ctx.record.data as { requested?: string; requestFailure?: string } | undefined;
      let failure = previous?.requestFailure;
      if (!previous?.requested) {
        if (!ctx.record.intent) await ctx.intent();
        const cleared = await clearBeforeRestart(ctx);
        if (!baseline) {
          const b = restartBaseline(ctx.getNode(), await cluster.listNodePods(name), new Date(clock.now()));
          baseline = { ...b, requestedAt: b.requestedAt.toISOString() };
          await ctx.intent({ baseline });
        }
        const request = await opts.restarter.request(ctx.getNode(), restartRequestId(ctx.state(), baseline.requestedAt));
        failure = request.failure;
        await ctx.intent({ baseline, requested: new Date(clock.now()).toISOString(), ...(failure ? { requestFailure: failure } : {}) });
        if (cleared) ctx.report.line(name, `restart-node: ${cleared}`);
        if (failure && request.notRun) {
          throw new RestartRequestError(`${failure}: the node was not restarted`, ExitCode.precondition, `the request is recorded and a rerun does not repeat it: restart ${name} by hand (or fix the command and run it yourself), then rerun to resume`);
        }
        if (failure) ctx.report.line(name, `restart-node: warning: ${failure}; waiting for ${name} to come back all the same (ssh, for one, exits 255 when the host goes down)`);
      } else {
        ctx.report.line(name, `restart-node: the restart was requested at ${previous.requested}${failure ? ` (${failure})` : ''}; waiting for the node to come back`);
      }
      const before: RestartBaseline = { ...baseline!, requestedAt: new Date(baseline!.requestedAt) };
      let how: string;
      try {
        how = await waitFor(ctx, `${name} to come back from its restart`, opts.timeoutsMs.nodeRestart, async () =>
          restartCompletion(before, await cluster.getNode(name), await cluster.listNodePods(name)),
        );
      } catch (err) {
        if (err instanceof TimeoutError && failure) {
          throw new RestartRequestError(`${failure}, and ${name} did not come back within ${Math.round(opts.timeoutsMs.nodeRestart / 1000)}s`, ExitCode.timeout, `the request is recorded and a rerun does not repeat it: restart ${name} by hand, then rerun to resume`);
        }
        throw err;
      }
      await opts.restarter.cleanup?.(ctx.getNode(), restartRequestId(ctx.state(), baseline!.requestedAt)).catch(() => {});
      return { outcome: 'applied', message: `restarted (${opts.restarter.method}): ${how}` };
    }
    case 'verify': {
      await ctx.intent();
      return verify(ctx);
    }
    case 'gate': {
      await ctx.intent();
      // Evidence counts from the node's last change on: its restart, else the agent's.
      const steps = ctx.state().steps;
      const since = new Date(steps['restart-node']?.done ?? steps['restart-agent']?.done ?? ctx.state().startedAt);
      return gateRounds(ctx, since, ctx.state().steps['baseline-gate']?.data);
    }
    case 'uncordon': {
      if (!ctx.state().cordonedByUs) return { outcome: 'not-needed', message: 'left cordoned: it was cordoned by someone else, not by this migration' };
      await ctx.intent();
      await cluster.patchNode(name, { unschedulable: false });
      return { outcome: 'applied', message: 'uncordoned' };
    }
  }
}

/** The name of a restart request, the same on every resume of the run that started the node. */
export const restartRequestId = (state: NodeState, requestedAt: string) => `${state.startedBy}@${requestedAt}`;

const toEvictable = (p: PodView): DrainPod => ({ namespace: p.namespace, name: p.name, uid: p.uid, phase: p.phase, controller: p.controller, mirror: false, emptyDir: false });

/**
 * Cordons the node again if someone made it schedulable since the cordon step (a resumed run must
 * not drain or restart a node new pods can land on); that cordon is ours.
 */
async function ensureCordoned(ctx: StepContext, step: StepName): Promise<void> {
  if ((await ctx.cluster.getNode(ctx.name)).unschedulable) return;
  await ctx.cordon();
  ctx.report.line(ctx.name, `${step}: ${ctx.name} had been made schedulable again; cordoned it again`);
}

/** The restart is refused: something evictable is on the node. Nothing was restarted. */
export class RestartRefusedError extends PreconditionError {
  constructor(node: string, reason: string) {
    super(`not restarting ${node}: ${reason}`, 'the node stays cordoned and nothing was restarted; rerun to resume once they are gone');
  }
}

/**
 * Right before the restart is requested: the node cordoned, the drain planned again (whatever
 * --pod-selector said: the restart stops every pod on the node) and what arrived since the drain
 * evicted, PodDisruptionBudgets honoured. Refuses while anything evictable is left. Returns what it
 * did, or undefined when the node was clear.
 */
async function clearBeforeRestart(ctx: StepContext): Promise<string | undefined> {
  const { cluster, opts, name, clock } = ctx;
  await ensureCordoned(ctx, 'restart-node');
  const drain: DrainOptions = { ...opts.drain, podSelector: undefined };
  const evicted: string[] = [];
  for (let round = 1; ; round++) {
    const plan = await planDrain(cluster, name, drain, new Date(clock.now()));
    const refused = plan.filter((d) => d.action === 'refuse');
    if (refused.length) throw new RestartRefusedError(name, `pods the drain may not evict arrived since it ran: ${refused.map((d) => `${podKey(d.pod)} (${d.reason})`).join(', ')}`);
    const left = plan.filter((d) => d.action === 'evict').map((d) => d.pod);
    if (left.length === 0) return evicted.length ? `evicted ${evicted.length} pod${evicted.length === 1 ? '' : 's'} that arrived after the drain: ${evicted.join(', ')}` : undefined;
    if (opts.drain.podSelector) {
      const selected = new Set((await planDrain(cluster, name, opts.drain, new Date(clock.now()))).map((d) => d.pod.uid));
      const unselected = left.filter((p) => !selected.has(p.uid));
      if (unselected.length) throw new RestartRefusedError(name, `pods outside --pod-selector are on it and the restart would stop them without their PodDisruptionBudgets: ${unselected.map(podKey).join(', ')}`);
    }
    if (round > 3) throw new RestartRefusedError(name, `pods keep arriving on it although it is cordoned: ${left.map(podKey).join(', ')}`);
    ctx.report.line(name, `restart-node: ${left.length} pod${left.length === 1 ? '' : 's'} arrived after the drain: ${left.map(podKey).join(', ')}; evicting them before the restart`);
    const done = await evictPods(cluster, name, left, drain, clock, (p) => ctx.report.status(name, drainStatus(p)), ctx.signal);
    evicted.push(...done.evicted);
  }
}

async function agentPods(ctx: StepContext) {
  return (await ctx.cluster.listNodePods(ctx.name, ciliumAgentSelector)).filter((p) => p.namespace === ctx.opts.ciliumNamespace);
}

async function verify(ctx: StepContext): Promise<{ outcome: StepOutcome; message: string }> {
  const { cluster, opts, name, clock } = ctx;
  const cidrs = await cluster.ciliumPodCidrs(name);
  if (!cidrs || cidrs.length === 0) {
    throw gateError(name, 'verify', { verdict: 'FAIL', reasons: [`CiliumNode ${name} has no spec.ipam.podCIDRs: is the Cilium operator running in cluster-pool mode?`] });
  }
  const podName = `cilium-migrate-verify-${createHash('sha256').update(name).digest('hex').slice(0, 10)}`;
  // A leftover from an interrupted run would hold the name.
  const leftover = await cluster.getPod(opts.verifyNamespace, podName);
  if (leftover) {
    await cluster.deletePodByUid(leftover.namespace, leftover.name, leftover.uid, 0);
    await waitFor(ctx, `the old verify pod ${podName} to go`, opts.timeoutsMs.verify, async () => ((await cluster.getPod(opts.verifyNamespace, podName)) ? undefined : true));
  }
  await cluster.createProbePod(opts.verifyNamespace, podName, name, opts.verifyImage);
  let seen: PodView | undefined;
  let ip: string;
  try {
    ip = await waitFor(ctx, `the verify pod on ${name} to get an IP`, opts.timeoutsMs.verify, async () => {
      seen = await cluster.getPod(opts.verifyNamespace, podName);
      return seen?.podIP || undefined;
    });
  } finally {
    const pod = seen ?? (await cluster.getPod(opts.verifyNamespace, podName));
    if (pod) await cluster.deletePodByUid(pod.namespace, pod.name, pod.uid, 0);
  }
  if (classifyAddress(ip, name, { ciliumNodeCidrs: { [name]: cidrs }, ciliumCidrs: [], nodeAddresses: [] }) !== 'cilium') {
    throw gateError(name, 'verify', { verdict: 'FAIL', reasons: [`a new pod on ${name} got ${ip}, outside its Cilium pod CIDRs ${cidrs.join(', ')}: the CNI config was not switched (is 05-cilium.conflist written? was the agent restarted after labelling?)`] });
  }
  const stragglers = podsOffCilium((await cluster.listNodePods(name)).filter((p) => p.name !== podName), cidrs);
  let message = `a new pod got ${ip}, inside ${cidrs.join(', ')}`;
  if (stragglers.length > 0) {
    const list = stragglers.map((p) => `${p.namespace}/${p.name} (${p.podIP})`).join(', ');
    if (opts.restartStragglers) {
      // Through the Eviction API, PodDisruptionBudgets honoured, as the drain: never a plain delete.
      const managed = stragglers.filter((p) => p.controller);
      await evictPods(cluster, name, managed.map(toEvictable), { ...opts.drain, disableEviction: false, podSelector: undefined, timeoutMs: opts.timeoutsMs.verify }, clock, (p) => ctx.report.status(name, drainStatus(p).replace(/^drain:/, 'verify: evicting stragglers:')), ctx.signal);
      message += `; evicted pods left on the legacy network (their controllers recreate them): ${managed.map((p) => `${p.namespace}/${p.name} (${p.podIP})`).join(', ')}`;
      const unmanaged = stragglers.filter((p) => !p.controller);
      if (unmanaged.length) ctx.report.line(name, `verify: warning: left alone (no controller would recreate them): ${unmanaged.map((p) => `${p.namespace}/${p.name}`).join(', ')}`);
    } else {
      message += `; pods still on the legacy network (rerun with --restart-stragglers to restart them): ${list}`;
      ctx.report.line(name, `verify: warning: ${stragglers.length} pods still on the legacy network: ${list}`);
    }
  }
  return { outcome: 'applied', message };
}

async function gateRounds(ctx: StepContext, since: Date, baseline: Record<string, unknown> | undefined): Promise<{ outcome: StepOutcome; message: string }> {
  const { opts, clock, name } = ctx;
  const deadline = clock.now() + opts.timeoutsMs.gate;
  const history: Verdict[] = [];
  for (;;) {
    if (ctx.signal?.aborted) throw new InterruptedError(`stopped during the gate of ${name}; the state is recorded on the node`, 'rerun the same command to resume');
    const last = await ctx.gate.check(ctx.getNode(), since, baseline);
    history.push(last.verdict);
    const { verdict, streak } = roundsVerdict(history, opts.gate.rounds);
    ctx.report.status(name, `gate: ${last.verdict} (${streak}/${opts.gate.rounds} passes in a row)`);
    if (verdict === 'PASS') return { outcome: 'applied', message: `PASS ${streak} times in a row (${ctx.gate.name}): ${last.reasons.join('; ')}` };
    if (clock.now() + opts.gate.intervalMs > deadline) throw gateError(name, 'gate', last);
    await clock.sleep(opts.gate.intervalMs, ctx.signal);
  }
}

function waitFor<T>(ctx: StepContext, what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  return pollUntil(probe, {
    clock: ctx.clock, deadline: ctx.clock.now() + timeoutMs, intervalMs: ctx.opts.pollMs, signal: ctx.signal,
    stopped: () => new InterruptedError(`stopped while waiting for ${what}; the state is recorded on the node`, 'rerun the same command to resume'),
    timedOut: () => new TimeoutError(`timed out after ${Math.round(timeoutMs / 1000)}s waiting for ${what}`, 'the node stays cordoned with its phase recorded; rerun to resume the wait'),
  });
}

function drainStatus(p: DrainProgress): string {
  // Blocked pods grouped by the budget that blocks them, so 50 blocked pods make one short line.
  const groups = new Map<string, string[]>();
  for (const b of p.blocked) {
    const pdb = /disruption budget (\S+) (needs [^\n]*)/.exec(b.message);
    const key = pdb ? `PDB ${pdb[1]} (${pdb[2]})` : b.message || 'a PodDisruptionBudget';
    groups.set(key, [...(groups.get(key) ?? []), b.pod]);
  }
  const blocked = [...groups].map(([by, pods]) => `${pods.length === 1 ? pods[0] : `${pods.length} pods`} by ${by}`).join(', ');
  return `drain: ${p.phase === 'evicting' ? 'evicting' : 'waiting for pods to terminate'}, ${p.left}/${p.total} pods left${blocked ? `; blocked: ${blocked}` : ''}`;
}
