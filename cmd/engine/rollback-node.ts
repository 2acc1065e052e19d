// Returns one node to the legacy CNI (REFERENCE.md section 1: Cilium's guide has no rollback):
// cordon, drain, remove the migration label, delete Cilium's CNI config and restore the renamed
// `*.cilium_bak` files on the host, restart the Cilium agent (it no longer applies the node config)
// and the node, check that a new pod gets a legacy address, uncordon if we cordoned. Like the
// migration, every step records its intent on the Node first (annotation
// `cilium-migrate.io/rollback`), so a killed rollback resumes; at the end the node's migration
// records are removed and it is `pending` again.
import { cidrContains } from '../../lib/cidr.js';
import { classifyAddress } from '../../lib/overlay.js';
import { pollUntil } from '../../lib/poll.js';
import { ciliumAgentSelector } from '../../lib/defaults.js';
import { ExitCode, InterruptedError, PreconditionError, TimeoutError } from '../../lib/errors.js';
import type { EngineCluster, NodeView } from '../cluster/cluster.js';
import type { Clock } from '../../lib/clock.js';
import { drainNode, type DrainOptions } from './drain.js';
import { hostCommandPodName, restoreLegacyCniScript, runHostScript } from './host-command.js';
import { gateError, type BoundaryHook, type EngineReporter, type StepResult } from './migrate-node.js';
import { restartBaseline, restartCompletion, RestartRequestError, type NodeRestarter, type RestartBaseline } from './restart.js';
import { clearedAnnotations, needsRollback, readRollback, readState, rollbackAnnotations, rollbackSteps, type RollbackState, type RollbackStep } from '../../lib/node-state.js';

export interface RollbackOptions {
  runId: string;
  labelKey: string;
  ciliumNamespace: string;
  drain: DrainOptions;
  restarter: NodeRestarter;
  /** Image of the privileged pod that restores the CNI files (needs sh, and nsenter). */
  hostImage: string;
  verifyNamespace: string;
  verifyImage: string;
  /** Cilium's configured cluster-pool CIDRs, for a node whose CiliumNode has none. */
  ciliumClusterCidrs?: string[] | undefined;
  timeoutsMs: { hostCommand: number; agentRestart: number; nodeRestart: number; verify: number };
  pollMs: number;
}

export interface RollbackResult {
  node: string;
  result: 'rolled-back';
  steps: { step: RollbackStep; outcome: StepResult['outcome']; message: string; durationMs: number }[];
}


export async function rollbackNode(cluster: EngineCluster, name: string, opts: RollbackOptions, clock: Clock, report: EngineReporter, signal?: AbortSignal, boundary: BoundaryHook = () => {}): Promise<RollbackResult> {
  let node = await cluster.getNode(name);
  if (!needsRollback(node, opts.labelKey)) {
    throw new PreconditionError(`node ${name} was never migrated (no ${opts.labelKey} label, no migration record): nothing to roll back`);
  }
  const migration = readState(node.annotations);
  const midMigrationCordon = migration !== undefined && !migration.migratedAt && migration.cordonedByUs && !migration.steps.uncordon?.done && node.unschedulable;
  let state: RollbackState = readRollback(node.annotations) ?? {
    v: 1,
    startedBy: opts.runId,
    lastRun: opts.runId,
    startedAt: new Date(clock.now()).toISOString(),
    // Only a cordon the stopped migration made counts as ours; any other (from before the
    // migration, or made by someone after it finished) stays when the rollback ends.
    wasUnschedulable: midMigrationCordon ? migration!.wasUnschedulable : node.unschedulable,
    cordonedByUs: midMigrationCordon,
    steps: {},
  };
  // `also` rides in the same patch as the state: our cordon and the record of it land together.
  const save = async (also: { unschedulable?: boolean } = {}) => {
    node = await cluster.patchNode(name, { ...also, annotations: rollbackAnnotations(state) });
  };
  await save();
  const results: RollbackResult['steps'] = [];

  for (const step of rollbackSteps) {
    if (signal?.aborted) throw new InterruptedError(`rollback of ${name} stopped before ${step}; the state is recorded on the node`, 'rerun the same command to resume');
    const record = state.steps[step] ?? {};
    if (record.done) {
      results.push({ step, outcome: 'done-before', message: 'done in an earlier run', durationMs: 0 });
      continue;
    }
    const started = clock.now();
    const intent = async (data?: Record<string, unknown>, extra: Partial<RollbackState> = {}) => {
      const first = !state.steps[step]?.intent;
      state = { ...state, ...extra, steps: { ...state.steps, [step]: { ...state.steps[step], intent: state.steps[step]?.intent ?? new Date(clock.now()).toISOString(), ...(data ? { data } : {}) } } };
      await save();
      if (first || data) boundary(name, `rollback-${step}`, 'intent');
    };
    report.line(name, `${step}: started`);
    const { outcome, message } = await runRollbackStep(step);
    state = { ...state, steps: { ...state.steps, [step]: { ...state.steps[step], done: new Date(clock.now()).toISOString() } } };
    await save();
    await cluster.recordEvent(node, 'Normal', `Rollback${step.replace(/(^|-)(\w)/g, (_m, _d, c: string) => c.toUpperCase())}`, message);
    boundary(name, `rollback-${step}`, 'done');
    const durationMs = clock.now() - started;
    results.push({ step, outcome, message, durationMs });
    report.line(name, `${step}: ${message} (${(durationMs / 1000).toFixed(1)}s)`);

    async function cordonOurselves(): Promise<void> {
      state = { ...state, cordonedByUs: true };
      await save({ unschedulable: true });
    }

    async function runRollbackStep(s: RollbackStep): Promise<{ outcome: StepResult['outcome']; message: string }> {
      switch (s) {
        case 'cordon': {
          // As in the migration: only our own cordon, recorded in the same patch, is ours.
          const fresh = await cluster.getNode(name);
          if (fresh.unschedulable && state.cordonedByUs) return { outcome: 'applied', message: 'cordoned' };
          if (fresh.unschedulable) {
            await intent(undefined, { wasUnschedulable: true, cordonedByUs: false });
            return { outcome: 'not-needed', message: 'already cordoned by someone else; it stays cordoned' };
          }
          await intent();
          await cordonOurselves();
          return { outcome: 'applied', message: 'cordoned' };
        }
        case 'drain': {
          await intent();
          if (!(await cluster.getNode(name)).unschedulable) {
            await cordonOurselves();
            report.line(name, `drain: ${name} had been made schedulable again; cordoned it again`);
          }
          const drained = await drainNode(cluster, name, opts.drain, clock, (p) => report.status(name, `drain: ${p.left}/${p.total} pods left`, `${p.phase}|${Math.ceil(p.left / 10)}`), signal);
          return { outcome: 'applied', message: `evicted ${drained.evicted.length} pods` };
        }
        case 'unlabel':
          if (node.labels[opts.labelKey] === undefined) return { outcome: 'not-needed', message: `no ${opts.labelKey} label` };
          await intent();
          await cluster.patchNode(name, { labels: { [opts.labelKey]: null } });
          return { outcome: 'applied', message: `removed ${opts.labelKey}: the CiliumNodeConfig no longer selects the node` };
        case 'restore-cni':
          await intent();
          const pod = await runHostScript(cluster, { namespace: opts.ciliumNamespace, node: name, purpose: 'rollback', request: opts.runId, image: opts.hostImage, script: restoreLegacyCniScript, timeoutMs: opts.timeoutsMs.hostCommand, pollMs: opts.pollMs }, clock, signal);
          return { outcome: 'applied', message: `deleted 05-cilium.conflist and restored the *.cilium_bak files (pod ${pod})` };
        case 'restart-agent': {
          const current = await agentPods();
          const old = (record.data?.oldUids as string[] | undefined) ?? current.map((p) => p.uid);
          if (!record.data) await intent({ oldUids: old });
          for (const p of current) if (old.includes(p.uid)) await cluster.deletePodByUid(p.namespace, p.name, p.uid);
          const fresh = await waitFor(`a new Ready Cilium agent pod on ${name}`, opts.timeoutsMs.agentRestart, async () => (await agentPods()).find((p) => !old.includes(p.uid) && p.ready));
          return { outcome: 'applied', message: `Cilium agent pod replaced (${fresh.name} Ready); it no longer writes a CNI config on this node` };
        }
        case 'restart-node': {
          if (opts.restarter.method === 'none') {
            await intent();
            return { outcome: 'not-needed', message: 'no node restart (--restart none)' };
          }
          let baseline = record.data?.baseline as (Omit<RestartBaseline, 'requestedAt'> & { requestedAt: string }) | undefined;
          if (!baseline) {
            const b = restartBaseline(node, await cluster.listNodePods(name), new Date(clock.now()));
            baseline = { ...b, requestedAt: b.requestedAt.toISOString() };
            await intent({ baseline });
          }
          const requestId = `${state.startedBy}@${baseline.requestedAt}`;
          let failure = record.data?.requestFailure as string | undefined;
          if (!record.data?.requested) {
            const request = await opts.restarter.request(node, requestId);
            failure = request.failure;
            // Recorded whatever the outcome: a rerun never requests the restart a second time.
            await intent({ baseline, requested: new Date(clock.now()).toISOString(), ...(failure ? { requestFailure: failure } : {}) });
            if (failure && request.notRun) throw new RestartRequestError(`${failure}: the node was not restarted`, ExitCode.precondition, `the request is recorded and a rerun does not repeat it: restart ${name} by hand, then rerun to resume`);
            if (failure) report.line(name, `restart-node: warning: ${failure}; waiting for ${name} to come back all the same`);
          }
          const before: RestartBaseline = { ...baseline, requestedAt: new Date(baseline.requestedAt) };
          let how: string;
          try {
            how = await waitFor(`${name} to come back from its restart`, opts.timeoutsMs.nodeRestart, async () => restartCompletion(before, await cluster.getNode(name), await cluster.listNodePods(name)));
          } catch (err) {
            if (err instanceof TimeoutError && failure) throw new RestartRequestError(`${failure}, and ${name} did not come back within ${Math.round(opts.timeoutsMs.nodeRestart / 1000)}s`, ExitCode.timeout, `the request is recorded and a rerun does not repeat it: restart ${name} by hand, then rerun to resume`);
            throw err;
          }
          await opts.restarter.cleanup?.(node, requestId).catch(() => {});
          return { outcome: 'applied', message: `restarted (${opts.restarter.method}): ${how}` };
        }
        case 'verify':
          await intent();
          return verifyLegacy();
        case 'uncordon':
          if (!state.cordonedByUs) return { outcome: 'not-needed', message: 'left cordoned: it was cordoned by someone else' };
          await intent();
          await cluster.patchNode(name, { unschedulable: false });
          return { outcome: 'applied', message: 'uncordoned' };
      }
    }
  }

  // Back to where it started: no migration records, so `run` treats it as any pending node.
  await cluster.patchNode(name, { annotations: clearedAnnotations });
  await cluster.recordEvent(node, 'Normal', 'RollbackComplete', `returned to the legacy CNI by run ${opts.runId}`);
  report.line(name, 'rolled back to the legacy CNI');
  return { node: name, result: 'rolled-back', steps: results };

  async function agentPods() {
    return (await cluster.listNodePods(name, ciliumAgentSelector)).filter((p) => p.namespace === opts.ciliumNamespace);
  }

  function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
    return pollUntil(probe, {
      clock, deadline: clock.now() + timeoutMs, intervalMs: opts.pollMs, signal,
      stopped: () => new InterruptedError(`stopped while waiting for ${what}; the state is recorded on the node`, 'rerun the same command to resume'),
      timedOut: () => new TimeoutError(`timed out after ${Math.round(timeoutMs / 1000)}s waiting for ${what}`, 'the node stays cordoned with its rollback state recorded; rerun to resume'),
    });
  }

  async function verifyLegacy(): Promise<{ outcome: StepResult['outcome']; message: string }> {
    const legacy = (await cluster.getNode(name)).podCIDRs;
    const cilium = (await cluster.ciliumPodCidrs(name)) ?? [];
    const podName = hostCommandPodName('rollback-verify', name, '');
    const leftover = await cluster.getPod(opts.verifyNamespace, podName);
    if (leftover) await cluster.deletePodByUid(leftover.namespace, leftover.name, leftover.uid, 0);
    await waitFor(`the old verify pod ${podName} to go`, opts.timeoutsMs.verify, async () => ((await cluster.getPod(opts.verifyNamespace, podName)) ? undefined : true));
    await cluster.createProbePod(opts.verifyNamespace, podName, name, opts.verifyImage);
    let ip: string;
    try {
      ip = await waitFor(`the verify pod on ${name} to get an IP`, opts.timeoutsMs.verify, async () => (await cluster.getPod(opts.verifyNamespace, podName))?.podIP || undefined);
    } finally {
      const pod = await cluster.getPod(opts.verifyNamespace, podName);
      if (pod) await cluster.deletePodByUid(pod.namespace, pod.name, pod.uid, 0);
    }
    const verdict = rollbackVerdict(ip, name, { ciliumNodeCidrs: cilium, ciliumClusterCidrs: opts.ciliumClusterCidrs ?? [], nodePodCidrs: legacy });
    if (!verdict.ok) throw gateError(name, 'rollback verify', { verdict: 'FAIL', reasons: [verdict.reason] });
    return { outcome: 'applied', message: verdict.message };
  }
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
