import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MatrixStore, percentile } from '../../agent/matrix.js';
import type { PeerRef } from '../../lib/row.js';

const peer: PeerRef = { node: 'n2', pod: 'agent-2', ip: '10.245.2.10', overlay: 'cilium' };

describe('MatrixStore', () => {
  it('keeps a sliding window per peer and protocol, with ratio, percentiles and last times', () => {
    let now = 1_000_000;
    const store = new MatrixStore(10_000, 100, () => now);
    store.setPeers([{ ref: peer, focus: false, protocols: ['icmp', 'http'] }]);
    for (let i = 1; i <= 10; i++) store.record(peer, 'icmp', { at: (now += 500), ok: i !== 5, rttMs: i, ...(i === 5 ? { error: 'timeout' } : {}) });
    const s = store.stats(peer, 'icmp');
    assert.equal(s.samples, 10);
    assert.equal(s.successes, 9);
    assert.equal(s.successRatio, 0.9);
    assert.equal(s.rttP50Ms, 6);
    assert.equal(s.lastError, 'timeout');
    assert.equal(s.lastFailureAt, new Date(1_000_000 + 5 * 500).toISOString());
    assert.equal(store.stats(peer, 'http').samples, 0);
    assert.equal(store.stats(peer, 'http').successRatio, null);

    now += 8_000; // the first samples fall out of the 10 s window
    const later = store.stats(peer, 'icmp');
    assert.ok(later.samples < 10 && later.samples > 0, `${later.samples} samples left`);
  });

  it('caps the samples per cell', () => {
    let now = 0;
    const store = new MatrixStore(1e9, 5, () => now);
    store.setPeers([{ ref: peer, focus: false, protocols: ['icmp'] }]);
    for (let i = 0; i < 20; i++) store.record(peer, 'icmp', { at: (now += 1), ok: true, rttMs: 1 });
    assert.equal(store.stats(peer, 'icmp').samples, 5);
  });

  it('drops the windows of peers that leave, ignores late samples for them, and bumps the generation', () => {
    const store = new MatrixStore(10_000, 100);
    store.setPeers([{ ref: peer, focus: false, protocols: ['icmp'] }]);
    store.record(peer, 'icmp', { at: Date.now(), ok: true, rttMs: 1 });
    const g = store.generation;
    store.setPeers([]);
    store.record(peer, 'icmp', { at: Date.now(), ok: true, rttMs: 1 });
    assert.ok(store.generation > g);
    assert.deepEqual(store.snapshot().cells, []);
  });

  it('gives snapshots that later samples do not change', () => {
    const store = new MatrixStore(10_000, 100);
    store.setPeers([{ ref: peer, focus: true, protocols: ['icmp'] }]);
    const snap = store.snapshot();
    store.record(peer, 'icmp', { at: Date.now(), ok: true, rttMs: 1 });
    assert.equal(snap.cells[0]?.stats[0]?.samples, 0);
    assert.equal(snap.cells[0]?.focus, true);
  });
});

describe('percentile', () => {
  it('is nearest-rank', () => {
    assert.equal(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90), 9);
    assert.equal(percentile([5], 99), 5);
    assert.equal(percentile([], 50), null);
  });
});
