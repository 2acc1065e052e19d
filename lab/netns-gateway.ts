// Reaching into a lab network namespace from the host's without a route into it: an HTTP CONNECT
// proxy (lab/egress-proxy.ts) runs inside the namespace on a Unix socket (a path is reachable from
// every namespace), and connections from here tunnel through it. The lab's control plane is
// reached this way: its health checks, and the loopback forwarder kubectl and the plugin use.
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

/** Opens a TCP connection to host:port from inside the namespace whose gateway listens on `socketPath`. */
export function dialThrough(socketPath: string, host: string, port: number, timeoutMs = 10_000): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ socketPath, method: 'CONNECT', path: `${host}:${port}`, timeout: timeoutMs });
    req.once('connect', (res, socket, head) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        reject(new Error(`the gateway ${socketPath} could not reach ${host}:${port} (HTTP ${res.statusCode})`));
        return;
      }
      socket.setTimeout(0);
      if (head.length > 0) socket.unshift(head);
      resolve(socket);
    });
    req.once('timeout', () => req.destroy(new Error(`no answer from the gateway ${socketPath} within ${timeoutMs / 1000}s`)));
    req.once('error', reject);
    req.end();
  });
}

export interface Forwarder {
  /** The port it listens on (on 127.0.0.1). */
  readonly port: number;
  close(): Promise<void>;
}

/** Listens on 127.0.0.1 (`port`, 0 for any) and pipes every connection to host:port inside the namespace. */
export async function forwardThrough(socketPath: string, target: { host: string; port: number }, port = 0): Promise<Forwarder> {
  const open = new Set<Socket>();
  const server = createServer((client) => {
    open.add(client);
    client.pause();
    client.once('close', () => open.delete(client));
    client.on('error', () => client.destroy());
    dialThrough(socketPath, target.host, target.port).then(
      (upstream) => {
        if (client.destroyed) return upstream.destroy();
        open.add(upstream);
        const done = () => {
          open.delete(upstream);
          client.destroy();
          upstream.destroy();
        };
        upstream.once('error', done).once('close', done);
        client.once('close', done);
        client.pipe(upstream).pipe(client);
        client.resume();
      },
      () => client.destroy(),
    );
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', resolve));
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface TlsClient {
  ca?: Buffer | undefined;
  cert?: Buffer | undefined;
  key?: Buffer | undefined;
  /** Accept any server certificate (the components' self-signed health endpoints). */
  insecure?: boolean | undefined;
}

/** GET `url` (http or https), directly or, with `gateway`, from inside its namespace; resolves status and body. */
export function getText(url: string, o: TlsClient & { gateway?: string | undefined; timeoutMs?: number } = {}): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
  const timeout = o.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const onResponse = (res: import('node:http').IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body })).on('error', reject);
    };
    const tls = { ca: o.ca, cert: o.cert, key: o.key, rejectUnauthorized: !o.insecure, servername: u.hostname.match(/^[\d.]+$/) ? undefined : u.hostname };
    const createConnection = o.gateway === undefined ? undefined : (_opts: unknown, done: (err: Error | null, socket?: Socket) => void) => {
      dialThrough(o.gateway!, u.hostname, port, timeout).then((raw) => {
        if (u.protocol !== 'https:') return done(null, raw);
        const secure = tlsConnect({ socket: raw, ...tls });
        secure.once('secureConnect', () => done(null, secure));
        secure.once('error', (err) => done(err));
      }, (err: Error) => done(err));
      return undefined;
    };
    const options = { method: 'GET', timeout, ...(createConnection ? { createConnection } : {}), ...(u.protocol === 'https:' ? tls : {}) };
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, options as import('node:https').RequestOptions, onResponse);
    req.once('timeout', () => req.destroy(new Error(`GET ${url}: no answer within ${timeout / 1000}s`)));
    req.once('error', reject);
    req.end();
  });
}
