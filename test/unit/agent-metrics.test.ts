// Metric cardinality: O(1) aggregated series per agent plus a capped number of failing peers, at
// 1,000 peers; per-peer series go when peers recover or leave.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MatrixStore } from '../../agent/matrix.js';
import { AgentMetrics } from '../../agent/metrics.js';
import type { AgentIdentity, PeerRef } from '../../lib/row.js';

const identity: AgentIdentity = { node: 'n0', pod: 'a0', namespace: 'ns', ip: '10.244.0.5', overlay: 'legacy', expectedOverlay: 'legacy', version: 'test' };

function seriesCount(text: string): number {
  return text.split('\n').filter((l) => l && !l.startsWith('#')).length;
}

describe('agent metrics cardinality', () => {
  it('stays O(N) at 1,000 peers, a quarter of them failing', async () => {
    const store = new MatrixStore(60_000, 100);
    const peers: PeerRef[] = Array.from({ length: 1000 }, (_, i) => ({ node: `n${i + 1}`, pod: `a${i + 1}`, ip: `10.${i % 2 ? 245 : 244}.${i >> 8}.${i & 255}`, overlay: i % 2 ? 'cilium' : 'legacy' }));
    store.setPeers(peers.map((ref) => ({ ref, focus: false, protocols: ['icmp', 'http'] })));
    const metrics = new AgentMetrics(identity, 50);
    peers.forEach((p, i) => {
      for (const protocol of ['icmp', 'http'] as const) {
        const result = { ok: i % 4 !== 0, rttMs: 1 };
        store.record(p, protocol, { at: Date.now(), ...result });
        metrics.observe(p, protocol, result);
      }
    });
    metrics.refresh(store.snapshot().cells);
    const text = await metrics.registry.metrics();
    const count = seriesCount(text);
    // Aggregates: info, mismatch, unlisted, 2 peer gauges, 4 ratios, 8 counters, 4 histograms x 14
    // lines; plus at most 50 failing-peer series: far below one series per peer.
    assert.ok(count < 150, `${count} series for 1,000 peers`);
    assert.equal((text.match(/^cilium_migrate_peer_failure_ratio\{/gm) ?? []).length, 50, 'failing peers capped at 50');
    assert.match(text, /^cilium_migrate_failing_peers_unlisted 450$/m);
  });

  it('removes per-peer series when the peer recovers or leaves', async () => {
    const store = new MatrixStore(60_000, 2);
    const p: PeerRef = { node: 'n1', pod: 'a1', ip: '10.245.1.5', overlay: 'cilium' };
    store.setPeers([{ ref: p, focus: false, protocols: ['icmp'] }]);
    const metrics = new AgentMetrics(identity, 50);
    store.record(p, 'icmp', { at: Date.now(), ok: false });
    metrics.refresh(store.snapshot().cells);
    assert.match(await metrics.registry.metrics(), /cilium_migrate_peer_failure_ratio\{[^}]*dst_pod="a1"/);
    store.record(p, 'icmp', { at: Date.now(), ok: true });
    store.record(p, 'icmp', { at: Date.now(), ok: true });
    metrics.refresh(store.snapshot().cells);
    assert.doesNotMatch(await metrics.registry.metrics(), /cilium_migrate_peer_failure_ratio\{/, 'recovered');
    store.record(p, 'icmp', { at: Date.now(), ok: false });
    metrics.refresh(store.snapshot().cells);
    store.setPeers([]);
    metrics.refresh(store.snapshot().cells);
    const text = await metrics.registry.metrics();
    assert.doesNotMatch(text, /cilium_migrate_peer_failure_ratio\{/, 'left');
    assert.doesNotMatch(text, /cilium_migrate_reachability_ratio\{/, 'no pair without peers');
  });
});

describe('agent metrics for monitoring', () => {
  it('counts the cells without a sample within two intervals as stale', async () => {
    const store = new MatrixStore(60_000, 100);
    const fresh: PeerRef = { node: 'n1', pod: 'a1', ip: '10.244.1.5', overlay: 'legacy' };
    const behind: PeerRef = { node: 'n2', pod: 'a2', ip: '10.245.2.5', overlay: 'cilium' };
    const never: PeerRef = { node: 'n3', pod: 'a3', ip: '10.245.3.5', overlay: 'cilium' };
    store.setPeers([fresh, behind, never].map((ref) => ({ ref, focus: false, protocols: ['icmp'] })));
    const now = Date.now();
    store.record(fresh, 'icmp', { at: now - 1000, ok: true, rttMs: 1 });
    store.record(behind, 'icmp', { at: now - 20_000, ok: true, rttMs: 1 });
    const metrics = new AgentMetrics(identity, 50, { intervalMs: 5000, windowMs: 60_000 });
    metrics.refresh(store.snapshot().cells, now);
    assert.match(await metrics.registry.metrics(), /^cilium_migrate_stale_cells 2$/m, 'the one 20 s old and the one never probed');
    metrics.refresh(store.snapshot().cells, now - 15_000);
    assert.match(await metrics.registry.metrics(), /^cilium_migrate_stale_cells 1$/m);
  });

  it('reports the nodes discovery sees by the overlay they should be on', async () => {
    const metrics = new AgentMetrics(identity, 50);
    metrics.setNodes({ legacy: 3, cilium: 1 });
    const text = await metrics.registry.metrics();
    assert.match(text, /^cilium_migrate_nodes\{expected_overlay="legacy"\} 3$/m);
    assert.match(text, /^cilium_migrate_nodes\{expected_overlay="cilium"\} 1$/m);
  });
});
