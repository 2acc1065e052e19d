// The in-cluster run's Kubernetes access: its Job, the Job's pods and their log, as plain data.
// Jobs go through raw requests (the plugin's Kube bundles no batch client); pods and logs through
// client-node, which only lib/kube* files import.
import { Writable } from 'node:stream';
import { CliError, ExitCode, UnreachableError } from './errors.js';
import { call, k8s, optional, rawRequest, type Kube } from './kube.js';

/** A Job as the in-cluster run reads it. */
export interface JobView {
  name: string;
  namespace: string;
  uid: string;
  createdAt: Date;
  annotations: Record<string, string>;
  suspended: boolean;
  /** Pods running or pending now. */
  active: number;
  /** Failed pods that counted (an ignored eviction does not). */
  failed: number;
  /** The Job's end, when it has one: Complete or Failed (with its reason and message). */
  finished?: { outcome: 'Complete' | 'Failed'; reason: string; message: string; at?: Date | undefined } | undefined;
  /** The arguments its pods run the plugin with. */
  args: string[];
}

/** One pod of the Job. */
export interface RunPodView {
  name: string;
  uid: string;
  node: string;
  phase: string;
  createdAt: Date;
  deleting: boolean;
  /** Why the cluster stopped it (its DisruptionTarget condition: an eviction, a preemption), if it did. */
  disruption?: string | undefined;
  /** The run container's exit code, once it ended. */
  exitCode?: number | undefined;
  /** Whether the container has started (its log can be read). */
  started: boolean;
}

const jobPath = (namespace: string, name?: string) => `/apis/batch/v1/namespaces/${encodeURIComponent(namespace)}/jobs${name ? `/${encodeURIComponent(name)}` : ''}`;

function failure(what: string, res: { status: number; body: unknown }): CliError {
  const message = (res.body as { message?: string } | undefined)?.message ?? `HTTP ${res.status}`;
  if (res.status === 403) return new CliError(`${what}: forbidden: ${message}`, ExitCode.forbidden, 'run --in-cluster needs the permissions of manifests/rbac/in-cluster.yaml');
  if (res.status >= 500 || res.status === 429) return new UnreachableError(`${what}: the API server answered ${res.status}: ${message}`, 'retry shortly');
  return new CliError(`${what}: the API server answered ${res.status}: ${message}`, ExitCode.precondition);
}

interface RawJob {
  metadata: { name: string; namespace: string; uid: string; creationTimestamp: string; annotations?: Record<string, string> };
  spec?: { suspend?: boolean; template?: { spec?: { containers?: { args?: string[] }[] } } };
  status?: { active?: number; failed?: number; conditions?: { type: string; status: string; reason?: string; message?: string; lastTransitionTime?: string }[] };
}

export function toJobView(raw: RawJob): JobView {
  const done = raw.status?.conditions?.find((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
  return {
    name: raw.metadata.name,
    namespace: raw.metadata.namespace,
    uid: raw.metadata.uid,
    createdAt: new Date(raw.metadata.creationTimestamp),
    annotations: raw.metadata.annotations ?? {},
    suspended: raw.spec?.suspend === true,
    active: raw.status?.active ?? 0,
    failed: raw.status?.failed ?? 0,
    finished: done ? { outcome: done.type as 'Complete' | 'Failed', reason: done.reason ?? '', message: done.message ?? '', at: done.lastTransitionTime ? new Date(done.lastTransitionTime) : undefined } : undefined,
    args: raw.spec?.template?.spec?.containers?.[0]?.args ?? [],
  };
}

/** The Job, or undefined when there is none (or it is not ours to read: 403). */
export async function readJob(kube: Pick<Kube, 'config' | 'server'>, namespace: string, name: string): Promise<JobView | undefined> {
  const res = await rawRequest(kube, 'GET', jobPath(namespace, name));
  if (res.status === 404 || res.status === 403) return undefined;
  if (res.status !== 200) throw failure(`get job ${namespace}/${name}`, res);
  return toJobView(res.body as RawJob);
}

/** A JSON merge patch of the Job (annotations, spec.suspend). */
export async function patchJob(kube: Pick<Kube, 'config' | 'server'>, namespace: string, name: string, patch: unknown): Promise<void> {
  const res = await rawRequest(kube, 'PATCH', jobPath(namespace, name), patch, 30_000, 'application/merge-patch+json');
  if (res.status !== 200) throw failure(`patch job ${namespace}/${name}`, res);
}

/** Deletes the Job and its pods (foreground: the Job goes once its pods are gone); false when there was none. */
export async function deleteJob(kube: Pick<Kube, 'config' | 'server'>, namespace: string, name: string, uid: string): Promise<boolean> {
  const res = await rawRequest(kube, 'DELETE', jobPath(namespace, name), { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Foreground', preconditions: { uid } });
  if (res.status === 404 || res.status === 409) return false;
  if (res.status !== 200 && res.status !== 202) throw failure(`delete job ${namespace}/${name}`, res);
  return true;
}

/** The Job's pods (the controller labels them with its name), oldest first. */
export async function listJobPods(kube: Kube, namespace: string, job: string, container: string): Promise<RunPodView[]> {
  const list = await call(kube, `list pods of job ${namespace}/${job}`, () => kube.core.listNamespacedPod({ namespace, labelSelector: `batch.kubernetes.io/job-name=${job}` }));
  return list.items
    .map((p) => {
      const disruption = p.status?.conditions?.find((c) => c.type === 'DisruptionTarget' && c.status === 'True');
      const state = p.status?.containerStatuses?.find((c) => c.name === container)?.state;
      return {
        name: p.metadata?.name ?? '',
        uid: p.metadata?.uid ?? '',
        node: p.spec?.nodeName ?? '',
        phase: p.status?.phase ?? 'Pending',
        createdAt: p.metadata?.creationTimestamp ? new Date(p.metadata.creationTimestamp) : new Date(0),
        deleting: Boolean(p.metadata?.deletionTimestamp),
        disruption: disruption ? `${disruption.reason ?? 'DisruptionTarget'}${disruption.message ? `: ${disruption.message}` : ''}` : undefined,
        exitCode: state?.terminated?.exitCode,
        started: Boolean(state?.running || state?.terminated),
      };
    })
    .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
}

/** The migration lock's holder and last renewal, when there is a lease. */
export async function readLockLease(kube: Kube, namespace: string, name: string): Promise<{ holder: string; renewTime?: Date | undefined; durationSeconds: number } | undefined> {
  const lease = await call(kube, `get lease ${namespace}/${name}`, () => optional(() => kube.coordination.readNamespacedLease({ namespace, name })));
  if (!lease?.spec?.holderIdentity) return undefined;
  const renew = lease.spec.renewTime ?? lease.spec.acquireTime;
  return { holder: lease.spec.holderIdentity, renewTime: renew ? new Date(renew as unknown as string) : undefined, durationSeconds: lease.spec.leaseDurationSeconds ?? 0 };
}

/**
 * Streams the container's log line by line to `onLine` until the container ends, the stream
 * breaks or `signal` fires. Resolves in every case (a log that cannot be read is not an error for
 * a follower: it says so through `onError`).
 */
export async function followPodLog(kube: Pick<Kube, 'config'>, namespace: string, pod: string, container: string, onLine: (line: string) => void, signal: AbortSignal, onError: (message: string) => void): Promise<void> {
  let rest = '';
  let ended!: () => void;
  const done = new Promise<void>((resolve) => (ended = resolve));
  const sink = new Writable({
    write(chunk: Buffer, _enc, next) {
      const lines = (rest + chunk.toString('utf8')).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) onLine(line);
      next();
    },
    final(next) {
      if (rest) onLine(rest);
      rest = '';
      next();
      ended();
    },
  });
  sink.on('error', () => ended());
  sink.on('close', () => ended());
  let controller: AbortController | undefined;
  const stop = () => {
    controller?.abort();
    ended();
  };
  signal.addEventListener('abort', stop, { once: true });
  try {
    controller = await new k8s.Log(kube.config).log(namespace, pod, container, sink, { follow: true });
    if (signal.aborted) controller.abort();
    await done;
  } catch (err) {
    if (!signal.aborted) onError(`the log of pod ${pod} cannot be read now: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
  } finally {
    signal.removeEventListener('abort', stop);
  }
}
