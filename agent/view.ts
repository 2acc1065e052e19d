// From the discovered cluster to this agent's identity and the peers it probes: pure functions.
import { expectedOverlay, isUnderWay } from '../lib/node-state.js';
import { classifyAddress, legacyNote, type OverlayNetworks } from '../lib/overlay.js';
import type { AgentIdentity, ProbeProtocol } from '../lib/row.js';
import type { ClusterView } from './discovery.js';
import type { SelectedPeer } from './matrix.js';
import { selectPeers, type PeerSelection } from './peers.js';

export interface SelfInfo {
  node: string;
  pod: string;
  namespace: string;
  ip: string;
  version: string;
}

export interface ViewConfig extends PeerSelection {
  /** The legacy CNI's pod CIDRs, when known: only for messages (lib/overlay.ts). */
  legacyCidrs: string[];
  ciliumCidrs: string[];
  labelKey: string;
  protocols: ProbeProtocol[];
}

export function networksOf(view: ClusterView, cfg: ViewConfig): OverlayNetworks {
  return {
    legacyCidrs: cfg.legacyCidrs,
    ciliumCidrs: cfg.ciliumCidrs,
    ciliumNodeCidrs: view.ciliumNodeCidrs,
    nodeAddresses: new Set(view.nodes.flatMap((n) => n.addresses)),
  };
}

/** This agent's identity, with a message when it sits on the wrong overlay for its node. */
export function identityOf(self: SelfInfo, view: ClusterView, cfg: ViewConfig): AgentIdentity {
  const nets = networksOf(view, cfg);
  const overlay = classifyAddress(self.ip, self.node, nets);
  const node = view.nodes.find((n) => n.name === self.node);
  const expected = expectedOverlay(node?.labels ?? {}, cfg.labelKey, node?.phase);
  const identity: AgentIdentity = { node: self.node, pod: self.pod, namespace: self.namespace, ip: self.ip, overlay, expectedOverlay: expected, version: self.version };
  if (overlay !== expected) {
    const outside = overlay === 'legacy' ? legacyNote(self.ip, cfg.legacyCidrs) : undefined;
    identity.overlayMismatch =
      overlay === 'unknown' || overlay === 'host'
        ? `pod IP ${self.ip} is on no pod overlay (${overlay}); check the pod's network`
        : `pod IP ${self.ip} is on ${overlay} but node ${self.node} should be on ${expected}` +
          (expected === 'cilium' ? ' (the pod predates the switch: restart it, or check the node\'s CNI config)' : '') +
          (outside ? `; ${outside}: check --cilium-cidrs and the node's CiliumNode` : '');
  }
  return identity;
}

/** The peers to probe, classified, with the migration focus marked. */
export function peersOf(self: SelfInfo, identity: AgentIdentity, view: ClusterView, cfg: ViewConfig): SelectedPeer[] {
  const nets = networksOf(view, cfg);
  const focusNodes = new Set(view.nodes.filter((n) => isUnderWay(n.phase)).map((n) => n.name));
  const candidates = view.agents
    .filter((a) => a.pod !== self.pod)
    .map((a) => ({ node: a.node, pod: a.pod, ip: a.ip, overlay: classifyAddress(a.ip, a.node, nets), focus: focusNodes.has(a.node) }));
  // When this agent's own node is being migrated, every cell of its row involves the focus.
  const selfInFocus = focusNodes.has(self.node);
  return selectPeers({ node: self.node, pod: self.pod, overlay: identity.overlay }, candidates, cfg).map(({ peer, focusOnly }) => ({
    ref: { node: peer.node, pod: peer.pod, ip: peer.ip, overlay: peer.overlay },
    focus: focusOnly || peer.focus || selfInFocus,
    protocols: cfg.protocols,
  }));
}
