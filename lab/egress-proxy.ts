// The API server's way into the lab's pod network, as Konnectivity is on managed clusters: an HTTP
// CONNECT proxy listening on a Unix socket. It runs inside a lab network namespace (a socket path
// is reachable from every namespace), so the API server on the host's loopback can proxy to pod IPs
// (`pods/NAME:PORT/proxy/...`) without the host namespace ever getting a route into the lab.
//
//   ip netns exec NS node egress-proxy.js --socket /run/.../egress.sock
import { createServer, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { rmSync } from 'node:fs';
import { parseArgs } from 'node:util';

const connectTimeoutMs = 10_000;

/** Serves HTTP CONNECT on `socketPath`; resolves once listening. Only plain host:port targets. */
export async function startEgressProxy(socketPath: string): Promise<{ close(): Promise<void> }> {
  rmSync(socketPath, { force: true });
  const tunnels = new Set<Socket>();
  const server = createServer((_req, res) => {
    res.writeHead(405, { 'content-type': 'text/plain' }).end('only CONNECT\n');
  });
  server.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
    const target = parseTarget(req.url ?? '');
    if (target === undefined) {
      client.end('HTTP/1.1 400 Bad Request\r\n\r\n');
      return;
    }
    const upstream = connect({ host: target.host, port: target.port, timeout: connectTimeoutMs });
    tunnels.add(client).add(upstream);
    const done = () => {
      tunnels.delete(client);
      tunnels.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    upstream.once('connect', () => {
      upstream.setTimeout(0);
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.once('timeout', () => {
      client.end('HTTP/1.1 504 Gateway Timeout\r\n\r\n');
      done();
    });
    upstream.once('error', (err) => {
      if (!client.destroyed && upstream.connecting) client.end(`HTTP/1.1 502 Bad Gateway\r\n\r\n${err.message}\n`);
      done();
    });
    upstream.once('close', done);
    client.once('error', done);
    client.once('close', done);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, resolve);
  });
  return {
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of tunnels) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function parseTarget(authority: string): { host: string; port: number } | undefined {
  const m = /^\[?([0-9a-fA-F.:]+|[a-zA-Z0-9.-]+)\]?:(\d{1,5})$/.exec(authority);
  if (m === null) return undefined;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return undefined;
  return { host: m[1]!, port };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { socket: { type: 'string' } } });
  if (values.socket === undefined) {
    process.stderr.write('usage: egress-proxy --socket PATH\n');
    process.exit(2);
  }
  const proxy = await startEgressProxy(values.socket);
  process.stdout.write(`egress proxy listening on ${values.socket}\n`);
  const stop = () => void proxy.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (process.argv[1] !== undefined && /egress-proxy\.(ts|js)$/.test(process.argv[1])) void main();
