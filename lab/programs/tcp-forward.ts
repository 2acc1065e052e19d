// A byte pipe between a TCP listener and a Unix socket, for crossing between the lab's network
// namespaces and the host's without a route: a socket path is reachable from every namespace.
//
//   tcp-forward --listen 10.96.0.1:443 --unix /run/.../api.sock   (inside a lab namespace)
import { connect, createServer, type Socket } from 'node:net';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

/** Accepts on `listen` and pipes every connection to a fresh connection made by `dial`. */
export function forward(listen: Parameters<ReturnType<typeof createServer>['listen']>[0], dial: () => Socket): Promise<{ close(): Promise<void> }> {
  const open = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = dial();
    open.add(client).add(upstream);
    const done = () => {
      open.delete(client);
      open.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    client.pipe(upstream).pipe(client);
    client.once('error', done).once('close', done);
    upstream.once('error', done).once('close', done);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen, () =>
      resolve({
        close: () =>
          new Promise<void>((r) => {
            for (const s of open) s.destroy();
            server.close(() => r());
          }),
      }),
    );
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { listen: { type: 'string' }, unix: { type: 'string' } } });
  const m = /^(.+):(\d+)$/.exec(values.listen ?? '');
  if (m === null || values.unix === undefined) {
    process.stderr.write('usage: tcp-forward --listen HOST:PORT --unix SOCKET\n');
    process.exit(2);
  }
  const socket = values.unix;
  const fwd = await forward({ host: m[1]!, port: Number(m[2]) }, () => connect(socket));
  process.stdout.write(`forwarding ${values.listen} to ${socket}\n`);
  if (process.env.LAB_READY_FILE) writeFileSync(process.env.LAB_READY_FILE, 'ready\n');
  const stop = () => void fwd.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (process.argv[1] !== undefined && /tcp-forward\.(ts|js)$/.test(process.argv[1])) void main();
