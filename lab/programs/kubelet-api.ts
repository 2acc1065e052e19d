// The parts of kubelet that must sit in the node's network namespace, run there by the lab for each
// node: kubelet's API (HTTPS on the node's address, port 10250) with container logs, so
// `kubectl logs` works (the API server reaches it through its cluster egress), and, on a Unix socket
// for the lab runtime, readiness probes, which kubelet sends from the node to the pod's address.
// Logs are the files the lab runtime writes: PODS/<namespace>_<pod>_<uid8>/<container>.log, with
// <container>.exit once the container ended.
//
//   kubelet-api --listen 172.18.0.3:10250 --pods DIR --cert FILE --key FILE --probe-socket FILE
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import { createServer } from 'node:https';
import { connect } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

/** The newest log file of a container, or undefined. */
export function containerLog(podsDir: string, namespace: string, pod: string, container: string): string | undefined {
  const prefix = `${namespace}_${pod}_`;
  let best: { file: string; mtime: number } | undefined;
  for (const dir of existsSync(podsDir) ? readdirSync(podsDir) : []) {
    if (!dir.startsWith(prefix) || dir.length !== prefix.length + 8) continue;
    const file = join(podsDir, dir, `${container}.log`);
    if (!existsSync(file)) continue;
    const mtime = statSync(join(podsDir, dir)).mtimeMs;
    if (!best || mtime > best.mtime) best = { file, mtime };
  }
  return best?.file;
}

/** The last `n` lines of `text` (all when n is undefined). */
export function lastLines(text: string, n: number | undefined): string {
  if (n === undefined || n < 0) return text;
  const lines = text.endsWith('\n') ? text.slice(0, -1).split('\n') : text.split('\n');
  return n === 0 ? '' : lines.slice(-n).join('\n') + (text ? '\n' : '');
}

/** One probe from here (the node) to a pod: HTTP GET answered 200-399, or a TCP connection accepted. */
export function probe(q: URLSearchParams): Promise<{ ok: boolean; detail: string }> {
  const host = q.get('host') ?? '';
  const port = Number(q.get('port'));
  const timeout = Number(q.get('timeoutMs') ?? 1000);
  return new Promise((resolve) => {
    if (q.get('type') === 'tcp') {
      const sock = connect({ host, port, timeout });
      sock.once('connect', () => (sock.destroy(), resolve({ ok: true, detail: 'connected' })));
      sock.once('timeout', () => (sock.destroy(), resolve({ ok: false, detail: 'timeout' })));
      sock.once('error', (err) => resolve({ ok: false, detail: err.message }));
      return;
    }
    const req = httpRequest({ host, port, path: q.get('path') ?? '/', timeout, headers: { 'user-agent': 'kube-probe/lab', connection: 'close' } }, (res) => {
      res.resume();
      const code = res.statusCode ?? 0;
      resolve({ ok: code >= 200 && code < 400, detail: `HTTP ${code}` });
    });
    req.once('timeout', () => req.destroy(new Error('timeout')));
    req.once('error', (err) => resolve({ ok: false, detail: err.message }));
    req.end();
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { listen: { type: 'string' }, pods: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' }, 'probe-socket': { type: 'string' } } });
  const m = /^(.+):(\d+)$/.exec(values.listen ?? '');
  if (m === null || !values.pods || !values.cert || !values.key) {
    process.stderr.write('usage: kubelet-api --listen HOST:PORT --pods DIR --cert FILE --key FILE\n');
    process.exit(2);
  }
  const podsDir = values.pods;
  const server = createServer({ cert: readFileSync(values.cert), key: readFileSync(values.key) }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://kubelet');
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    if (req.method !== 'GET' || parts[0] !== 'containerLogs' || parts.length !== 4) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`the lab's kubelet serves only /containerLogs/NAMESPACE/POD/CONTAINER, not ${url.pathname}\n`);
      return;
    }
    const [, namespace, pod, container] = parts as [string, string, string, string];
    const file = containerLog(podsDir, namespace, pod, container);
    if (!file) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`no logs of container ${container} in pod ${namespace}/${pod} on this node\n`);
      return;
    }
    const tail = url.searchParams.has('tailLines') ? Number(url.searchParams.get('tailLines')) : undefined;
    const limit = url.searchParams.has('limitBytes') ? Number(url.searchParams.get('limitBytes')) : undefined;
    let text = lastLines(readFileSync(file, 'utf8'), tail);
    if (limit !== undefined && limit >= 0) text = text.slice(0, limit);
    res.writeHead(200, { 'content-type': 'text/plain' });
    if (url.searchParams.get('follow') !== 'true') {
      res.end(text);
      return;
    }
    res.write(text);
    let offset = statSync(file).size;
    const exitMark = file.replace(/\.log$/, '.exit');
    const timer = setInterval(() => {
      const size = statSync(file).size;
      if (size > offset) {
        res.write(readFileSync(file).subarray(offset, size));
        offset = size;
      } else if (existsSync(exitMark)) {
        clearInterval(timer);
        res.end();
      }
    }, 200);
    req.once('close', () => clearInterval(timer));
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(Number(m[2]), m[1], resolve));
  const probeSocket = values['probe-socket'];
  const prober = createHttpServer((req, res) => {
    void probe(new URL(req.url ?? '/', 'http://kubelet').searchParams).then((r) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(r)));
  });
  if (probeSocket) await new Promise<void>((resolve, reject) => prober.once('error', reject).listen(probeSocket, resolve));
  process.stdout.write(`kubelet API (logs) on ${values.listen}\n`);
  if (process.env.LAB_READY_FILE) writeFileSync(process.env.LAB_READY_FILE, 'ready\n');
  const stop = () => {
    prober.close();
    server.close(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (process.argv[1] !== undefined && /kubelet-api\.(ts|js)$/.test(process.argv[1])) void main();
