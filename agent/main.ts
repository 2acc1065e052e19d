// Entry point of the probe agent: wiring only, and the only place that exits the agent process.
// The probing itself (discovery, peers, prober, matrix) arrives with the agent; this serves the
// health endpoints the DaemonSet's probes use.
import express from 'express';
import { version } from '../lib/version.js';

const port = Number(process.env.AGENT_PORT ?? 8080);

if (process.argv.includes('--version')) {
  process.stdout.write(`${version}\n`);
  process.exit(0);
}

const app = express();
app.get('/healthz', (_req, res) => void res.type('text/plain').send('ok\n'));
app.get('/readyz', (_req, res) => void res.type('text/plain').send('ok\n'));

const server = app.listen(port, () => process.stderr.write(`probe agent ${version} listening on :${port}\n`));
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
