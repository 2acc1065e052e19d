// The probe scheduler with fake probes and a virtual clock: rate limit, spreading, recording.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MatrixStore } from '../../agent/matrix.js';
import { Prober, type Probes } from '../../agent/prober.js';
import type { PeerRef } from '../../lib/row.js';

const peers: PeerRef[] = Array.from({ length: 20 }, (_, i) => ({ node: `n${i}`, pod: `a${i}`, ip: `10.244.0.${i + 1}`, overlay: 'legacy' }));

function setup(maxPerSecond: number) {
  let now = 0;
  const calls: string[] = [];
  const probes: Probes = {
    icmp: async (ip) => (calls.push(`icmp ${ip}`), { ok: true, rttMs: 1 }),
    icmpLarge: async (ip) => (calls.push(`large ${ip}`), { ok: false, error: 'icmp: frag needed (MTU)' }),
    http: async (peer) => (calls.push(`http ${peer.ip}`), { ok: true, rttMs: 2 }),
  };
  const store = new MatrixStore(60_000, 100, () => now);
  store.setPeers(peers.map((ref) => ({ ref, focus: false, protocols: ['icmp', 'http'] })));
  const prober = new Prober(store, probes, { intervalMs: 1000, timeoutMs: 500, maxPerSecond, jitter: 0.2 }, undefined, () => now, () => 0.5);
  return { prober, store, calls, advance: (ms: number) => (now += ms) };
}

describe('Prober', () => {
  it('probes every peer over every protocol once per interval', async () => {
    const { prober, store, calls, advance } = setup(1000);
    for (let t = 0; t < 10; t++) {
      advance(100);
      prober.runDue();
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(calls.length, 40, '20 peers x 2 protocols in one interval');
    assert.equal(store.stats(peers[3]!, 'http').samples, 1);
  });

  it('never starts more probes per second than the limit', async () => {
    const { prober, calls, advance } = setup(10);
    for (let t = 0; t < 20; t++) {
      advance(100);
      prober.runDue();
      await new Promise((r) => setImmediate(r));
    }
    // two seconds at 10/s, plus the initial bucket of 10
    assert.ok(calls.length <= 30, `${calls.length} probes in 2 s`);
    assert.ok(calls.length >= 20, `${calls.length} probes in 2 s`);
  });
});

describe('Prober in the migration focus', () => {
  it('probes focus peers at the focus interval and the others at the interval, and speeds a peer up when it enters the focus', async () => {
    let now = 0;
    const calls: string[] = [];
    const probes: Probes = {
      icmp: async (ip) => (calls.push(ip), { ok: true, rttMs: 1 }),
      icmpLarge: async () => ({ ok: true, rttMs: 1 }),
      http: async () => ({ ok: true, rttMs: 1 }),
    };
    const store = new MatrixStore(60_000, 100, () => now);
    const [calm, focused] = [peers[0]!, peers[1]!];
    store.setPeers([{ ref: calm, focus: false, protocols: ['icmp'] }, { ref: focused, focus: true, protocols: ['icmp'] }]);
    const prober = new Prober(store, probes, { intervalMs: 5000, focusIntervalMs: 1000, timeoutMs: 500, maxPerSecond: 1000, jitter: 0 }, undefined, () => now, () => 0.5);
    const run = async (ms: number) => {
      for (let t = 0; t < ms; t += 100) {
        now += 100;
        prober.runDue();
        await new Promise((r) => setImmediate(r));
      }
    };
    await run(10_000);
    assert.equal(calls.filter((ip) => ip === focused.ip).length, 10, 'every second');
    assert.equal(calls.filter((ip) => ip === calm.ip).length, 2, 'every five seconds');
    calls.length = 0;
    store.setPeers([{ ref: calm, focus: true, protocols: ['icmp'] }, { ref: focused, focus: true, protocols: ['icmp'] }]);
    await run(3000);
    assert.ok(calls.filter((ip) => ip === calm.ip).length >= 2, `the newly focused peer comes within the focus interval (${calls.filter((ip) => ip === calm.ip).length} probes in 3 s)`);
  });
});
