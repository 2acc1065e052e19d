// `connectivity --serve ADDR`: the heatmap page over HTTP, re-read every --interval, for a person
// to keep open during a migration. `/` is the page (it reloads itself), `/report.json` the data.
import { createServer, type Server } from 'node:http';
import { UsageError } from '../../lib/errors.js';
import { htmlView, type ConnectivityReport } from './views.js';

/** Serves the latest report at `address` (parsed by lib/flag-values' listenAddress); resolves once listening, with the URL to open. */
export async function serveReports(address: { host: string; port: number }, latest: () => ConnectivityReport | undefined, refreshSeconds: number): Promise<{ url: string; close(): Promise<void> }> {
  const { host, port } = address;
  const server: Server = createServer((req, res) => {
    const report = latest();
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (req.method !== 'GET') return void res.writeHead(405, { Allow: 'GET' }).end();
    if (path !== '/' && path !== '/report.json') return void res.writeHead(404, { 'content-type': 'text/plain' }).end('try / or /report.json\n');
    if (!report) return void res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '2' }).end('the first read of the matrix is under way\n');
    if (path === '/report.json') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(report));
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(htmlView(report, refreshSeconds));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new UsageError(`--serve ${host}:${port}: ${err.message}`, 'choose another port or address')));
    server.listen(port, host, () => resolve());
  });
  const bound = server.address();
  const shown = typeof bound === 'object' && bound ? `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}` : `${host}:${port}`;
  return {
    url: `http://${shown}/`,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
