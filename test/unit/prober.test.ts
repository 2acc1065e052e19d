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

describe('Prober focus budget', () => {
  // A large wave: 200 nodes in focus, each probed over ICMP and HTTP every 2 s, ask for 200 probes
  // per second against a limit of 50; the 15 other peers need 6 per second.
  function wave(focusShare: number | undefined) {
    let now = 0;
    const counts = new Map<string, number>();
    const probes: Probes = {
      icmp: async (ip) => (counts.set(ip, (counts.get(ip) ?? 0) + 1), { ok: true, rttMs: 1 }),
      icmpLarge: async () => ({ ok: true, rttMs: 1 }),
      http: async (peer) => (counts.set(peer.ip, (counts.get(peer.ip) ?? 0) + 1), { ok: true, rttMs: 1 }),
    };
    const ref = (i: number): PeerRef => ({ node: `n${i}`, pod: `a${i}`, ip: `10.244.${i >> 8}.${i & 255}`, overlay: 'legacy' });
    const calm = Array.from({ length: 15 }, (_, i) => ref(i));
    const focused = Array.from({ length: 200 }, (_, i) => ref(1000 + i));
    const store = new MatrixStore(60_000, 100, () => now);
    store.setPeers([...calm.map((r) => ({ ref: r, focus: false, protocols: ['icmp', 'http'] as const })), ...focused.map((r) => ({ ref: r, focus: true, protocols: ['icmp', 'http'] as const }))].map((p) => ({ ...p, protocols: [...p.protocols] })));
    const prober = new Prober(store, probes, { intervalMs: 5000, focusIntervalMs: 2000, timeoutMs: 1000, maxPerSecond: 50, focusShare, jitter: 0.2 }, undefined, () => now, Math.random);
    return {
      calm,
      focused,
      counts,
      async run(ms: number) {
        for (let t = 0; t < ms; t += 100) {
          now += 100;
          prober.runDue();
          await new Promise((r) => setImmediate(r));
        }
      },
    };
  }

  it('keeps every other peer probed at its interval however many nodes are in focus', async () => {
    const w = wave(0.6);
    await w.run(60_000);
    // 60 s at a 5 s interval (jitter 20 %): about 12 probes per protocol; a cell probed less often
    // than every two intervals is stale.
    for (const r of w.calm) assert.ok((w.counts.get(r.ip) ?? 0) >= 2 * 10, `${r.ip}: ${w.counts.get(r.ip) ?? 0} probes in 60 s`);
    const focusProbes = w.focused.reduce((s, r) => s + (w.counts.get(r.ip) ?? 0), 0);
    assert.ok(focusProbes <= 0.6 * 50 * 60 + 30, `focus probes stay within their share: ${focusProbes} in 60 s`);
    assert.ok(focusProbes >= 0.6 * 50 * 60 * 0.9, `and use it: ${focusProbes} in 60 s`);
  });

  it('without a focus budget the same wave leaves the other peers stale (what the budget prevents)', async () => {
    const w = wave(undefined);
    await w.run(60_000);
    const fewest = Math.min(...w.calm.map((r) => w.counts.get(r.ip) ?? 0));
    assert.ok(fewest < 2 * 10, `fewest probes of a calm peer: ${fewest}`);
  });
});
