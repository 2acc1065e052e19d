// Entry point of the probe agent: wiring only, and the only place that exits the agent process.
import type { Server } from 'node:http';
import { describeError, exitCodeFor } from '../lib/errors.js';
import { liteCredentials, liteKube } from '../lib/kube-lite.js';
import { expectedOverlay, phaseAnnotation } from '../lib/node-state.js';
import { kubeDiscovery } from './kube-discovery.js';
import { version } from '../lib/version.js';
import { parseAgentCommandLine } from './config.js';
import { fileDiscovery, type ClusterView, type Discovery } from './discovery.js';
import { agentApp } from './http.js';
import { MatrixStore } from './matrix.js';
import { AgentMetrics } from './metrics.js';
import { Prober, realProbes } from './prober.js';
import { identityOf, peersOf, type SelfInfo } from './view.js';

const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);

/** Discovery through the API server, with the agent's own small client (lib/kube-lite.ts). */
function kubeDiscoveryFor(kubeconfig: string | undefined, namespace: string, selector: string): Discovery {
  return kubeDiscovery(liteKube(liteCredentials(kubeconfig)), namespace, selector, phaseAnnotation, (line) => log(`discovery: ${line}`));
}

async function main(): Promise<void> {
  const invocation = await parseAgentCommandLine(process.argv.slice(2), process.env);
  if (invocation.kind === 'shown') return;
  const cfg = invocation.config;
  const self: SelfInfo = { node: cfg.node, pod: cfg.pod, namespace: cfg.namespace, ip: cfg.ip, version };
  const startedAt = new Date();
  // Enough room for the window at the configured pace, with slack for jitter.
  const store = new MatrixStore(cfg.windowMs, Math.ceil((cfg.windowMs / cfg.intervalMs) * 2) + 10);
  let view: ClusterView = { agents: [], nodes: [], ciliumNodeCidrs: {} };
  let synced = false;
  let identity = identityOf(self, view, cfg);
  const metrics = new AgentMetrics(identity, cfg.maxFailingSeries, { intervalMs: cfg.intervalMs, windowMs: cfg.windowMs });

  const discovery: Discovery = cfg.peersFile ? fileDiscovery(cfg.peersFile, (err) => log(`discovery: ${err.message}`)) : kubeDiscoveryFor(cfg.kubeconfig, cfg.namespace, cfg.agentSelector);
  discovery.start((next) => {
    view = next;
    synced = true;
    const before = identity.overlayMismatch;
    identity = identityOf(self, view, cfg);
    metrics.setIdentity(identity);
    metrics.setNodes({
      legacy: view.nodes.filter((n) => expectedOverlay(n.labels, cfg.labelKey, n.phase) === 'legacy').length,
      cilium: view.nodes.filter((n) => expectedOverlay(n.labels, cfg.labelKey, n.phase) === 'cilium').length,
    });
    if (identity.overlayMismatch && identity.overlayMismatch !== before) log(`warning: ${identity.overlayMismatch}`);
    const peers = peersOf(self, identity, view, cfg);
    store.setPeers(peers);
  });

  const prober = new Prober(store, realProbes(cfg.port, cfg.largePacketSize), { intervalMs: cfg.intervalMs, focusIntervalMs: cfg.focusIntervalMs, timeoutMs: cfg.timeoutMs, maxPerSecond: cfg.maxPerSecond, focusShare: cfg.focusShare, jitter: cfg.jitter }, (peer, protocol, result) =>
    metrics.observe(peer, protocol, result),
  );
  prober.start();

  const app = agentApp({ identity: () => identity, notReady: () => (synced ? undefined : 'discovery has not synced yet'), startedAt, intervalMs: cfg.intervalMs }, store, metrics);
  const server: Server = await new Promise((resolve, reject) => {
    const s = app.listen(cfg.port, (err?: Error) => (err ? reject(err) : resolve(s)));
  });
  log(`probe agent ${version} on ${cfg.node} (${cfg.pod}, ${cfg.ip}) listening on :${cfg.port}`);

  await new Promise<void>((resolve) => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => resolve());
  });
  log('shutting down');
  const force = setTimeout(() => process.exit(0), 5000);
  force.unref();
  discovery.stop();
  await prober.stop();
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  await closed;
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    for (const line of describeError(err, process.argv.includes('-v'))) process.stderr.write(`${line}\n`);
    process.exit(exitCodeFor(err));
  },
);
