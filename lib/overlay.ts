// Which overlay an address is on: the one definition the plugin (status, plan, finalize, the node
// engine's verify and rollback's), the agents and the gate share. Cilium's pod CIDRs are known
// exactly (a node's CiliumNode, else the configured cluster pool); the legacy CNI's are not always
// (Calico's pools, AWS-CNI's VPC subnets, any Flannel network), so an address is legacy when it is
// neither a node's own address nor inside Cilium's CIDRs. The legacy CIDRs, when known, only add
// detail (legacyNote).
import ipaddr from 'ipaddr.js';
import { cidrContains } from './cidr.js';

export const overlays = ['legacy', 'cilium', 'host', 'unknown'] as const;
export type Overlay = (typeof overlays)[number];

/** What classification needs to know about the cluster's networks. */
export interface OverlayNetworks {
  /** Per node, its Cilium pod CIDRs (CiliumNode spec.ipam.podCIDRs), the exact claim. */
  ciliumNodeCidrs: Readonly<Record<string, readonly string[]>>;
  /** Cilium's configured cluster-pool CIDRs, for nodes without a CiliumNode CIDR yet. */
  ciliumCidrs: readonly string[];
  /** The nodes' own addresses (host-network endpoints). */
  nodeAddresses: readonly string[] | ReadonlySet<string>;
  /** The legacy CNI's pod CIDRs when known (Flannel's network, Calico's pools): detail only. */
  legacyCidrs?: readonly string[] | undefined;
}

/** Cilium's pod CIDRs for addresses on `node`: its CiliumNode's when it has any, else the cluster pool's. */
export function ciliumCidrsFor(node: string | undefined, nets: Pick<OverlayNetworks, 'ciliumNodeCidrs' | 'ciliumCidrs'>): readonly string[] {
  const own = node === undefined ? undefined : nets.ciliumNodeCidrs[node];
  return own && own.length > 0 ? own : nets.ciliumCidrs;
}

/**
 * The overlay of `ip`, an address of a pod on `node` (undefined when the node is not known):
 * `unknown` without a valid address, `host` for a node's own address, `cilium` inside the node's
 * Cilium CIDRs, `legacy` otherwise, whatever range the legacy CNI uses.
 */
export function classifyAddress(ip: string, node: string | undefined, nets: OverlayNetworks): Overlay {
  if (!ip || !ipaddr.isValid(ip)) return 'unknown';
  const hosts = nets.nodeAddresses;
  if (hosts instanceof Set ? hosts.has(ip) : (hosts as readonly string[]).includes(ip)) return 'host';
  if (ciliumCidrsFor(node, nets).some((c) => cidrContains(c, ip))) return 'cilium';
  return 'legacy';
}

/** The overlay of a pod: host-network pods are `host` whatever their address. */
export function classifyPod(pod: { ip: string; node: string | undefined; hostNetwork: boolean }, nets: OverlayNetworks): Overlay {
  if (pod.hostNetwork) return 'host';
  return classifyAddress(pod.ip, pod.node, nets);
}

/**
 * What the known legacy CIDRs add about a legacy address: a note when it lies outside all of them
 * (a Cilium pod counted as legacy because Cilium's CIDRs were not found, or a legacy range nobody
 * declared); undefined when it is inside one, or when the legacy CIDRs are not known.
 */
export function legacyNote(ip: string, legacyCidrs: readonly string[] | undefined): string | undefined {
  if (!legacyCidrs || legacyCidrs.length === 0 || legacyCidrs.some((c) => cidrContains(c, ip))) return undefined;
  return `${ip} is outside the legacy CNI's known pod CIDRs (${legacyCidrs.join(', ')})`;
}
