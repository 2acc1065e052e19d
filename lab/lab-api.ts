// The lab's few API calls as plain JSON with the kubeconfig's credentials: the lab writes status
// the way kubelet does (merge and strategic-merge patches of plain objects), which the typed
// client's model serialisation gets in the way of.
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { liteCredentials, liteKube, type Credentials, type LiteKube } from '../lib/kube-lite.js';

/** The lab's client: kube-lite for watches (lib/kube-watch.ts), and its credentials for writes. */
export interface LabClient {
  readonly lite: LiteKube;
  readonly creds: Credentials;
}

/** A client for the kubeconfig (or $KUBECONFIG, or the pod's service account). */
export function labClient(kubeconfig?: string): LabClient {
  const creds = liteCredentials(kubeconfig);
  return { creds, lite: liteKube(creds) };
}

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
async function send(client: LabClient, method: string, path: string, body: unknown, contentType: string, timeoutMs = 30_000): Promise<{ status: number; body: unknown }> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const { creds } = client;
  const options: RequestOptions = {
    method,
    headers: {
      Accept: 'application/json',
      ...(creds.token ? { Authorization: `Bearer ${creds.token()}` } : {}),
      ...(payload ? { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(payload) } : {}),
    },
    ca: creds.ca,
    cert: creds.cert,
    key: creds.key,
    rejectUnauthorized: !creds.insecure,
    timeout: timeoutMs,
  };
  return new Promise((resolve, reject) => {
    const req = httpsRequest(new URL(path, creds.server), options, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d)).on('error', reject).on('end', () => {
        let parsed: unknown = text;
        try {
          parsed = text ? JSON.parse(text) : undefined;
        } catch {
          // not JSON: keep the text
        }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out after ${timeoutMs / 1000}s`)));
    req.on('error', reject);
    req.end(payload);
  });
}

export async function api<T = unknown>(kube: LabClient, method: string, path: string, body?: unknown, patch: keyof typeof contentTypes = 'json'): Promise<T> {
  const res = await send(kube, method, path, body, contentTypes[patch]);
  if (res.status < 200 || res.status > 299) {
    const message = (res.body as { message?: string } | undefined)?.message ?? String(res.body ?? '');
    throw new ApiError(res.status, `${method} ${path}: HTTP ${res.status}${message ? `: ${message}` : ''}`);
  }
  return res.body as T;
}

/** Like api(), but undefined on 404. */
export async function apiOrNotFound<T = unknown>(kube: LabClient, method: string, path: string, body?: unknown, patch: keyof typeof contentTypes = 'json'): Promise<T | undefined> {
  try {
    return await api<T>(kube, method, path, body, patch);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return undefined;
    throw err;
  }
}
