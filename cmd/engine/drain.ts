// Draining a node through the Eviction API, like `kubectl drain` but stricter: it refuses before
// evicting anything, puts a UID precondition on every eviction, backs off at least 5 s when a
// PodDisruptionBudget says no, detects the pod that several PDBs cover, waits for deletion with
// one LIST per interval instead of one GET per pod, and reports progress as it goes.
import { CliError, ExitCode, InterruptedError, PreconditionError, TimeoutError } from '../../lib/errors.js';
import type { Clock } from '../../lib/clock.js';
import { pollUntil } from '../../lib/poll.js';
import type { DrainCluster } from '../cluster/cluster.js';
import { classifyDrainPods, deletedLongAgo, type DrainDecision, type DrainFlags, type DrainPod } from '../cluster/drain-filter.js';

export interface DrainOptions extends DrainFlags {
  podSelector?: string | undefined;
  /** Passed to every eviction; undefined = each pod's own terminationGracePeriodSeconds. */
  gracePeriodSeconds?: number | undefined;
  /** For evictions and the wait for deletion together. */
  timeoutMs: number;
  /** Evictions in flight at once. */
  parallelism: number;
  /** Delete instead of evict: PDBs are bypassed. Only on explicit request. */
  disableEviction: boolean;
  /** Between LISTs while waiting for evicted pods to go. */
  pollIntervalMs: number;
  /** The least wait after a 429, whatever Retry-After says. */
  minBackoffMs: number;
}

export const defaultDrainOptions: Omit<DrainOptions, keyof DrainFlags> = {
  timeoutMs: 10 * 60_000,
  parallelism: 10,
  disableEviction: false,
  pollIntervalMs: 1000,
  minBackoffMs: 5000,
};

export interface DrainProgress {
  phase: 'evicting' | 'waiting';
  total: number;
  /** Pods not yet gone from the node. */
  left: number;
  /** Pods a PodDisruptionBudget blocks right now, with the server's reason. */
  blocked: { pod: string; message: string }[];
}

export interface DrainReport {
  evicted: string[];
  skipped: { pod: string; reason: string }[];
  warnings: { pod: string; reason: string }[];
}

export const podKey = (pod: Pick<DrainPod, 'namespace' | 'name'>) => `${pod.namespace}/${pod.name}`;

/** A drain refused before anything was evicted; lists each pod and the flag it would need. */
export class DrainRefusedError extends PreconditionError {
  readonly refused: DrainDecision[];
  constructor(node: string, refused: DrainDecision[]) {
    super(
      `cannot drain ${node}: ${refused.length} pod${refused.length === 1 ? '' : 's'} cannot be evicted safely:\n` +
        refused.map((d) => `  ${podKey(d.pod)}: ${d.reason}`).join('\n'),
      'nothing was evicted; add the flags named above if losing those pods is acceptable',
    );
    this.refused = refused;
  }
}

/** Decides what a drain of `node` would do, without changing anything. */
export async function planDrain(cluster: DrainCluster, node: string, options: DrainOptions, now: Date): Promise<DrainDecision[]> {
  const pods = await cluster.listPodsOnNode(node, options.podSelector);
  const daemonSets = new Map<string, boolean>();
  for (const pod of pods) {
    if (pod.controller?.kind === 'DaemonSet') {
      const key = `${pod.namespace}/${pod.controller.name}`;
      if (!daemonSets.has(key)) daemonSets.set(key, await cluster.daemonSetExists(pod.namespace, pod.controller.name));
    }
  }
  return classifyDrainPods(pods, options, (ns, name) => daemonSets.get(`${ns}/${name}`) ?? false, now);
}

/**
 * Evicts every pod the plan allows and waits until they are gone. Throws DrainRefusedError before
 * any eviction when a pod needs a flag, TimeoutError (pods left, PDBs blocking) when time runs out,
 * InterruptedError when `signal` fires (between requests, never mid-eviction).
 */
export async function drainNode(
  cluster: DrainCluster,
  node: string,
  options: DrainOptions,
  clock: Clock,
  onProgress: (p: DrainProgress) => void = () => {},
  signal?: AbortSignal,
): Promise<DrainReport> {
  const decisions = await planDrain(cluster, node, options, new Date(clock.now()));
  const refused = decisions.filter((d) => d.action === 'refuse');
  if (refused.length > 0) throw new DrainRefusedError(node, refused);
  const evicted = await evictPods(cluster, node, decisions.filter((d) => d.action === 'evict').map((d) => d.pod), options, clock, onProgress, signal);
  return {
    evicted: evicted.evicted,
    skipped: decisions.filter((d) => d.action === 'skip').map((d) => ({ pod: podKey(d.pod), reason: d.reason ?? '' })),
    warnings: [...decisions.filter((d) => d.action === 'evict' && d.reason).map((d) => ({ pod: podKey(d.pod), reason: d.reason! })), ...evicted.warnings],
  };
}

/**
 * Evicts `targets` (through the Eviction API with a UID precondition, or deletes them with
 * --disable-eviction) and waits until they are gone from `node`, as the drain does.
 */
export async function evictPods(
  cluster: DrainCluster,
  node: string,
  targets: DrainPod[],
  options: DrainOptions,
  clock: Clock,
  onProgress: (p: DrainProgress) => void = () => {},
  signal?: AbortSignal,
): Promise<{ evicted: string[]; warnings: { pod: string; reason: string }[] }> {
  const report = { evicted: [] as string[], warnings: [] as { pod: string; reason: string }[] };
  const deadline = clock.now() + options.timeoutMs;
  const blocked = new Map<string, string>();
  const awaitingDeletion = new Map<string, DrainPod>();
  let accepted = 0;
  const progress = (phase: DrainProgress['phase']) =>
    onProgress({ phase, total: targets.length, left: targets.length - (accepted - awaitingDeletion.size), blocked: [...blocked].map(([pod, message]) => ({ pod, message })) });

  const stopWorkers = new AbortController();
  const stopped = () => signal?.aborted || stopWorkers.signal.aborted;
  const either = anySignal(signal, stopWorkers.signal);
  const checkTime = () => {
    if (signal?.aborted) throw new InterruptedError(`drain of ${node} interrupted; ${targets.length - report.evicted.length} pods not evicted yet`);
    if (clock.now() > deadline) throw drainTimeout(node, options.timeoutMs, [...targets.filter((p) => !report.evicted.includes(podKey(p)))], blocked);
  };

  const evictOne = async (target: DrainPod): Promise<void> => {
    let pod = target;
    for (;;) {
      if (stopped()) return;
      checkTime();
      if (options.disableEviction) {
        await cluster.deletePod(pod, options.gracePeriodSeconds);
        break;
      }
      const outcome = await cluster.evictPod(pod, options.gracePeriodSeconds);
      if (outcome.kind === 'evicted') break;
      if (outcome.kind === 'gone' || outcome.kind === 'replaced') {
        blocked.delete(podKey(pod));
        accepted++;
        report.evicted.push(podKey(pod));
        progress('evicting');
        return;
      }
      if (outcome.kind === 'failed') {
        throw new CliError(
          `cannot evict ${podKey(pod)}: ${outcome.message}`,
          ExitCode.precondition,
          'make sure at most one PodDisruptionBudget selects the pod (kubectl get pdb -A), then rerun; the node stays cordoned',
        );
      }
      if (outcome.kind === 'namespace-terminating') {
        // As kubectl: an eviction in a namespace being deleted is refused; once the namespace's
        // deletion has marked the pod deleted, it is only waited for, else the eviction is retried.
        const fresh = (await cluster.listPodsOnNode(node)).find((p) => p.uid === pod.uid);
        if (!fresh) {
          accepted++;
          report.evicted.push(podKey(pod));
          progress('evicting');
          return;
        }
        pod = fresh;
        if (pod.deletionTimestamp) {
          report.warnings.push({ pod: podKey(pod), reason: `its namespace is being deleted; waiting for the pod to go` });
          break;
        }
        blocked.set(podKey(pod), `its namespace ${pod.namespace} is being deleted`);
        progress('evicting');
        await clock.sleep(options.minBackoffMs, either);
      } else if (outcome.kind === 'blocked') {
        blocked.set(podKey(pod), outcome.message || 'blocked by a PodDisruptionBudget');
        progress('evicting');
        await clock.sleep(Math.max(options.minBackoffMs, outcome.retryAfterSeconds * 1000), either);
      } else {
        await clock.sleep(1000, either);
      }
    }
    blocked.delete(podKey(pod));
    accepted++;
    awaitingDeletion.set(podKey(pod), pod);
    report.evicted.push(podKey(pod));
    progress('evicting');
  };

  const queue = [...targets];
  const worker = async () => {
    for (let pod = queue.shift(); pod; pod = queue.shift()) {
      if (stopped()) return;
      await evictOne(pod);
    }
  };
  progress('evicting');
  const results = await Promise.allSettled(Array.from({ length: Math.max(1, Math.min(options.parallelism, targets.length)) }, () => worker().catch((err) => {
    stopWorkers.abort();
    throw err;
  })));
  const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure) throw failure.reason;
  checkTime();

  // Wait for the evicted pods to go: gone from the node's list, or replaced by a pod with a new UID.
  // A pod that has been terminating longer than --skip-wait-for-delete-timeout (a finalizer that is
  // never removed, a node that does not answer) is not waited for, as kubectl drain does.
  if (awaitingDeletion.size > 0) {
    await pollUntil(async () => {
      progress('waiting');
      const present = new Map((await cluster.listPodsOnNode(node)).map((p) => [podKey(p), p]));
      for (const [key, pod] of awaitingDeletion) {
        const now = present.get(key);
        if (now?.uid !== pod.uid) awaitingDeletion.delete(key);
        else if (deletedLongAgo(now, options.skipWaitForDeleteTimeoutSeconds, clock.now())) {
          awaitingDeletion.delete(key);
          report.warnings.push({ pod: key, reason: `still terminating more than ${options.skipWaitForDeleteTimeoutSeconds}s after its deletion; not waited for (--skip-wait-for-delete-timeout)` });
        }
      }
      return awaitingDeletion.size === 0 ? true : undefined;
    }, {
      clock, deadline, intervalMs: options.pollIntervalMs, signal,
      stopped: () => new InterruptedError(`drain of ${node} interrupted while ${awaitingDeletion.size} evicted pods were terminating`),
      timedOut: () => drainTimeout(node, options.timeoutMs, [...awaitingDeletion.values()], blocked),
    });
  }
  progress('waiting');
  return report;
}

function drainTimeout(node: string, timeoutMs: number, left: DrainPod[], blocked: Map<string, string>): TimeoutError {
  const lines = left.slice(0, 20).map((p) => `  ${podKey(p)}${blocked.has(podKey(p)) ? `: ${blocked.get(podKey(p))}` : ''}`);
  if (left.length > 20) lines.push(`  ... and ${left.length - 20} more`);
  return new TimeoutError(
    `drain of ${node} timed out after ${Math.round(timeoutMs / 1000)}s with ${left.length} pod${left.length === 1 ? '' : 's'} left:\n${lines.join('\n')}`,
    'the node stays cordoned; fix what blocks (often a PodDisruptionBudget) and rerun, or raise --drain-timeout',
  );
}

function anySignal(...signals: (AbortSignal | undefined)[]): AbortSignal {
  return AbortSignal.any(signals.filter((s): s is AbortSignal => s !== undefined));
}
