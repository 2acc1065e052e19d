// The in-cluster run as `status` shows it: its Job, its pod and that pod's node, and what the run
// last recorded (wave, node, message) on the Job.
import { inClusterRun } from '../../lib/defaults.js';
import type { Kube } from '../../lib/kube.js';
import { listJobPods, readJob, type JobView, type RunPodView } from '../../lib/kube-jobs.js';
import { readProgress, type RunProgress } from './progress.js';

export interface InClusterRunStatus {
  job: string;
  /** running, finished, failed, cancelled (suspended), or stopping (cancel asked, pod not gone yet). */
  state: 'running' | 'finished' | 'failed' | 'cancelled' | 'stopping';
  startedAt: string;
  /** The newest pod of the Job. */
  pod?: { name: string; node: string; phase: string } | undefined;
  /** Pods of the Job now (an evicted one still stopping beside its successor makes two). */
  pods: number;
  cancelRequested?: string | undefined;
  progress?: RunProgress | undefined;
  /** Why it ended, when it failed. */
  reason?: string | undefined;
}

export function runStatus(job: JobView, pods: RunPodView[]): InClusterRunStatus {
  const last = pods.at(-1);
  const live = pods.some((p) => p.phase !== 'Succeeded' && p.phase !== 'Failed');
  const state = job.finished ? (job.finished.outcome === 'Complete' ? 'finished' : 'failed') : job.suspended ? (live ? 'stopping' : 'cancelled') : 'running';
  return {
    job: `${job.namespace}/${job.name}`,
    state,
    startedAt: job.createdAt.toISOString(),
    pod: last ? { name: last.name, node: last.node, phase: last.deleting ? 'Terminating' : last.phase } : undefined,
    pods: pods.length,
    cancelRequested: job.annotations[inClusterRun.cancelAnnotation],
    progress: readProgress(job.annotations),
    reason: job.finished?.outcome === 'Failed' ? `${job.finished.reason}${job.finished.message ? `: ${job.finished.message}` : ''}` : undefined,
  };
}

/** The in-cluster run in `namespace`, or undefined when there is none (or it is not ours to read). */
export async function readRunStatus(kube: Kube, namespace: string): Promise<InClusterRunStatus | undefined> {
  const job = await readJob(kube, namespace, inClusterRun.name);
  if (!job) return undefined;
  const pods = await listJobPods(kube, namespace, inClusterRun.name, 'run').catch(() => []);
  return runStatus(job, pods);
}

/** The lines `status` prints under the node table. */
export function describeRunStatus(r: InClusterRunStatus): string {
  const lines = [`in-cluster run: job ${r.job}, ${r.state} (started ${r.startedAt}${r.pods > 1 ? `, ${r.pods} pods` : ''})`];
  if (r.pod) lines.push(`  pod ${r.pod.name} on ${r.pod.node || '(not scheduled)'}: ${r.pod.phase}`);
  const p = r.progress;
  if (p) {
    const at = [p.wave ? `wave ${p.wave.index} of ${p.wave.of}` : '', p.node ? `node ${p.node}` : ''].filter(Boolean).join(', ');
    lines.push(`  ${at ? `${at}: ` : ''}${p.message} (${p.at}, from pod ${p.pod})`);
  }
  if (r.cancelRequested) lines.push(`  cancel requested ${r.cancelRequested}`);
  if (r.reason) lines.push(`  ${r.reason}`);
  return lines.join('\n') + '\n';
}
