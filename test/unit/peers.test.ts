// Peer selection: full mesh when small; above that a ring per destination overlay with even
// coverage, stable under churn, and the migration focus always included.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { selectPeers, type PeerCandidate } from '../../agent/peers.js';

const candidates = (n: number, ciliumEvery = 2): PeerCandidate[] =>
  Array.from({ length: n }, (_, i) => ({ node: `node-${i}`, pod: `agent-${i}`, ip: `10.${i % ciliumEvery === 0 ? 245 : 244}.${i >> 8}.${i & 255}`, overlay: i % ciliumEvery === 0 ? 'cilium' : 'legacy', focus: false }));

/** How many agents of each source overlay probe each node. */
function inDegrees(all: PeerCandidate[], k: number, fullMeshMax = 10) {
  const degree = new Map(all.map((c) => [c.node, { legacy: 0, cilium: 0 } as { legacy: number; cilium: number; [k: string]: number }]));
  for (const self of all) for (const { peer } of selectPeers(self, all, { fullMeshMax, ringSize: k })) degree.get(peer.node)![self.overlay]!++;
  return degree;
}

describe('selectPeers', () => {
  it('is a full mesh up to the configured size', () => {
    const all = candidates(8);
    const picked = selectPeers({ node: 'node-0', pod: 'agent-0', overlay: 'cilium' }, all, { fullMeshMax: 10, ringSize: 3 });
    assert.equal(picked.length, 7);
    assert.ok(!picked.some((p) => p.peer.pod === 'agent-0'), 'never itself');
  });

  it('above it, probes K peers per destination overlay; every node is probed by K of its own overlay and about K of the other', () => {
    const all = candidates(200);
    const picked = selectPeers({ node: 'node-5', pod: 'agent-5', overlay: 'legacy' }, all, { fullMeshMax: 10, ringSize: 4 });
    // K ring successors per class, plus the few nodes it is the designated prober of.
    assert.ok(picked.filter((p) => p.peer.overlay === 'cilium').length >= 4);
    assert.ok(picked.filter((p) => p.peer.overlay === 'legacy').length >= 4);
    assert.ok(picked.length <= 8 + 8, `${picked.length} peers`);
    // Walking the ring, each node is probed by exactly K nodes of its own overlay, and by about K
    // of the other (how many of them sit between its K predecessors varies with the hashes).
    const degrees = [...inDegrees(all, 4).entries()].map(([node, d]) => ({ node, ...d, own: d[all.find((c) => c.node === node)!.overlay]! }));
    assert.ok(degrees.every((d) => d.own >= 4 && d.own <= 5), 'same-overlay in-degree is K (+1 for its designated prober)');
    const cross = degrees.map((d) => d.legacy + d.cilium - d.own);
    const mean = cross.reduce((a, b) => a + b, 0) / cross.length;
    assert.ok(mean >= 4 && mean <= 5.5, `cross-overlay in-degree averages about K (${mean})`);
    assert.ok(Math.min(...cross) >= 1 && Math.max(...cross) <= 4 * 4, `cross-overlay in-degree between ${Math.min(...cross)} and ${Math.max(...cross)}`);
  });

  it('is deterministic', () => {
    const all = candidates(100);
    const a = selectPeers({ node: 'node-7', pod: 'agent-7', overlay: 'legacy' }, all, { fullMeshMax: 10, ringSize: 3 }).map((p) => p.peer.pod);
    const b = selectPeers({ node: 'node-7', pod: 'agent-7', overlay: 'legacy' }, [...all].reverse(), { fullMeshMax: 10, ringSize: 3 }).map((p) => p.peer.pod);
    assert.deepEqual(a.sort(), b.sort());
  });

  it('barely changes when one node joins or leaves', () => {
    const all = candidates(300);
    const pick = (set: PeerCandidate[]) => new Map(set.map((s) => [s.pod, new Set(selectPeers(s, set, { fullMeshMax: 10, ringSize: 3 }).map((p) => p.peer.pod))]));
    const before = pick(all);
    const after = pick(all.filter((c) => c.pod !== 'agent-42'));
    let changed = 0;
    for (const [pod, peers] of after) {
      const old = before.get(pod)!;
      old.delete('agent-42');
      if ([...peers].some((p) => !old.has(p))) changed++;
    }
    assert.ok(changed <= 6, `${changed} of 299 agents changed peers`);
  });

  it('keeps the peer count bounded when its own overlay has a single node', () => {
    const all = candidates(1000, 1000); // one cilium node (index 0), 999 legacy
    const picked = selectPeers({ node: 'node-0', pod: 'agent-0', overlay: 'cilium' }, all, { fullMeshMax: 10, ringSize: 3 });
    assert.ok(picked.length <= 3 + 3 * 2, `${picked.length} peers`);
  });

  it('always includes nodes being migrated', () => {
    const all = candidates(300);
    all[123]!.focus = true;
    const picked = selectPeers({ node: 'node-5', pod: 'agent-5', overlay: 'legacy' }, all, { fullMeshMax: 10, ringSize: 3 });
    const focus = picked.find((p) => p.peer.pod === 'agent-123');
    assert.ok(focus, 'the focus node is probed');
  });
});
