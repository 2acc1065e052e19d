// `connectivity --serve ADDR`: the heatmap page over HTTP, re-read every --interval, for a person
// to keep open during a migration. `/` is the page (it reloads itself), `/report.json` the data.
import { createServer, type Server } from 'node:http';
import { UsageError } from '../../lib/errors.js';
import { htmlView, type ConnectivityReport } from './views.js';

/** "host:port", "[v6]:port", ":port" or "port"; the host defaults to loopback. */
export function parseListenAddress(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text) ?? /^()()(\d+)$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--serve: "${text}" is not an address to listen on`, 'use HOST:PORT, e.g. 127.0.0.1:8080 (or :8080 for loopback)');
  return { host: m[1] || m[2] || '127.0.0.1', port };
}

/** Serves the latest report; resolves once listening, with the URL to open. */
export async function serveReports(address: string, latest: () => ConnectivityReport | undefined, refreshSeconds: number): Promise<{ url: string; close(): Promise<void> }> {
  const { host, port } = parseListenAddress(address);
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
    server.once('error', (err) => reject(new UsageError(`--serve ${address}: ${err.message}`, 'choose another port or address')));
    server.listen(port, host, () => resolve());
  });
  const bound = server.address();
  const shown = typeof bound === 'object' && bound ? `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}` : address;
  return {
    url: `http://${shown}/`,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
