// `run --in-cluster`: the migration run as a Job in the cluster, so no terminal has to stay open.
// This file is the command's side on the person's machine (start, --attach, --cancel, --dry-run)
// and the run pod's own wiring (its progress on the Job); the run itself is the ordinary `run`.
import { hostname } from 'node:os';
import { systemClock } from '../../lib/clock.js';
import { inClusterRun, lockLeaseName } from '../../lib/defaults.js';
import { CliError, ExitCode, InterruptedError, NotFoundError, UsageError, type ExitCodeValue } from '../../lib/errors.js';
import type { Kube } from '../../lib/kube.js';
import { applyObject } from '../../lib/kube-objects.js';
import { deleteJob, followPodLog, listJobPods, patchJob, readJob, readLockLease, type JobView } from '../../lib/kube-jobs.js';
import { flagCoercion, imageReference } from '../../lib/flag-values.js';
import type { CommandContext } from '../context.js';
import { followRun, type RunSource } from './follow.js';
import { forwardedArgs, objectsYaml, runObjects } from './objects.js';
import { progressIo } from './progress.js';

/** The flags `run` gains for the in-cluster run; each value is parsed by lib/flag-values. */
export const inClusterFlags = {
  'in-cluster': { type: 'boolean', default: false, describe: 'Run the migration as a Job in the agent namespace (the same run flags), then follow it; Ctrl-C detaches, the Job goes on' },
  'attach': { type: 'boolean', default: false, describe: 'With --in-cluster: follow the run already in the cluster' },
  'cancel': { type: 'boolean', default: false, describe: 'With --in-cluster: stop the run in the cluster at its next safe point (state recorded; run --in-cluster again resumes)' },
  'image': { type: 'string', default: inClusterRun.image, coerce: flagCoercion('image', imageReference), describe: 'With --in-cluster: the project\'s image, which carries the plugin (make image builds it)' },
} as const;

export interface InClusterArgs {
  'in-cluster': boolean;
  attach: boolean;
  cancel: boolean;
  image: string;
  'dry-run': boolean;
  restart?: string | undefined;
  'agent-namespace': string;
  'cilium-namespace': string;
  'verify-namespace': string;
  'label-key': string;
}

/** The rules of the in-cluster flags, checked before anything contacts the cluster. */
export function checkInClusterFlags(args: InClusterArgs): void {
  if ((args.attach || args.cancel) && !args['in-cluster']) throw new UsageError(`--${args.attach ? 'attach' : 'cancel'} is for the in-cluster run: add --in-cluster`);
  if (args.attach && args.cancel) throw new UsageError('--attach and --cancel: choose one (--cancel follows the run until it has stopped)');
  if (!args['in-cluster'] || args.attach || args.cancel) return;
  // The run pod has no docker of the nodes' host, and cannot guess.
  if (args.restart === undefined || args.restart === 'kind') {
    throw new UsageError(`--in-cluster needs --restart reboot, exec or none${args.restart === 'kind' ? ' (kind restarts the node\'s container with docker on this machine, which the run pod cannot reach)' : ' (the run pod cannot use docker restart as a kind node on this machine would need)'}`);
  }
}

function source(kube: Kube, namespace: string): RunSource {
  return {
    job: () => readJob(kube, namespace, inClusterRun.name),
    pods: () => listJobPods(kube, namespace, inClusterRun.name, 'run'),
    followLog: (pod, onLine, signal, onError) => followPodLog(kube, namespace, pod, 'run', onLine, signal, onError),
  };
}

const where = (ns: string) => `job ${ns}/${inClusterRun.name}`;
const comeBack = (ns: string) =>
  `follow it again: kubectl cilium-migrate run --in-cluster --attach${ns === 'cilium-migrate' ? '' : ` --agent-namespace ${ns}`}\n` +
  `  its log:        kubectl -n ${ns} logs -f job/${inClusterRun.name}\n` +
  `  where it is:    kubectl cilium-migrate status${ns === 'cilium-migrate' ? '' : ` --agent-namespace ${ns}`}\n` +
  `  stop it:        kubectl cilium-migrate run --in-cluster --cancel\n`;

/** Whether the Job still has a run to do (neither ended nor cancelled). */
export const jobInProgress = (job: JobView) => !job.finished && !job.suspended;

/** `run --in-cluster` with --attach, --cancel or --dry-run, or a new run. */
export async function inClusterCommand(ctx: CommandContext, args: InClusterArgs): Promise<void> {
  checkInClusterFlags(args);
  const ns = args['agent-namespace'];
  const say = (line: string) => ctx.io.err(`${line}\n`);
  if (args['dry-run'] && !args.attach && !args.cancel) {
    ctx.io.out(objectsYaml(runObjects(objectOptions(ctx, args))));
    say(`dry run: nothing was created; these objects would run the migration in ${where(ns)}`);
    return;
  }
  const kube = ctx.kube();
  const existing = await readJob(kube, ns, inClusterRun.name);
  if (args.attach) {
    if (!existing) throw new NotFoundError(`no in-cluster run: ${where(ns)} does not exist`, 'start one with kubectl cilium-migrate run --in-cluster [run flags]');
    return follow(ctx, kube, ns, 'attach');
  }
  if (args.cancel) {
    if (!existing) throw new NotFoundError(`no in-cluster run to cancel: ${where(ns)} does not exist`);
    if (existing.finished) {
      say(`the run in ${where(ns)} has already ended (${existing.finished.outcome}); nothing to cancel`);
      return;
    }
    if (args['dry-run']) {
      say(`dry run: would suspend ${where(ns)}; its pod would stop at its next safe point`);
      return;
    }
    // Suspending the Job makes its controller stop the pod (SIGTERM: the run stops at its next
    // safe point, records its state and releases the lock) and start no other; the annotation
    // says who asked and when, for status and for people.
    await patchJob(kube, ns, inClusterRun.name, { metadata: { annotations: { [inClusterRun.cancelAnnotation]: `${new Date().toISOString()} by ${hostname()}` } }, spec: { suspend: true } });
    say(`asked the run in ${where(ns)} to stop at its next safe point; waiting for its pod to stop`);
    return follow(ctx, kube, ns, 'cancel');
  }
  if (existing && jobInProgress(existing)) {
    throw new CliError(`a migration run is already in progress in the cluster (${where(ns)}, started ${existing.createdAt.toISOString()})`, ExitCode.locked, 'follow it with run --in-cluster --attach, or stop it with run --in-cluster --cancel');
  }
  // A run from a terminal holds the lock: the pod would only wait for it.
  const lease = await readLockLease(kube, args['cilium-namespace'], lockLeaseName);
  if (lease && lease.renewTime && Date.now() - lease.renewTime.getTime() < lease.durationSeconds * 1000) {
    throw new CliError(`another migration run holds the lock (lease ${args['cilium-namespace']}/${lockLeaseName}: ${lease.holder}, renewed ${Math.round((Date.now() - lease.renewTime.getTime()) / 1000)}s ago)`, ExitCode.locked, 'wait for it to finish, or stop it; then run --in-cluster again');
  }
  if (existing) {
    say(`replacing the ${existing.finished ? `finished (${existing.finished.outcome})` : 'cancelled'} run in ${where(ns)}; the new one resumes from the state on the nodes`);
    await deleteJob(kube, ns, existing.name, existing.uid);
    await waitGone(kube, ns, ctx.signal);
  }
  for (const obj of runObjects(objectOptions(ctx, args))) {
    const outcome = await applyObject(kube, obj);
    say(`${obj.kind.toLowerCase()} ${obj.metadata.namespace ? `${obj.metadata.namespace}/` : ''}${obj.metadata.name} ${outcome}`);
  }
  say(`the migration runs in ${where(ns)}; following it (Ctrl-C detaches, the run goes on)`);
  return follow(ctx, kube, ns, 'start');
}

function objectOptions(ctx: CommandContext, args: InClusterArgs) {
  return { namespace: args['agent-namespace'], ciliumNamespace: args['cilium-namespace'], verifyNamespace: args['verify-namespace'], image: args.image, args: forwardedArgs(ctx.argv), labelKey: args['label-key'] };
}

async function waitGone(kube: Kube, ns: string, signal: AbortSignal): Promise<void> {
  for (let i = 0; i < 150; i++) {
    if (!(await readJob(kube, ns, inClusterRun.name))) return;
    await systemClock.sleep(1000, signal);
    if (signal.aborted) throw new InterruptedError(`stopped while the previous ${where(ns)} was being deleted; nothing new was created`);
  }
  throw new CliError(`the previous ${where(ns)} is still being deleted after 150s`, ExitCode.timeout, `check its pods: kubectl -n ${ns} get pods -l batch.kubernetes.io/job-name=${inClusterRun.name}`);
}

const knownCodes = new Set<number>(Object.values(ExitCode));

async function follow(ctx: CommandContext, kube: Kube, ns: string, mode: 'start' | 'attach' | 'cancel'): Promise<void> {
  const say = (line: string) => ctx.io.err(`${line}\n`);
  // Ctrl-C here leaves the run going: the first one detaches, it does not stop anything.
  ctx.io.onInterrupt?.(mode === 'cancel' ? 'no longer waiting for the run to stop; it still stops at its next safe point' : `detaching; the run goes on in ${where(ns)}`);
  const r = await followRun(source(kube, ns), say, systemClock, ctx.signal, inClusterRun.pollMs);
  switch (r.end) {
    case 'detached':
      say(`\ndetached: the run goes on in the cluster (${where(ns)})\n  ${comeBack(ns)}`);
      return;
    case 'complete':
      say(`the run in ${where(ns)} finished: every node is migrated (next: kubectl cilium-migrate finalize)`);
      return;
    case 'gone':
      throw new NotFoundError(`${where(ns)} was deleted while it was followed`, 'the state is on the nodes: run --in-cluster again resumes');
    case 'cancelled':
      if (mode === 'cancel') {
        say(`the run stopped at a safe point, its state recorded on the nodes; kubectl cilium-migrate run --in-cluster [run flags] resumes it`);
        return;
      }
      throw new InterruptedError(`the run in ${where(ns)} was cancelled (${r.job?.annotations[inClusterRun.cancelAnnotation] ?? 'suspended'}); its state is recorded on the nodes`, 'run --in-cluster again resumes it');
    case 'failed': {
      const code = r.lastPod?.exitCode;
      const exit: ExitCodeValue = code !== undefined && knownCodes.has(code) && code !== 0 ? (code as ExitCodeValue) : ExitCode.internal;
      throw new CliError(`the run in ${where(ns)} failed: ${r.job?.finished?.reason ?? ''}${r.job?.finished?.message ? `: ${r.job.finished.message}` : ''}${code !== undefined ? ` (its last pod exited ${code})` : ''}`, exit, `its log: kubectl -n ${ns} logs job/${inClusterRun.name}; fix the cause, then run --in-cluster again: it resumes from the state on the nodes`);
    }
  }
}

/**
 * In a run pod (its Job's variables set): the run's Io, which also records the progress on the
 * Job; elsewhere `ctx` as it is. `done` writes the last progress, with how the run ended.
 */
export function runPodContext(ctx: CommandContext, env: NodeJS.ProcessEnv = process.env): { ctx: CommandContext; inPod: boolean; done(err?: unknown): Promise<void> } {
  const job = env[inClusterRun.env.job];
  const ns = env[inClusterRun.env.namespace];
  if (!job || !ns) return { ctx, inPod: false, done: async () => {} };
  const write = (p: unknown) => patchJob(ctx.kube(), ns, job, { metadata: { annotations: { [inClusterRun.progressAnnotation]: JSON.stringify(p) } } });
  const progress = progressIo(ctx.io, { pod: env[inClusterRun.env.pod] ?? hostname(), podNode: env[inClusterRun.env.node] ?? '' }, write, systemClock, inClusterRun.progressEveryMs);
  return {
    ctx: { ...ctx, io: progress.io, kube: () => ctx.kube() },
    inPod: true,
    done: (err) => progress.close(err === undefined ? 'the run finished' : `stopped: ${err instanceof Error ? err.message : String(err)}`),
  };
}
