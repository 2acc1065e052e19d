// The one door to the Kubernetes API: kubeconfig loading, API clients and the translation of
// client errors into the plugin's typed errors. Only lib/kube*.ts imports @kubernetes/client-node.
import { existsSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest, type Agent as HttpsAgent, type RequestOptions } from 'node:https';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { maxResponseBytes } from './defaults.js';
import { CliError, ConfigError, ExitCode, NotFoundError, PreconditionError, UnreachableError } from './errors.js';

export { k8s };

/** For PATCH calls: client-node sends a JSON patch (a list of operations) unless told otherwise. */
export const mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);

/** Where to find the cluster: the global flags that kubectl also has. */
export interface KubeTarget {
  kubeconfig?: string | undefined;
  context?: string | undefined;
  namespace?: string | undefined;
}

/** The process facts kubeconfig discovery depends on, passed in so tests can vary them. */
export interface KubeEnvironment {
  env: NodeJS.ProcessEnv;
  home: string;
  exists: (path: string) => boolean;
}

const defaultEnvironment = (): KubeEnvironment => ({ env: process.env, home: homedir(), exists: existsSync });

const inClusterTokenPath = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/**
 * Loads the kubeconfig the way kubectl does (--kubeconfig, then $KUBECONFIG, then ~/.kube/config,
 * then in-cluster), and fails with a ConfigError where client-node would fall back to localhost:8080.
 */
export function loadKubeConfig(target: KubeTarget, environment: KubeEnvironment = defaultEnvironment()): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  const { env, home, exists } = environment;
  const load = (file: string, into: k8s.KubeConfig): void => {
    try {
      into.loadFromFile(file);
    } catch (err) {
      throw new ConfigError(`cannot read kubeconfig ${file}: ${firstLine(err)}`, 'check that the file is a valid kubeconfig (kubectl config view --kubeconfig FILE)', { cause: err });
    }
  };

  if (target.kubeconfig) {
    if (!exists(target.kubeconfig)) {
      throw new ConfigError(`kubeconfig ${target.kubeconfig} does not exist`, 'pass the path of an existing kubeconfig to --kubeconfig');
    }
    load(target.kubeconfig, kc);
  } else if (env.KUBECONFIG) {
    const files = env.KUBECONFIG.split(delimiter).filter((f) => f.length > 0);
    const present = files.filter((f) => exists(f));
    if (present.length === 0) {
      throw new ConfigError(`none of the files in KUBECONFIG exists (${files.join(delimiter)})`, 'fix KUBECONFIG or pass --kubeconfig');
    }
    const [first, ...rest] = present as [string, ...string[]];
    load(first, kc);
    for (const file of rest) {
      // Like kubectl: the first file that sets a value wins, so later files only add entries.
      const more = new k8s.KubeConfig();
      load(file, more);
      for (const cluster of more.clusters) if (!kc.getCluster(cluster.name)) kc.addCluster(cluster);
      for (const user of more.users) if (!kc.getUser(user.name)) kc.addUser(user);
      for (const context of more.contexts) if (!kc.getContextObject(context.name)) kc.addContext(context);
      if (!kc.currentContext && more.currentContext) kc.setCurrentContext(more.currentContext);
    }
  } else if (exists(join(home, '.kube', 'config'))) {
    load(join(home, '.kube', 'config'), kc);
  } else if (env.KUBERNETES_SERVICE_HOST && exists(inClusterTokenPath)) {
    kc.loadFromCluster();
  } else {
    throw new ConfigError(
      'no kubeconfig found: --kubeconfig is not set, KUBECONFIG is empty and ~/.kube/config does not exist',
      'pass --kubeconfig FILE or set KUBECONFIG; the plugin never falls back to localhost:8080',
    );
  }

  if (target.context) {
    if (!kc.getContextObject(target.context)) {
      const known = kc.getContexts().map((c) => c.name);
      throw new ConfigError(`context "${target.context}" is not in the kubeconfig`, known.length > 0 ? `known contexts: ${known.join(', ')}` : 'the kubeconfig has no contexts');
    }
    kc.setCurrentContext(target.context);
  }
  if (!kc.getCurrentContext() || !kc.getContextObject(kc.getCurrentContext())) {
    throw new ConfigError('the kubeconfig has no current context', 'pass --context NAME or run kubectl config use-context NAME');
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster || !cluster.server) {
    throw new ConfigError(`context "${kc.getCurrentContext()}" names no cluster with a server address`, 'check the kubeconfig (kubectl config view)');
  }
  return kc;
}

/** The API clients the plugin uses, bound to one kubeconfig and context. */
export interface Kube {
  readonly config: k8s.KubeConfig;
  /** The namespace from -n, else the context's, else "default". */
  readonly namespace: string;
  /** The API server address, for messages. */
  readonly server: string;
  readonly core: k8s.CoreV1Api;
  readonly apps: k8s.AppsV1Api;
  readonly policy: k8s.PolicyV1Api;
  readonly coordination: k8s.CoordinationV1Api;
  readonly custom: k8s.CustomObjectsApi;
  readonly extensions: k8s.ApiextensionsV1Api;
  readonly authorization: k8s.AuthorizationV1Api;
  readonly networking: k8s.NetworkingV1Api;
  readonly rbac: k8s.RbacAuthorizationV1Api;
  readonly version: k8s.VersionApi;
}

/** Connects (lazily: no request is made) to the cluster the target names. */
export function connect(target: KubeTarget, environment?: KubeEnvironment): Kube {
  const config = loadKubeConfig(target, environment);
  const context = config.getContextObject(config.getCurrentContext());
  return {
    config,
    namespace: target.namespace || context?.namespace || 'default',
    server: config.getCurrentCluster()?.server ?? '',
    core: config.makeApiClient(k8s.CoreV1Api),
    apps: config.makeApiClient(k8s.AppsV1Api),
    policy: config.makeApiClient(k8s.PolicyV1Api),
    coordination: config.makeApiClient(k8s.CoordinationV1Api),
    custom: config.makeApiClient(k8s.CustomObjectsApi),
    extensions: config.makeApiClient(k8s.ApiextensionsV1Api),
    authorization: config.makeApiClient(k8s.AuthorizationV1Api),
    networking: config.makeApiClient(k8s.NetworkingV1Api),
    rbac: config.makeApiClient(k8s.RbacAuthorizationV1Api),
    version: config.makeApiClient(k8s.VersionApi),
  };
}

/** The HTTP status of a client-node error, if it has one. */
export function statusCode(err: unknown): number | undefined {
  return err instanceof k8s.ApiException ? err.code : undefined;
}

/** A read whose 404 (API or object not there) or 403 (not ours to read) means "not known". */
export async function optional<T>(fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    if (statusCode(err) === 404 || statusCode(err) === 403) return undefined;
    throw err;
  }
}

// Error codes of node's networking that mean the server is not there or not the one we expect.
const networkCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET']);

/**
 * Translates an error thrown by a client-node call into a typed error; `what` names the request
 * for the message ("get node kind-worker").
 */
export function translateKubeError(err: unknown, what: string, server: string): CliError {
  if (err instanceof CliError) return err;
  const code = statusCode(err);
  if (code !== undefined) {
    const message = apiMessage(err) ?? `HTTP ${code}`;
    if (code === 401) return new UnreachableError(`${what}: the API server at ${server} refused the credentials (401)`, 'refresh the credentials in your kubeconfig', { cause: err });
    if (code === 403) return new CliError(`${what}: forbidden: ${message}`, ExitCode.forbidden, 'ask for the permissions listed in the README (manifests/rbac/plugin.yaml)', { cause: err });
    if (code === 404) return new NotFoundError(`${what}: not found: ${message}`);
    // The server is there but cannot serve now (restarting, overloaded): worth retrying.
    if (code >= 500 || code === 429) return new UnreachableError(`${what}: the API server answered ${code}: ${message}`, 'the API server is restarting or overloaded; retry shortly', { cause: err });
    return new CliError(`${what}: the API server answered ${code}: ${message}`, ExitCode.unreachable, undefined, { cause: err });
  }
  const netCode = networkErrorCode(err);
  if (netCode) {
    return new UnreachableError(`${what}: cannot reach the API server at ${server} (${netCode})`, 'check that the cluster is up and that --context names it', { cause: err });
  }
  if (err instanceof Error && /certificate|self[- ]signed|TLS/i.test(err.message)) {
    return new UnreachableError(`${what}: TLS to ${server} failed: ${err.message}`, 'check the certificate-authority in your kubeconfig', { cause: err });
  }
  return new CliError(`${what}: ${err instanceof Error ? err.message : String(err)}`, ExitCode.internal, undefined, { cause: err });
}

/** Runs one API call and translates its failure. */
export async function call<T>(kube: Pick<Kube, 'server'>, what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw translateKubeError(err, what, kube.server);
  }
}

/** The server's version (GET /version). */
export async function serverVersion(kube: Kube): Promise<k8s.VersionInfo> {
  return call(kube, 'get server version', () => kube.version.getCode());
}

/** An HTTP answer whose body the caller interprets itself. */
export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** The parsed JSON body, or the text when it is not JSON. */
  body: unknown;
}

/**
 * One request with the kubeconfig's credentials, returning status and raw body. For the calls
 * where client-node's parsing loses information (an eviction answered 201 with a failure Status).
 */
export async function rawRequest(kube: Pick<Kube, 'config' | 'server'>, method: string, path: string, body?: unknown, timeoutMs = 30_000, contentType = 'application/json', agent?: HttpsAgent, maxBytes = maxResponseBytes, onHead?: (head: string) => void): Promise<RawResponse> {
  const url = new URL(path, kube.server);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const options: RequestOptions = {
    method,
    headers: { Accept: 'application/json', ...(payload ? { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(payload) } : {}) },
    timeout: timeoutMs,
  };
  await kube.config.applyToHTTPSOptions(options);
  // client-node sets a fresh agent on every call, so every request would pay a TLS handshake (with a
  // client certificate: milliseconds of CPU each). Many small requests (one per probe agent) share
  // the caller's keep-alive agent instead; the TLS material stays in the options it uses. Not with
  // a proxy-url: that agent is the proxy's.
  if (agent && url.protocol === 'https:' && !kube.config.getCurrentCluster()?.proxyUrl) options.agent = agent;
  const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
  return new Promise<RawResponse>((resolve, reject) => {
    const req = send(url, options, (res) => {
      readLimited(res, maxBytes, onHead).then((text) => {
        let parsed: unknown = text;
        try {
          parsed = text ? JSON.parse(text) : undefined;
        } catch {
          // not JSON: keep the text
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed });
      }, (err: Error) => {
        req.destroy();
        reject(err);
      });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error(`${method} ${path} timed out after ${timeoutMs / 1000}s`), { code: 'ETIMEDOUT' })));
    req.on('error', (err) => reject(translateKubeError(err, `${method} ${path}`, kube.server)));
    req.end(payload);
  });
}

/** The answer was larger than the caller accepts: read no further. */
export class ResponseTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`the answer is larger than ${limit} bytes`);
    this.name = 'ResponseTooLargeError';
  }
}

/** How much of an answer `onHead` is shown: a list's kind, apiVersion and metadata, with room to spare. */
export const headBytes = 4096;

/**
 * Reads a stream as UTF-8 text, failing with ResponseTooLargeError once it exceeds `maxBytes`.
 * `onHead` is shown the first `headBytes` as soon as they have arrived, the rest still to come.
 */
export function readLimited(stream: NodeJS.ReadableStream, maxBytes: number, onHead?: (head: string) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    let headShown = !onHead;
    stream.on('data', (chunk: Buffer | string) => {
      if (done) return;
      const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      size += b.length;
      if (size > maxBytes) {
        done = true;
        // Read no further: whatever produces it stops when its stream is destroyed.
        (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
        reject(new ResponseTooLargeError(maxBytes));
        return;
      }
      chunks.push(b);
      if (!headShown && size >= headBytes) {
        headShown = true;
        onHead!(Buffer.concat(chunks).subarray(0, headBytes).toString('utf8'));
      }
    });
    stream.on('error', (err) => {
      if (!done) reject(err);
      done = true;
    });
    stream.on('end', () => {
      if (!done) resolve(Buffer.concat(chunks).toString('utf8'));
      done = true;
    });
  });
}

function networkErrorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && networkCodes.has(code)) return code;
    const errno = (e as { errno?: unknown }).errno;
    if (typeof errno === 'string' && networkCodes.has(errno)) return errno;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

function apiMessage(err: unknown): string | undefined {
  const body = (err as { body?: unknown }).body;
  if (typeof body === 'string') {
    try {
      const parsed = JSON.parse(body) as { message?: unknown };
      if (typeof parsed.message === 'string') return parsed.message;
    } catch {
      return body.slice(0, 200) || undefined;
    }
  }
  if (body && typeof body === 'object' && typeof (body as { message?: unknown }).message === 'string') {
    return (body as { message: string }).message;
  }
  return undefined;
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
}
