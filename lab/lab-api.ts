// The lab's few API calls as plain JSON over lib/kube.ts's raw request: the lab writes status the
// way kubelet does (merge and strategic-merge patches of plain objects), which the typed client's
// model serialisation gets in the way of.
import { rawRequest, type Kube } from '../lib/kube.js';

export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = 'ApiError';
  }
}

const contentTypes = {
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  json: 'application/json',
} as const;

/** One request; throws ApiError on a non-2xx answer, with the server's message. */
export async function api<T = unknown>(kube: Kube, method: string, path: string, body?: unknown, patch: keyof typeof contentTypes = 'json'): Promise<T> {
  const res = await rawRequest(kube, method, path, body, 30_000, contentTypes[patch]);
  if (res.status < 200 || res.status > 299) {
    const message = (res.body as { message?: string } | undefined)?.message ?? String(res.body ?? '');
    throw new ApiError(res.status, `${method} ${path}: HTTP ${res.status}${message ? `: ${message}` : ''}`);
  }
  return res.body as T;
}

/** Like api(), but undefined on 404. */
export async function apiOrNotFound<T = unknown>(kube: Kube, method: string, path: string, body?: unknown, patch: keyof typeof contentTypes = 'json'): Promise<T | undefined> {
  try {
    return await api<T>(kube, method, path, body, patch);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return undefined;
    throw err;
  }
}
