// The agent's HTTP API: /v1/row (its row of the matrix), /v1/ping (who answers), /healthz,
// /readyz and /metrics. Bad requests get a 4xx with a message; an internal error a 500, never a crash.
import express, { type NextFunction, type Request, type Response } from 'express';
import { probeProtocols, rowSchema, type AgentIdentity, type ProbeProtocol, type Row } from '../lib/row.js';
import type { MatrixStore } from './matrix.js';
import type { AgentMetrics } from './metrics.js';

export interface AgentState {
  identity(): AgentIdentity;
  /** Why the agent is not ready yet, or undefined when it is. */
  notReady(): string | undefined;
  startedAt: Date;
  intervalMs: number;
}

export function agentApp(state: AgentState, store: MatrixStore, metrics: AgentMetrics): express.Express {
  const app = express();
  app.disable('x-powered-by');

  app.get('/v1/row', (req, res) => {
    const protocol = req.query.protocol;
    if (protocol !== undefined && (typeof protocol !== 'string' || !(probeProtocols as readonly string[]).includes(protocol))) {
      res.status(400).json({ error: `protocol must be one of ${probeProtocols.join(', ')}` });
      return;
    }
    const sinceText = req.query.since;
    let since: number | undefined;
    if (sinceText !== undefined) {
      since = typeof sinceText === 'string' ? Date.parse(sinceText) : NaN;
      if (!Number.isFinite(since)) {
        res.status(400).json({ error: 'since must be an RFC 3339 time, e.g. 2026-01-02T15:04:05Z' });
        return;
      }
    }
    const snap = store.snapshot(since);
    const cells = protocol ? snap.cells.map((c) => ({ ...c, stats: c.stats.filter((s) => s.protocol === (protocol as ProbeProtocol)) })) : snap.cells;
    const row: Row = {
      schema: rowSchema,
      identity: state.identity(),
      generation: snap.generation,
      generatedAt: new Date().toISOString(),
      startedAt: state.startedAt.toISOString(),
      intervalMs: state.intervalMs,
      windowMs: store.windowMs,
      ...(since !== undefined ? { since: new Date(since).toISOString() } : {}),
      cells,
    };
    res.json(row);
  });

  app.get('/v1/ping', (_req, res) => {
    const id = state.identity();
    res.json({ node: id.node, pod: id.pod, ip: id.ip, overlay: id.overlay, time: new Date().toISOString() });
  });

  app.get('/healthz', (_req, res) => void res.type('text/plain').send('ok\n'));
  app.get('/readyz', (_req, res) => {
    const why = state.notReady();
    if (why) res.status(503).type('text/plain').send(`not ready: ${why}\n`);
    else res.type('text/plain').send('ok\n');
  });

  app.get('/metrics', async (_req, res, next) => {
    try {
      metrics.refresh(store.snapshot().cells);
      res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
    } catch (err) {
      next(err);
    }
  });

  const known = new Set(['/v1/row', '/v1/ping', '/healthz', '/readyz', '/metrics']);
  app.use((req, res) => {
    if (known.has(req.path)) res.status(405).set('Allow', 'GET').json({ error: `${req.method} is not allowed on ${req.path}; use GET` });
    else res.status(404).json({ error: `no such endpoint: ${req.path}; try /v1/row, /v1/ping, /healthz, /readyz or /metrics` });
  });
  // Express needs the four-argument signature to treat this as the error handler.
  app.use((err: Error & { status?: number; statusCode?: number }, _req: Request, res: Response, _next: NextFunction) => {
    const status = err.status ?? err.statusCode ?? 500;
    res.status(status >= 400 && status < 600 ? status : 500).json({ error: status < 500 ? err.message : 'internal error' });
  });
  return app;
}
