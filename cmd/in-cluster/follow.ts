// Following an in-cluster run from a terminal: the Job and its pods read every few seconds (each
// change of a pod said once), the running pod's log streamed as it comes, until the Job ends, it
// is cancelled, or the person detaches (Ctrl-C: the Job goes on).
import type { JobView, RunPodView } from '../../lib/kube-jobs.js';

/** What the follower reads; the real one is over lib/kube-jobs.ts, unit tests use a fake. */
export interface RunSource {
  job(): Promise<JobView | undefined>;
  pods(): Promise<RunPodView[]>;
  /** Streams a pod's log until its container ends or `signal` fires; never rejects. */
  followLog(pod: string, onLine: (line: string) => void, signal: AbortSignal, onError: (message: string) => void): Promise<void>;
}

export interface FollowClock {
  /** Resolves after `ms`, or at once when `signal` fires. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export type FollowEnd = 'complete' | 'failed' | 'cancelled' | 'detached' | 'gone';

export interface FollowResult {
  end: FollowEnd;
  job?: JobView | undefined;
  /** The newest pod seen (its exit code says why a failed run failed). */
  lastPod?: RunPodView | undefined;
}

/** A pod's state in words, for the line said when it changes. */
export function describePod(p: RunPodView): string {
  const where = p.node ? ` on ${p.node}` : '';
  if (p.disruption) return `pod ${p.name}${where}: stopped by the cluster (${p.disruption}); it stops at a safe point and the Job starts another pod, which resumes`;
  if (p.phase === 'Succeeded') return `pod ${p.name}${where}: finished (exit 0)`;
  if (p.phase === 'Failed') return `pod ${p.name}${where}: ended with exit code ${p.exitCode ?? '?'}`;
  if (p.deleting) return `pod ${p.name}${where}: stopping at its next safe point`;
  if (p.phase === 'Pending') return `pod ${p.name}${where || ' (not scheduled yet)'}: Pending`;
  return `pod ${p.name}${where}: ${p.phase}`;
}

const ended = (p: RunPodView) => p.phase === 'Succeeded' || p.phase === 'Failed';

/**
 * Follows the run until it ends (`complete`, `failed`), is cancelled (suspended with no pod left),
 * its Job disappears (`gone`), or `signal` fires (`detached`). Log lines and pod changes go to `log`.
 */
export async function followRun(source: RunSource, log: (line: string) => void, clock: FollowClock, signal: AbortSignal, pollMs: number): Promise<FollowResult> {
  const said = new Map<string, string>();
  const following = new Map<string, Promise<void>>();
  const stopLogs = new AbortController();
  const logSignal = AbortSignal.any([signal, stopLogs.signal]);
  let lastPod: RunPodView | undefined;
  let job: JobView | undefined;
  const skipLog = new Set<string>();
  const finish = async (end: FollowEnd): Promise<FollowResult> => {
    // Let the streams print what the ended pods wrote last, briefly; a detach stops them at once.
    if (end === 'detached') stopLogs.abort();
    const timeout = new AbortController();
    await Promise.race([Promise.all(following.values()), clock.sleep(3000, timeout.signal)]);
    timeout.abort();
    stopLogs.abort();
    return { end, job, lastPod };
  };
  for (;;) {
    if (signal.aborted) return finish('detached');
    job = await source.job();
    if (!job) return finish('gone');
    const pods = await source.pods();
    for (const p of pods) {
      const key = describePod(p);
      if (!said.has(p.uid) && ended(p) && p !== pods.at(-1)) skipLog.add(p.uid);
      if (said.get(p.uid) !== key) {
        said.set(p.uid, key);
        log(describePod(p));
      }
      // Each pod's log once, from its start; the logs of pods that had ended before we came are history.
      if (p.started && !following.has(p.uid) && !skipLog.has(p.uid)) {
        following.set(p.uid, source.followLog(p.name, log, logSignal, (m) => log(`note: ${m}`)));
      }
    }
    lastPod = pods.at(-1) ?? lastPod;
    if (job.finished) return finish(job.finished.outcome === 'Complete' ? 'complete' : 'failed');
    // Cancelled: the Job is suspended and its last pod has stopped (at its safe point) and gone.
    if (job.suspended && pods.every(ended)) return finish('cancelled');
    await clock.sleep(pollMs, signal);
  }
}
