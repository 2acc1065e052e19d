// Which overlay an address is on: the classification every cell of the reachability matrix uses.
import { cidrContains } from './cidr.js';

export const overlays = ['legacy', 'cilium', 'host', 'unknown'] as const;
export type Overlay = (typeof overlays)[number];

/** What classification needs to know about the cluster's networks. */
export interface OverlayNetworks {
  /** The legacy CNI's cluster CIDR(s) (Flannel's 10.244.0.0/16 in the seed). */
  legacyCidrs: string[];
  /** Cilium's cluster-pool CIDR(s) (10.245.0.0/16 in the seed). */
  ciliumCidrs: string[];
  /** Per-node Cilium pod CIDRs from the CiliumNodes (more precise than the cluster CIDR). */
  ciliumNodeCidrs: string[];
  /** The nodes' own addresses (host-network endpoints). */
  nodeAddresses: string[];
}

/** The overlay of `ip`: Cilium's CIDRs first (they are the more specific claim), then legacy, then host. */
export function classifyAddress(ip: string, nets: OverlayNetworks): Overlay {
  if (!ip) return 'unknown';
  if (nets.ciliumNodeCidrs.some((c) => cidrContains(c, ip)) || nets.ciliumCidrs.some((c) => cidrContains(c, ip))) return 'cilium';
  if (nets.legacyCidrs.some((c) => cidrContains(c, ip))) return 'legacy';
  if (nets.nodeAddresses.includes(ip)) return 'host';
  return 'unknown';
}

/** The phase a node carries once `finalize` has made Cilium the cluster's only CNI (its label is gone then). */
export const finalizedPhase = 'finalized';

/** The overlay a node's pods should be on: Cilium once the node carries the migration label, or after finalize. */
export function expectedOverlay(nodeLabels: Record<string, string>, labelKey: string, phase?: string): 'legacy' | 'cilium' {
  return nodeLabels[labelKey] === 'true' || phase === finalizedPhase ? 'cilium' : 'legacy';
}
