// The agent's HTTP API on a loopback port, over an in-memory store.
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { agentApp } from '../../agent/http.js';
import { MatrixStore } from '../../agent/matrix.js';
import { AgentMetrics } from '../../agent/metrics.js';
import { parseRow, rowSchema, type AgentIdentity } from '../../lib/row.js';

const identity: AgentIdentity = { node: 'kind-worker', pod: 'agent-a', namespace: 'cilium-migrate', ip: '10.244.1.5', overlay: 'legacy', expectedOverlay: 'legacy', version: '0.0.0' };
const peer = { node: 'kind-worker2', pod: 'agent-b', ip: '10.245.2.5', overlay: 'cilium' as const };

describe('agent HTTP API', () => {
  let server: Server;
  let base: string;
  let ready = false;
  const store = new MatrixStore(60_000, 100);
  store.setPeers([{ ref: peer, focus: false, protocols: ['icmp', 'http'] }]);
  store.record(peer, 'icmp', { at: Date.now(), ok: true, rttMs: 0.4 });
  store.record(peer, 'http', { at: Date.now(), ok: false, error: 'http: timeout' });
  const metrics = new AgentMetrics(identity, 10);

  before(async () => {
    const app = agentApp({ identity: () => identity, notReady: () => (ready ? undefined : 'discovery has not synced yet'), startedAt: new Date(), intervalMs: 1000 }, store, metrics);
    server = await new Promise((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    const address = server.address();
    base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('serves the row in the versioned schema the plugin parses', async () => {
    const res = await fetch(`${base}/v1/row`);
    assert.equal(res.status, 200);
    const row = parseRow(await res.json());
    assert.equal(row.schema, rowSchema);
    assert.equal(row.identity.node, 'kind-worker');
    assert.equal(row.cells.length, 1);
    const [icmp, http] = row.cells[0]!.stats;
    assert.equal(icmp?.successRatio, 1);
    assert.equal(http?.successRatio, 0);
    assert.equal(http?.lastError, 'http: timeout');
  });

  it('filters the row by protocol, and refuses an unknown one with 400', async () => {
    const only = parseRow(await (await fetch(`${base}/v1/row?protocol=http`)).json());
    assert.deepEqual(only.cells[0]!.stats.map((s) => s.protocol), ['http']);
    const bad = await fetch(`${base}/v1/row?protocol=smoke-signals`);
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { error: string }).error, /protocol must be one of icmp, http, icmp-large/);
  });

  it('with ?since= counts only the samples taken from then on, and refuses a time it cannot parse', async () => {
    const all = parseRow(await (await fetch(`${base}/v1/row`)).json());
    assert.equal(all.since, undefined);
    const later = new Date(Date.now() + 60_000).toISOString();
    const none = parseRow(await (await fetch(`${base}/v1/row?since=${encodeURIComponent(later)}`)).json());
    assert.equal(none.since, later);
    assert.deepEqual(none.cells[0]!.stats.map((s) => s.samples), [0, 0], 'samples before `since` do not count');
    const earlier = new Date(Date.now() - 60_000).toISOString();
    const both = parseRow(await (await fetch(`${base}/v1/row?since=${encodeURIComponent(earlier)}`)).json());
    assert.deepEqual(both.cells[0]!.stats.map((s) => s.samples), [1, 1]);
    const bad = await fetch(`${base}/v1/row?since=yesterday`);
    assert.equal(bad.status, 400);
  });

  it('answers /v1/ping with who it is', async () => {
    const body = (await (await fetch(`${base}/v1/ping`)).json()) as Record<string, string>;
    assert.deepEqual([body.node, body.pod, body.ip, body.overlay], ['kind-worker', 'agent-a', '10.244.1.5', 'legacy']);
  });

  it('is not ready until discovery synced', async () => {
    assert.equal((await fetch(`${base}/readyz`)).status, 503);
    ready = true;
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
  });

  it('answers unknown paths with 404 and other methods with 405, as JSON', async () => {
    const missing = await fetch(`${base}/v2/everything`);
    assert.equal(missing.status, 404);
    assert.match(((await missing.json()) as { error: string }).error, /no such endpoint/);
    const post = await fetch(`${base}/v1/row`, { method: 'POST', body: '{' , headers: { 'content-type': 'application/json' } });
    assert.equal(post.status, 405);
    assert.equal((await fetch(`${base}/healthz`)).status, 200, 'still serving');
  });

  it('exports aggregated metrics and a series for the failing peer only', async () => {
    const text = await (await fetch(`${base}/metrics`)).text();
    assert.match(text, /cilium_migrate_agent_info\{node="kind-worker",pod="agent-a",overlay="legacy",expected_overlay="legacy",version="0.0.0"\} 1/);
    assert.match(text, /cilium_migrate_reachability_ratio\{src_overlay="legacy",dst_overlay="cilium",protocol="icmp"\} 1/);
    assert.match(text, /cilium_migrate_reachability_ratio\{src_overlay="legacy",dst_overlay="cilium",protocol="http"\} 0/);
    assert.match(text, /cilium_migrate_peer_failure_ratio\{src_overlay="legacy",dst_node="kind-worker2",dst_pod="agent-b",dst_overlay="cilium",protocol="http"\} 1/);
    assert.doesNotMatch(text, /cilium_migrate_peer_failure_ratio\{[^}]*protocol="icmp"/);
  });
});
