// A small Kubernetes client for the probe agent: the requests and watches its discovery needs, over
// node:https, with the credentials of a service account (in a pod) or of a kubeconfig's client
// certificate or token. The plugin uses @kubernetes/client-node (lib/kube.ts); the agent does not
// load it, which keeps a DaemonSet pod on every node some 37 MiB lighter (BENCHMARKS.md), and it
// can ask for metadata only (PartialObjectMetadata), which client-node's typed API cannot.
import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { parse } from 'yaml';
import { ConfigError } from './errors.js';

export interface LiteResponse {
  status: number;
  /** The parsed JSON body, or the text when it is not JSON. */
  body: unknown;
}

export interface LiteKube {
  /** https://host:port of the API server. */
  readonly server: string;
  /** `accept` replaces the Accept header (default application/json). */
  request(method: string, path: string, opts?: { timeoutMs?: number; signal?: AbortSignal; accept?: string }): Promise<LiteResponse>;
  /**
   * Streams the newline-delimited JSON objects of a watch until the server closes it (resolves),
   * the connection breaks (rejects) or `signal` aborts (resolves).
   */
  watch(path: string, onObject: (obj: unknown) => void, signal: AbortSignal, opts?: { accept?: string }): Promise<void>;
}

export interface Credentials {
  server: string;
  ca?: Buffer | undefined;
  cert?: Buffer | undefined;
  key?: Buffer | undefined;
  /** Read for every request: a projected service account token is rotated on disk. */
  token?: (() => string) | undefined;
  insecure: boolean;
}

const serviceAccountDir = '/var/run/secrets/kubernetes.io/serviceaccount';

/** Credentials from `kubeconfig`, else $KUBECONFIG's first file, else the pod's service account, else ~/.kube/config. */
export function liteCredentials(kubeconfig: string | undefined, env: NodeJS.ProcessEnv = process.env, saDir = serviceAccountDir): Credentials {
  const file = kubeconfig || env.KUBECONFIG?.split(':').find(Boolean);
  if (file) return fromKubeconfig(file);
  if (env.KUBERNETES_SERVICE_HOST) {
    const host = env.KUBERNETES_SERVICE_HOST.includes(':') ? `[${env.KUBERNETES_SERVICE_HOST}]` : env.KUBERNETES_SERVICE_HOST;
    return {
      server: `https://${host}:${env.KUBERNETES_SERVICE_PORT ?? '443'}`,
      ca: readFileSync(join(saDir, 'ca.crt')),
      token: () => readFileSync(join(saDir, 'token'), 'utf8').trim(),
      insecure: false,
    };
  }
  return fromKubeconfig(join(homedir(), '.kube', 'config'));
}

interface KubeconfigFile {
  'current-context'?: string;
  contexts?: { name: string; context: { cluster: string; user: string } }[];
  clusters?: { name: string; cluster: { server: string; 'certificate-authority'?: string; 'certificate-authority-data'?: string; 'insecure-skip-tls-verify'?: boolean } }[];
  users?: { name: string; user: { 'client-certificate'?: string; 'client-certificate-data'?: string; 'client-key'?: string; 'client-key-data'?: string; token?: string; tokenFile?: string; exec?: unknown; 'auth-provider'?: unknown } }[];
}

function fromKubeconfig(file: string): Credentials {
  let doc: KubeconfigFile;
  try {
    doc = parse(readFileSync(file, 'utf8')) as KubeconfigFile;
  } catch (err) {
    throw new ConfigError(`cannot read kubeconfig ${file}: ${(err as Error).message}`);
  }
  const ctx = doc.contexts?.find((c) => c.name === doc['current-context'])?.context;
  const cluster = doc.clusters?.find((c) => c.name === ctx?.cluster)?.cluster;
  const user = doc.users?.find((u) => u.name === ctx?.user)?.user ?? {};
  if (!ctx || !cluster?.server) throw new ConfigError(`kubeconfig ${file}: its current context names no cluster with a server`);
  if (user.exec || user['auth-provider']) throw new ConfigError(`kubeconfig ${file}: exec and auth-provider credentials are not supported by the agent`, 'use a service account token or a client certificate');
  const base = dirname(file);
  const material = (path: string | undefined, data: string | undefined) =>
    data ? Buffer.from(data, 'base64') : path ? readFileSync(isAbsolute(path) ? path : join(base, path)) : undefined;
  const tokenFile = user.tokenFile;
  return {
    server: cluster.server,
    ca: material(cluster['certificate-authority'], cluster['certificate-authority-data']),
    cert: material(user['client-certificate'], user['client-certificate-data']),
    key: material(user['client-key'], user['client-key-data']),
    token: user.token ? () => user.token! : tokenFile ? () => readFileSync(isAbsolute(tokenFile) ? tokenFile : join(base, tokenFile), 'utf8').trim() : undefined,
    insecure: cluster['insecure-skip-tls-verify'] === true,
  };
}

/** A client for the API server the credentials name. */
export function liteKube(creds: Credentials): LiteKube {
  const open = (method: string, path: string, timeoutMs: number | undefined, signal: AbortSignal | undefined, accept: string | undefined, onResponse: (res: IncomingMessage) => void, onError: (err: Error) => void) => {
    const url = new URL(path, creds.server);
    const options: RequestOptions = {
      method,
      headers: { Accept: accept ?? 'application/json', ...(creds.token ? { Authorization: `Bearer ${creds.token()}` } : {}) },
      ca: creds.ca,
      cert: creds.cert,
      key: creds.key,
      rejectUnauthorized: !creds.insecure,
      // Without a timeout (a watch), a connection of its own: Node's global agent times its sockets
      // out after 5 s without data (keepAlive with a 5 s timeout since Node 19), which cut every watch
      // that went quiet for 5 s, and the resumed watch waited out a growing backoff.
      ...(timeoutMs ? { timeout: timeoutMs } : { agent: false }),
      ...(signal ? { signal } : {}),
    };
    const req = (url.protocol === 'http:' ? httpRequest : httpsRequest)(url, options, onResponse);
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out after ${(timeoutMs ?? 0) / 1000}s`)));
    req.on('error', onError);
    // A watch can sit idle for minutes: keepalive notices a peer that vanished without a word.
    req.on('socket', (socket) => socket.setKeepAlive(true, 30_000));
    req.end();
  };
  return {
    server: creds.server,
    request(method, path, opts = {}) {
      return new Promise((resolve, reject) => {
        open(method, path, opts.timeoutMs ?? 30_000, opts.signal, opts.accept, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('error', reject);
          res.on('end', () => {
            let body: unknown = text;
            try {
              body = text ? JSON.parse(text) : undefined;
            } catch {
              // not JSON: keep the text
            }
            resolve({ status: res.statusCode ?? 0, body });
          });
        }, reject);
      });
    },
    watch(path, onObject, signal, opts = {}) {
      return new Promise((resolve, reject) => {
        if (signal.aborted) return resolve();
        const aborted = (err: Error) => (signal.aborted ? resolve() : reject(err));
        open('GET', path, undefined, signal, opts.accept, (res) => {
          if (res.statusCode !== 200) {
            res.resume();
            return reject(new Error(`watch ${path}: HTTP ${res.statusCode}`));
          }
          let buffer = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            buffer += chunk;
            let nl: number;
            while ((nl = buffer.indexOf('\n')) >= 0) {
              const line = buffer.slice(0, nl).trim();
              buffer = buffer.slice(nl + 1);
              if (!line) continue;
              try {
                onObject(JSON.parse(line));
              } catch {
                // a torn line cannot be parsed; the watch resumes from the last version seen
              }
            }
          });
          res.on('error', aborted);
          res.on('end', () => resolve());
          res.on('aborted', () => aborted(new Error(`watch ${path}: the connection was cut`)));
        }, aborted);
      });
    },
  };
}
