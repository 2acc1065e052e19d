// Changing objects through the Kubernetes API: evicting a pod (policy/v1, UID precondition, the
// answers kubectl's drain tells apart), and applying (server-side) or deleting a manifest's object.
// Connection, errors and raw requests are lib/kube.ts's.
import { CliError, ExitCode, PreconditionError, UnreachableError } from './errors.js';
import { k8s, rawRequest, translateKubeError, type Kube, type RawResponse } from './kube.js';

/** How an eviction request ended. */
export type EvictionOutcome =
  | { kind: 'evicted' }
  /** 404: the pod is gone already. */
  | { kind: 'gone' }
  /** 409 on the UID precondition: the name now belongs to a new pod, so ours is gone. */
  | { kind: 'replaced' }
  /** 429: a PodDisruptionBudget forbids it now; retry later. */
  | { kind: 'blocked'; retryAfterSeconds: number; message: string }
  /** 409 for another reason (a conflicting update): retry soon. */
  | { kind: 'conflict'; message: string }
  /** 403 with cause NamespaceTerminating: the pod's namespace is being deleted (kubectl waits or retries). */
  | { kind: 'namespace-terminating'; message: string }
  /** The server cannot evict this pod at all (more than one PDB covers it). */
  | { kind: 'failed'; message: string };

const multiPdb = /more than one PodDisruptionBudget/i;

/**
 * Evicts a pod through policy/v1, with a UID precondition so a recreated pod of the same name is
 * never evicted by mistake. Reads the raw answer: the server reports a pod under several PDBs with
 * HTTP 201 and a failure Status in the body, which client-node would take for success.
 */
export async function evictPod(kube: Pick<Kube, 'config' | 'server'>, pod: { namespace: string; name: string; uid: string }, gracePeriodSeconds?: number): Promise<EvictionOutcome> {
  const path = `/api/v1/namespaces/${encodeURIComponent(pod.namespace)}/pods/${encodeURIComponent(pod.name)}/eviction`;
  const res = await rawRequest(kube, 'POST', path, {
    apiVersion: 'policy/v1',
    kind: 'Eviction',
    metadata: { name: pod.name, namespace: pod.namespace },
    deleteOptions: { preconditions: { uid: pod.uid }, ...(gracePeriodSeconds !== undefined && gracePeriodSeconds >= 0 ? { gracePeriodSeconds } : {}) },
  });
  const outcome = interpretEviction(res);
  if (outcome) return outcome;
  const message = (res.body as { message?: string } | undefined)?.message ?? `HTTP ${res.status}`;
  const what = `evict pod ${pod.namespace}/${pod.name}`;
  throw translateKubeError(new k8s.ApiException(res.status, message, res.body, res.headers as Record<string, string>), what, kube.server);
}

/**
 * What an eviction answer means, or undefined for an unexpected error. Servers before the fix
 * answer a pod under several PDBs with 201 and a failure Status; newer ones with 500.
 */
export function interpretEviction(res: Pick<RawResponse, 'status' | 'headers' | 'body'>): EvictionOutcome | undefined {
  const status = res.body as { kind?: string; status?: string; message?: string; code?: number; details?: { retryAfterSeconds?: number; causes?: { type?: string; message?: string }[] } } | undefined;
  const message = [status?.message, ...(status?.details?.causes ?? []).map((c) => c.message)].filter(Boolean).join(': ');
  if (res.status >= 200 && res.status < 300) {
    if (status?.kind === 'Status' && status.status === 'Failure') return { kind: 'failed', message: message || `eviction failed (code ${status.code})` };
    return { kind: 'evicted' };
  }
  if (res.status === 404) return { kind: 'gone' };
  if (res.status === 403 && (status?.details?.causes ?? []).some((c) => c.type === 'NamespaceTerminating')) return { kind: 'namespace-terminating', message };
  if (res.status === 409) return /precondition/i.test(message) ? { kind: 'replaced' } : { kind: 'conflict', message };
  if (res.status === 429) {
    const header = Number(res.headers['retry-after']);
    const retryAfterSeconds = Number.isFinite(header) && header > 0 ? header : status?.details?.retryAfterSeconds ?? 0;
    return { kind: 'blocked', retryAfterSeconds, message };
  }
  if (res.status === 500 && multiPdb.test(message)) return { kind: 'failed', message };
  return undefined;
}

/** A Kubernetes object as plain data (what a manifest holds). */
export interface ManifestObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [key: string]: unknown };
  [key: string]: unknown;
}

export type ApplyOutcome = 'created' | 'configured' | 'unchanged' | 'created (dry run)' | 'configured (dry run)' | 'unchanged (dry run)';

/** Our field manager for server-side apply, so `kubectl get -o yaml --show-managed-fields` names us. */
export const fieldManager = 'kubectl-cilium-migrate';

/** The REST path of `obj` (discovery maps its kind to a resource); a clear error for an unknown kind. */
export async function objectPath(kube: Pick<Kube, 'config' | 'server'>, obj: Pick<ManifestObject, 'apiVersion' | 'kind' | 'metadata'>): Promise<string> {
  const base = obj.apiVersion.includes('/') ? `/apis/${obj.apiVersion}` : `/api/${obj.apiVersion}`;
  const res = await rawRequest(kube, 'GET', base);
  const list = res.body as { resources?: { name: string; kind: string; namespaced: boolean }[] } | undefined;
  const resource = res.status === 200 ? list?.resources?.find((r) => r.kind === obj.kind && !r.name.includes('/')) : undefined;
  if (!resource) {
    throw new PreconditionError(`the API server does not serve ${obj.kind} in ${obj.apiVersion}`, 'install the CRD (or the component) that defines it first');
  }
  const ns = resource.namespaced ? `/namespaces/${encodeURIComponent(obj.metadata.namespace ?? 'default')}` : '';
  return `${base}${ns}/${resource.name}/${encodeURIComponent(obj.metadata.name)}`;
}

/**
 * Server-side applies `obj` (as `kubectl apply --server-side`), saying whether it created, changed
 * or left the object as it was. A field owned by another manager is a conflict unless `force`.
 */
export async function applyObject(kube: Pick<Kube, 'config' | 'server'>, obj: ManifestObject, opts: { dryRun?: boolean; force?: boolean } = {}): Promise<ApplyOutcome> {
  const what = `apply ${obj.kind} ${obj.metadata.namespace ? `${obj.metadata.namespace}/` : ''}${obj.metadata.name}`;
  const path = await objectPath(kube, obj);
  const failed = (res: RawResponse) => {
    const message = (res.body as { message?: string } | undefined)?.message ?? `HTTP ${res.status}`;
    if (res.status === 403) return new CliError(`${what}: forbidden: ${message}`, ExitCode.forbidden, 'ask for the permissions listed in the README (manifests/rbac/plugin.yaml)');
    if (res.status >= 500 || res.status === 429) return new UnreachableError(`${what}: the API server answered ${res.status}: ${message}`, 'retry shortly');
    return new PreconditionError(`${what}: the API server answered ${res.status}: ${message}`);
  };
  const current = await rawRequest(kube, 'GET', path);
  if (current.status !== 200 && current.status !== 404) throw failed(current);
  const before = current.status === 200 ? (current.body as k8s.KubernetesObject) : undefined;
  const query = new URLSearchParams({ fieldManager, ...(opts.force ? { force: 'true' } : {}), ...(opts.dryRun ? { dryRun: 'All' } : {}) });
  const res = await rawRequest(kube, 'PATCH', `${path}?${query.toString()}`, obj, 30_000, 'application/apply-patch+yaml');
  if (res.status === 409) {
    const detail = ((res.body as { message?: string } | undefined)?.message ?? 'conflict').replace(/^Apply failed with \d+ conflicts?: /, '');
    throw new PreconditionError(
      `${what}: another field manager owns fields this would change (${detail})`,
      'check who manages it (kubectl get --show-managed-fields -o yaml), then rerun with --force-conflicts to take the fields over',
    );
  }
  if (res.status !== 200 && res.status !== 201) throw failed(res);
  const after = res.body as k8s.KubernetesObject;
  const outcome = before === undefined ? 'created' : before.metadata?.resourceVersion === after.metadata?.resourceVersion ? 'unchanged' : 'configured';
  if (!opts.dryRun) return outcome;
  // A dry run never changes the resourceVersion: compare what the object would become instead.
  if (before === undefined) return 'created (dry run)';
  return JSON.stringify(stripVolatile(before)) === JSON.stringify(stripVolatile(after)) ? 'unchanged (dry run)' : 'configured (dry run)';
}

function stripVolatile(o: k8s.KubernetesObject): unknown {
  const { managedFields: _m, resourceVersion: _r, generation: _g, ...metadata } = (o.metadata ?? {}) as Record<string, unknown>;
  return { ...o, metadata };
}

/** Deletes the object (dependents in the background, as kubectl); false when it was not there. */
export async function deleteObject(kube: Pick<Kube, 'config' | 'server'>, header: Pick<ManifestObject, 'apiVersion' | 'kind' | 'metadata'>, opts: { dryRun?: boolean } = {}): Promise<boolean> {
  const what = `delete ${header.kind} ${header.metadata.namespace ? `${header.metadata.namespace}/` : ''}${header.metadata.name}`;
  const path = await objectPath(kube, header);
  const res = await rawRequest(kube, 'DELETE', `${path}${opts.dryRun ? '?dryRun=All' : ''}`, { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Background' });
  if (res.status === 404) return false;
  if (res.status === 200 || res.status === 202) return true;
  const message = (res.body as { message?: string } | undefined)?.message ?? `HTTP ${res.status}`;
  if (res.status === 403) throw new CliError(`${what}: forbidden: ${message}`, ExitCode.forbidden, 'ask for the permissions listed in the README (manifests/rbac/plugin.yaml)');
  throw new UnreachableError(`${what}: the API server answered ${res.status}: ${message}`, 'retry shortly');
}
