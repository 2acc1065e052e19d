// The steps a migration and a rollback share: cordon, drain, restart the Cilium agent, restart the
// node, verify with a new pod, uncordon. Each looks at the cluster before it acts, keeps in the
// node's record what it needs to resume, and changes only what it has to.
import { ciliumAgentSelector } from '../../lib/defaults.js';
import { ExitCode, InterruptedError, PreconditionError, TimeoutError } from '../../lib/errors.js';
import { pollUntil } from '../../lib/poll.js';
import type { NodeRecord } from '../../lib/node-state.js';
import type { PodView } from '../cluster/cluster.js';
import { drainNode, DrainRefusedError, evictPods, planDrain, podKey, type DrainOptions, type DrainProgress } from './drain.js';
import type { NodeEnv, NodeRun } from './node-procedure.js';
import { restartBaseline, restartedNode, RestartRequestError, type RestartBaseline } from './restart.js';
import type { Outcome, Step } from './runner.js';

const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;

/** Waits for `look` to return a value, every --poll interval, up to `timeoutMs`; stops on Ctrl-C with the state recorded. */
export function waitFor<T>(run: NodeRun, what: string, timeoutMs: number, look: () => Promise<T | undefined>): Promise<T> {
  const { clock, signal, opts } = run.env;
  return pollUntil(look, {
    clock, deadline: clock.now() + timeoutMs, intervalMs: opts.pollMs, signal,
    stopped: () => new InterruptedError(`stopped while waiting for ${what}; the state is recorded on the node`, 'rerun the same command to resume'),
    timedOut: () => new TimeoutError(`timed out after ${Math.round(timeoutMs / 1000)}s waiting for ${what}`, `the node stays cordoned with its ${run.procedure}'s state recorded; rerun to resume the wait`),
  });
}

/** The Cilium agent pods on the node, in Cilium's namespace. */
async function agentPods(run: NodeRun): Promise<PodView[]> {
  return (await run.env.cluster.listNodePods(run.name, ciliumAgentSelector)).filter((p) => p.namespace === run.env.opts.ciliumNamespace);
}

/**
 * Cordons the node again when someone made it schedulable since the cordon step (a resumed run
 * must not drain or restart a node new pods can land on); that cordon is ours.
 */
async function ensureCordoned(run: NodeRun, step: string, observed?: { unschedulable: boolean }): Promise<void> {
  if ((observed ?? (await run.env.cluster.getNode(run.name))).unschedulable) return;
  await run.cordon();
  run.env.report.line(run.name, `${step}: ${run.name} had been made schedulable again; cordoned it again`);
}

/** The drain's live status: blocked pods grouped by the budget that blocks them, so 50 blocked pods make one short line. */
export function drainStatus(p: DrainProgress): string {
  const groups = new Map<string, string[]>();
  for (const b of p.blocked) {
    const pdb = /disruption budget (\S+) (needs [^\n]*)/.exec(b.message);
    const key = pdb ? `PDB ${pdb[1]} (${pdb[2]})` : b.message || 'a PodDisruptionBudget';
    groups.set(key, [...(groups.get(key) ?? []), b.pod]);
  }
  const blocked = [...groups].map(([by, pods]) => `${pods.length === 1 ? pods[0] : `${pods.length} pods`} by ${by}`).join(', ');
  return `drain: ${p.phase === 'evicting' ? 'evicting' : 'waiting for pods to terminate'}, ${p.left}/${p.total} pods left${blocked ? `; blocked: ${blocked}` : ''}`;
}

/** Evicts `pods` as the drain does (Eviction API, budgets honoured, progress shown). */
export function evictAsDrain(run: NodeRun, pods: Parameters<typeof evictPods>[2], drain: DrainOptions, statusPrefix = 'drain:') {
  return evictPods(run.env.cluster, run.name, pods, drain, run.env.clock, (p) => run.env.report.status(run.name, drainStatus(p).replace(/^drain:/, statusPrefix)), run.env.signal);
}

/** Only our own change from schedulable to unschedulable, recorded in the same write, makes the cordon ours. */
export const cordonStep: Step<NodeRun> = {
  name: 'cordon',
  observeAfresh: true,
  describe: (run) =>
    run.node.unschedulable && !run.record.cordonedByUs
      ? { outcome: 'not-needed', message: 'already cordoned by someone else; it will stay cordoned afterwards' }
      : { outcome: 'would-apply', message: `cordon ${run.name} (set spec.unschedulable)` },
  // Resumed after our cordon landed (the cordon and its record are one write).
  isDone: (run) => (run.node.unschedulable && run.record.cordonedByUs ? { outcome: 'applied', message: 'cordoned' } : undefined),
  async apply(run) {
    // A node found cordoned now (first run or resume) is its admin's: it stays cordoned.
    if (run.node.unschedulable) {
      run.note({ wasUnschedulable: true, cordonedByUs: false });
      return { outcome: 'not-needed', message: `already cordoned by someone else; it stays cordoned after the ${run.procedure}` };
    }
    await run.cordon();
    return { outcome: 'applied', message: 'cordoned' };
  },
};

/** kubectl drain's rules through the Eviction API; the node is cordoned again first if someone uncordoned it. */
export const drainStep: Step<NodeRun> = {
  name: 'drain',
  observeAfresh: true,
  async describe(run) {
    const plan = await planDrain(run.env.cluster, run.name, run.env.opts.drain, new Date(run.env.clock.now()));
    const evict = plan.filter((d) => d.action === 'evict').map((d) => podKey(d.pod));
    const refuse = plan.filter((d) => d.action === 'refuse');
    return {
      outcome: 'would-apply',
      message: `evict ${plural(evict.length, 'pod')}${evict.length ? `: ${evict.join(', ')}` : ''}` +
        (refuse.length ? `; would REFUSE (nothing evicted) because of ${refuse.map((d) => `${podKey(d.pod)} (${d.reason})`).join(', ')}` : ''),
    };
  },
  isDone: () => undefined,
  async apply(run) {
    await ensureCordoned(run, 'drain', run.node);
    const { cluster, opts, clock, report, signal } = run.env;
    const drained = await drainNode(cluster, run.name, opts.drain, clock, (p) => report.status(run.name, drainStatus(p), `${p.phase}|${Math.ceil(p.left / 10)}|${p.blocked.map((b) => b.pod).join(',')}`), signal);
    for (const w of drained.warnings) report.line(run.name, `drain: warning: ${w.pod}: ${w.reason}`);
    return { outcome: 'applied', message: `evicted ${plural(drained.evicted.length, 'pod')}; ${drained.skipped.length} stay (DaemonSet or mirror pods)` };
  },
};

/** Replaces the node's Cilium agent pod and waits for a new one to be Ready; `why` says what the new one does differently, `afterwards` adds to the result. */
export function restartAgentStep(why: string, afterwards = ''): Step<NodeRun> {
  return {
    name: 'restart-agent',
    describe: (run) => ({ outcome: 'would-apply', message: `delete the Cilium agent pod on ${run.name} and wait for a new one to be Ready (${why})` }),
    isDone: () => undefined,
    // The pods to replace are the ones seen when the step first recorded its intent; a resumed run replaces those, not their successors.
    async intentData(run) {
      if (run.data) return undefined;
      const pods = await agentPods(run);
      return { oldUids: pods.map((p) => p.uid), oldPods: pods.map((p) => ({ namespace: p.namespace, name: p.name, uid: p.uid })) };
    },
    async apply(run) {
      const kept = run.data as { oldUids?: string[]; oldPods?: { namespace: string; name: string; uid: string }[] } | undefined;
      const old = kept?.oldUids ?? [];
      // Records of earlier versions kept the UIDs only: the pods are found by them.
      const targets = kept?.oldPods ?? (await agentPods(run)).filter((p) => old.includes(p.uid));
      for (const p of targets) await run.env.cluster.deletePodByUid(p.namespace, p.name, p.uid);
      const fresh = await waitFor(run, `a new Ready Cilium agent pod on ${run.name}`, run.env.opts.timeoutsMs.agentRestart, async () => (await agentPods(run)).find((p) => !old.includes(p.uid) && p.ready));
      return { outcome: 'applied', message: `Cilium agent pod replaced (${fresh.name} Ready)${afterwards}` };
    },
  };
}

/** The name of a restart request, the same on every resume of the procedure that asked for it. */
export const restartRequestId = (record: Pick<NodeRecord, 'startedBy'>, requestedAt: string) => `${record.startedBy}@${requestedAt}`;

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
async function clearBeforeRestart(run: NodeRun): Promise<string | undefined> {
  const { cluster, opts, clock, report } = run.env;
  const name = run.name;
  await ensureCordoned(run, 'restart-node');
  const drain: DrainOptions = { ...opts.drain, podSelector: undefined };
  const evicted: string[] = [];
  for (let round = 1; ; round++) {
    const plan = await planDrain(cluster, name, drain, new Date(clock.now()));
    const refused = plan.filter((d) => d.action === 'refuse');
    if (refused.length) throw new RestartRefusedError(name, `pods the drain may not evict arrived since it ran: ${refused.map((d) => `${podKey(d.pod)} (${d.reason})`).join(', ')}`);
    const left = plan.filter((d) => d.action === 'evict').map((d) => d.pod);
    if (left.length === 0) return evicted.length ? `evicted ${plural(evicted.length, 'pod')} that arrived after the drain: ${evicted.join(', ')}` : undefined;
    if (opts.drain.podSelector) {
      const selected = new Set((await planDrain(cluster, name, opts.drain, new Date(clock.now()))).map((d) => d.pod.uid));
      const unselected = left.filter((p) => !selected.has(p.uid));
      if (unselected.length) throw new RestartRefusedError(name, `pods outside --pod-selector are on it and the restart would stop them without their PodDisruptionBudgets: ${unselected.map(podKey).join(', ')}`);
    }
    if (round > 3) throw new RestartRefusedError(name, `pods keep arriving on it although it is cordoned: ${left.map(podKey).join(', ')}`);
    report.line(name, `restart-node: ${plural(left.length, 'pod')} arrived after the drain: ${left.map(podKey).join(', ')}; evicting them before the restart`);
    const done = await evictAsDrain(run, left, drain);
    evicted.push(...done.evicted);
  }
}

type KeptBaseline = Omit<RestartBaseline, 'requestedAt'> & { requestedAt: string };

/**
 * Restarts the node with the chosen method and waits until it is back. The baseline (what was true
 * before) is kept before the request and `requested` after it, whatever the request's outcome: a
 * run stopped in between asks again with the same request id (a reboot pod already created counts
 * as the request), and a rerun never asks twice.
 */
export const restartNodeStep: Step<NodeRun> = {
  name: 'restart-node',
  describe: (run) =>
    run.env.opts.restarter.method === 'none'
      ? { outcome: 'not-needed', message: 'no restart (--restart none)' }
      : { outcome: 'would-apply', message: `restart the node (--restart ${run.env.opts.restarter.method}) and wait until it is back` },
  // --restart none is decided by a flag, not seen on the node: the step records its intent all the same, as every step that starts does.
  isDone: () => undefined,
  async apply(run): Promise<Outcome> {
    const { cluster, opts, clock, report } = run.env;
    if (opts.restarter.method === 'none') return { outcome: 'not-needed', message: 'no node restart (--restart none)' };
    const name = run.name;
    let baseline = run.data?.baseline as KeptBaseline | undefined;
    const previous = run.data as { requested?: string; requestFailure?: string } | undefined;
    let failure = previous?.requestFailure;
    if (!previous?.requested) {
      const cleared = await clearBeforeRestart(run);
      if (!baseline) {
        const b = restartBaseline(run.node, await cluster.listNodePods(name), new Date(clock.now()));
        baseline = { ...b, requestedAt: b.requestedAt.toISOString() };
        await run.keep({ baseline });
      }
      const request = await opts.restarter.request(run.node, restartRequestId(run.record, baseline.requestedAt));
      failure = request.failure;
      await run.keep({ baseline, requested: new Date(clock.now()).toISOString(), ...(failure ? { requestFailure: failure } : {}) });
      if (cleared) report.line(name, `restart-node: ${cleared}`);
      if (failure && request.notRun) {
        throw new RestartRequestError(`${failure}: the node was not restarted`, ExitCode.precondition, `the request is recorded and a rerun does not repeat it: restart ${name} by hand (or fix the command and run it yourself), then rerun to resume`);
      }
      if (failure) report.line(name, `restart-node: warning: ${failure}; waiting for ${name} to come back all the same (ssh, for one, exits 255 when the host goes down)`);
    } else {
      report.line(name, `restart-node: the restart was requested at ${previous.requested}${failure ? ` (${failure})` : ''}; waiting for the node to come back`);
    }
    const before: RestartBaseline = { ...baseline!, requestedAt: new Date(baseline!.requestedAt) };
    let how: string;
    try {
      how = await waitFor(run, `${name} to come back from its restart`, opts.timeoutsMs.nodeRestart, () => restartedNode(opts.restarter, cluster, name, before));
    } catch (err) {
      if (err instanceof TimeoutError && failure) {
        throw new RestartRequestError(`${failure}, and ${name} did not come back within ${Math.round(opts.timeoutsMs.nodeRestart / 1000)}s`, ExitCode.timeout, `the request is recorded and a rerun does not repeat it: restart ${name} by hand, then rerun to resume`);
      }
      throw err;
    }
    await opts.restarter.cleanup?.(run.node, restartRequestId(run.record, baseline!.requestedAt)).catch(() => {});
    return { outcome: 'applied', message: `restarted (${opts.restarter.method}): ${how}` };
  },
};

/** How a procedure judges the address its verify pod got. */
export interface PodAddressCheck {
  /** The verify pod's name on `node` (fixed per node, so a leftover of a stopped run is found). */
  podName(node: string): string;
  /** What the dry run says the address must show. */
  expectation: string;
  /** Reads what judging needs, before the pod starts; throws when it cannot judge. */
  prepare(run: NodeRun): Promise<string[]>;
  /** The verdict on `ip`: the step's outcome, or a thrown GateError. */
  judge(run: NodeRun, ip: string, cidrs: string[], podName: string): Promise<Outcome>;
}

/** Starts a short-lived pod on the node and judges the address it gets. */
export function verifyPodStep(check: PodAddressCheck): Step<NodeRun> {
  return {
    name: 'verify',
    describe: (run) => ({ outcome: 'would-apply', message: `start a pod on ${run.name} and check ${check.expectation}` }),
    isDone: () => undefined,
    async apply(run) {
      const { cluster, opts } = run.env;
      const cidrs = await check.prepare(run);
      const podName = check.podName(run.name);
      // A leftover from an interrupted run would hold the name.
      const leftover = await cluster.getPod(opts.verifyNamespace, podName);
      if (leftover) {
        await cluster.deletePodByUid(leftover.namespace, leftover.name, leftover.uid, 0);
        await waitFor(run, `the old verify pod ${podName} to go`, opts.timeoutsMs.verify, async () => ((await cluster.getPod(opts.verifyNamespace, podName)) ? undefined : true));
      }
      await cluster.createProbePod(opts.verifyNamespace, podName, run.name, opts.verifyImage);
      let seen: PodView | undefined;
      let ip: string;
      try {
        ip = await waitFor(run, `the verify pod on ${run.name} to get an IP`, opts.timeoutsMs.verify, async () => {
          seen = await cluster.getPod(opts.verifyNamespace, podName);
          return seen?.podIP || undefined;
        });
      } finally {
        const pod = seen ?? (await cluster.getPod(opts.verifyNamespace, podName));
        if (pod) await cluster.deletePodByUid(pod.namespace, pod.name, pod.uid, 0);
      }
      return check.judge(run, ip, cidrs, podName);
    },
  };
}

/** Undoes the cordon, only when this procedure made it. */
export const uncordonStep: Step<NodeRun> = {
  name: 'uncordon',
  describe: (run) =>
    run.node.unschedulable && !run.record.cordonedByUs
      ? { outcome: 'not-needed', message: 'leave the node cordoned: it was cordoned by someone else' }
      : { outcome: 'would-apply', message: `uncordon ${run.name}` },
  isDone: (run) => (run.record.cordonedByUs ? undefined : { outcome: 'not-needed', message: `left cordoned: it was cordoned by someone else, not by this ${run.procedure}` }),
  async apply(run) {
    await run.patch({ unschedulable: false });
    return { outcome: 'applied', message: 'uncordoned' };
  },
};

/**
 * Refusals before anything is touched (in a dry run they are the drain's description): a pod the
 * drain would refuse, and with --pod-selector, pods outside it that the restart would stop without
 * their PodDisruptionBudgets. Not once the drain is done.
 */
export async function refuseBeforeTouching(env: Pick<NodeEnv, 'cluster' | 'opts' | 'clock'>, node: string, drainDone: boolean): Promise<void> {
  if (drainDone) return;
  const { cluster, opts, clock } = env;
  const now = new Date(clock.now());
  const plan = await planDrain(cluster, node, opts.drain, now);
  const refused = plan.filter((d) => d.action === 'refuse');
  if (refused.length > 0) throw new DrainRefusedError(node, refused);
  if (opts.drain.podSelector && opts.restarter.method !== 'none') {
    const selected = new Set(plan.map((d) => d.pod.uid));
    const unselected = (await planDrain(cluster, node, { ...opts.drain, podSelector: undefined }, now)).filter((d) => d.action === 'evict' && !selected.has(d.pod.uid));
    if (unselected.length) {
      throw new PreconditionError(
        `--pod-selector ${opts.drain.podSelector} leaves ${plural(unselected.length, 'pod')} on ${node} that the restart (--restart ${opts.restarter.method}) would stop without their PodDisruptionBudgets: ${unselected.slice(0, 10).map((d) => podKey(d.pod)).join(', ')}${unselected.length > 10 ? ', ...' : ''}`,
        'nothing was changed; drop --pod-selector (every pod is evicted), or use --restart none',
      );
    }
  }
}
