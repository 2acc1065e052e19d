// Which peers an agent probes. Small clusters: everyone. Large ones: for each destination overlay
// a ring (node names hashed, sha256, first 64 bits, as kubenurse does) where each node probes the
// K nodes that follow it, so every node is probed by about K others per class and the set barely
// moves when a node joins or leaves. So that no node goes unprobed by a class, each node is also
// probed by the member of every class that follows it on that class's ring, up to a cap (a class
// of one node cannot cover a thousand without becoming a full mesh). Nodes being migrated are
// always probed.
import { createHash } from 'node:crypto';
import type { Overlay } from '../lib/overlay.js';
import type { PeerRef } from '../lib/row.js';

export interface PeerCandidate extends PeerRef {
  /** The peer's node is being migrated now. */
  focus: boolean;
}

export interface PeerSelection {
  /** Full mesh up to this many candidates. */
  fullMeshMax: number;
  /** Peers per destination overlay above that. */
  ringSize: number;
}

/** Extra peers a prober takes on as designated prober, as a multiple of the ring size. */
const designatedCapFactor = 2;

const ringPosition = (name: string) => createHash('sha256').update(name).digest().readBigUInt64BE(0);

/** The peers `self` probes, each with whether it is there only because of the focus. */
export function selectPeers(self: { node: string; pod: string; overlay: Overlay }, candidates: PeerCandidate[], sel: PeerSelection): { peer: PeerCandidate; focusOnly: boolean }[] {
  const { node: selfNode, pod: selfPod } = self;
  const others = candidates.filter((c) => c.pod !== selfPod);
  if (others.length <= sel.fullMeshMax) return others.map((peer) => ({ peer, focusOnly: false }));

  const chosen = new Map<string, { peer: PeerCandidate; focusOnly: boolean }>();
  const byOverlay = new Map<Overlay, PeerCandidate[]>();
  for (const c of others) byOverlay.set(c.overlay, [...(byOverlay.get(c.overlay) ?? []), c]);
  const me = ringPosition(selfNode);
  for (const group of byOverlay.values()) {
    // Successors of my position on this class's ring, wrapping around.
    const ring = group.map((c) => ({ c, pos: ringPosition(c.node) })).sort((a, b) => (a.pos < b.pos ? -1 : a.pos > b.pos ? 1 : a.c.pod.localeCompare(b.c.pod)));
    let start = ring.findIndex((r) => r.pos > me);
    if (start < 0) start = 0;
    for (let i = 0; i < Math.min(sel.ringSize, ring.length); i++) {
      const { c } = ring[(start + i) % ring.length]!;
      chosen.set(c.pod, { peer: c, focusOnly: false });
    }
  }
  // The nodes I am the designated prober of for my class: those whose successor on my class's ring is me.
  const myClass = [...others.filter((c) => c.overlay === self.overlay).map((c) => ringPosition(c.node)), me].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const designated = new Map<Overlay, number>();
  for (const c of others) {
    if (chosen.has(c.pod) || (designated.get(c.overlay) ?? 0) >= sel.ringSize * designatedCapFactor) continue;
    const pos = ringPosition(c.node);
    const successor = myClass.find((p) => p > pos) ?? myClass[0];
    if (successor === me) {
      chosen.set(c.pod, { peer: c, focusOnly: false });
      designated.set(c.overlay, (designated.get(c.overlay) ?? 0) + 1);
    }
  }
  for (const c of others) if (c.focus && !chosen.has(c.pod)) chosen.set(c.pod, { peer: c, focusOnly: true });
  return [...chosen.values()];
}
