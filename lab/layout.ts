// The lab's network layout: the legacy pod CIDR (Flannel's Network, the controller-manager's
// --cluster-cidr, kube-proxy's clusterCIDR), Cilium's cluster-pool CIDR, Flannel's VXLAN port,
// Cilium's tunnel port and the namespace Cilium's Helm release is installed in. `lab up`, `make demo`
// and the tests choose it; the lab installs Flannel and Cilium with it, the probe agents and the
// demo's plugin commands follow it, and `lab status` shows it. The defaults are the seed's.
import { cidrsOverlap } from '../lib/cidr.js';
import { ciliumClusterCidr, ciliumNamespace, ciliumVxlanPort, legacyClusterCidr, legacyVxlanPort } from '../lib/defaults.js';
import { UsageError } from '../lib/errors.js';
import { calicoDefaultPoolCidr, calicoVxlanPort } from './calico.js';
import { cidr, namespace, podCidrLimits, port, type Parser, ValueError } from '../lib/flag-values.js';

export interface LabLayout {
  /** Flannel's Network: every node's spec.podCIDR (a /24) is taken from it. */
  legacyCidr: string;
  /** Cilium's cluster-pool CIDR: the operator gives each CiliumNode a /24 of it. */
  ciliumCidr: string;
  /** Flannel's VXLAN backend port (net-conf.json Backend.Port). */
  legacyTunnelPort: number;
  /** Cilium's tunnel (VXLAN) port (the chart's tunnelPort). */
  ciliumTunnelPort: number;
  /** Where Cilium's Helm release goes: cilium-config, the agents, the CiliumNodeConfig, the lock. */
  ciliumNamespace: string;
}

/** The seed's layout. */
export const defaultLayout: LabLayout = {
  legacyCidr: legacyClusterCidr,
  ciliumCidr: ciliumClusterCidr,
  legacyTunnelPort: legacyVxlanPort,
  ciliumTunnelPort: ciliumVxlanPort,
  ciliumNamespace,
};

/** The lab's service CIDR (the API server's --service-cluster-ip-range: lab/control-plane.ts). */
export const labServiceCidr = '10.96.0.0/16';

/** The lab's own ranges, which neither overlay may share: kind's node network and the service CIDR. */
export const labReservedRanges = [
  { cidr: '172.18.0.0/16', what: 'the lab\'s node network' },
  { cidr: labServiceCidr, what: 'the lab\'s service CIDR' },
] as const;

/** Namespaces Cilium's release cannot go to: finalize deletes Flannel's, the probe agents own theirs. */
const reservedNamespaces: Record<string, string> = {
  'kube-flannel': 'Flannel\'s namespace, which finalize deletes',
  'cilium-migrate': 'the probe agents\' namespace',
};

/** Each node takes a /24 of both pod CIDRs (the controller-manager's and the Cilium operator's mask size). */
const nodeMaskSize = 24;

/** An IPv4 pod CIDR (the lab's nodes and pods are IPv4 only), as lib/flag-values' `cidr` takes it. */
export const labPodCidr: Parser<string> = (text) => {
  const expected = 'an IPv4 pod CIDR like 10.42.0.0/16 (a network address, /8 to /23; the lab is IPv4 only)';
  let value: string;
  try {
    value = cidr(podCidrLimits)(text);
  } catch (err) {
    if (err instanceof ValueError) throw new ValueError(expected);
    throw err;
  }
  if (value.includes(':')) throw new ValueError(expected);
  return value;
};

/** A namespace Cilium's release may be installed in. */
export const labCiliumNamespace: Parser<string> = (text) => {
  const ns = namespace(text);
  const why = reservedNamespaces[ns];
  if (why) throw new ValueError(`a namespace other than ${ns} (${why}), e.g. kube-system or cilium`);
  return ns;
};

/** The lab's flag names, for messages and for the daemon's command line. */
export const layoutFlags = {
  legacyCidr: 'legacy-cidr',
  ciliumCidr: 'cilium-cidr',
  legacyTunnelPort: 'legacy-tunnel-port',
  ciliumTunnelPort: 'cilium-tunnel-port',
  ciliumNamespace: 'cilium-namespace',
} as const satisfies Record<keyof LabLayout, string>;

/** The parser of each layout flag. */
export const layoutParsers: { [K in keyof LabLayout]: Parser<LabLayout[K]> } = {
  legacyCidr: labPodCidr,
  ciliumCidr: labPodCidr,
  legacyTunnelPort: port,
  ciliumTunnelPort: port,
  ciliumNamespace: labCiliumNamespace,
};

/**
 * Refuses a layout the lab cannot run, before anything is started: overlapping pod CIDRs, a pod
 * CIDR on the node network or the service CIDR, one too small for a /24 per node, both overlays on
 * one UDP port.
 */
export function checkLayout(l: LabLayout, nodes: number): void {
  const f = layoutFlags;
  if (cidrsOverlap(l.legacyCidr, l.ciliumCidr)) {
    throw new UsageError(`--${f.ciliumCidr} ${JSON.stringify(l.ciliumCidr)}: expected a range that does not overlap --${f.legacyCidr} ${l.legacyCidr} (the two overlays must not share addresses)`);
  }
  for (const key of ['legacyCidr', 'ciliumCidr'] as const) {
    for (const r of labReservedRanges) {
      if (cidrsOverlap(l[key], r.cidr)) throw new UsageError(`--${f[key]} ${JSON.stringify(l[key])}: expected a range that does not overlap ${r.cidr} (${r.what})`);
    }
    const prefix = Number(l[key].split('/')[1]);
    const room = 2 ** (nodeMaskSize - prefix);
    if (room < nodes) throw new UsageError(`--${f[key]} ${JSON.stringify(l[key])}: has room for ${room} nodes (a /${nodeMaskSize} each) and the lab has ${nodes}; expected a wider range, e.g. /16`);
  }
  if (l.legacyTunnelPort === l.ciliumTunnelPort) {
    throw new UsageError(`--${f.ciliumTunnelPort} ${l.ciliumTunnelPort}: expected a port other than --${f.legacyTunnelPort} ${l.legacyTunnelPort} (both overlays would bind it: "Address already in use")`);
  }
}

/** The layout as flags of the lab's command line (`lab daemon`), defaults included. */
export function layoutArgs(l: LabLayout): string[] {
  return (Object.keys(layoutFlags) as (keyof LabLayout)[]).flatMap((k) => [`--${layoutFlags[k]}`, String(l[k])]);
}

/** One line for `lab status` and the demo. */
export function describeLayout(l: LabLayout, legacy: 'flannel' | 'calico' = 'flannel'): string {
  return `${legacy === 'calico' ? 'Calico' : 'Flannel'} VXLAN ${l.legacyTunnelPort}, pods in ${l.legacyCidr}; Cilium in namespace ${l.ciliumNamespace}, VXLAN ${l.ciliumTunnelPort}, pods in ${l.ciliumCidr}`;
}

/**
 * The plugin's flags that tell it the lab's layout, for each command the lab runs: every command
 * that reads Cilium's objects gets --cilium-namespace; `values` and `finalize` (whose helm upgrade
 * writes the final values) get the CIDRs and ports, or they would put back the seed's.
 */
export function pluginLayoutFlags(l: LabLayout, command: string): string[] {
  const ns = ['--cilium-namespace', l.ciliumNamespace];
  switch (command) {
    case 'values':
      return ['--cilium-cidr', l.ciliumCidr, '--legacy-cidr', l.legacyCidr, '--tunnel-port', String(l.ciliumTunnelPort), '--legacy-tunnel-port', String(l.legacyTunnelPort)];
    case 'preflight':
      // The lab's own service CIDR, narrower than preflight's default (kubeadm's 10.96.0.0/12).
      return [...ns, '--cilium-cidr', l.ciliumCidr, '--service-cidr', labServiceCidr];
    case 'finalize':
      return [...ns, '--cilium-cidr', l.ciliumCidr, '--tunnel-port', String(l.ciliumTunnelPort)];
    case 'status': case 'connectivity': case 'prepare': case 'plan': case 'node': case 'run': case 'rollback':
      return ns;
    default:
      return [];
  }
}

/**
 * The layout with Calico as the legacy CNI (lab up --legacy calico): kubeadm's pod network for Calico
 * is its pool, 192.168.0.0/16 unless --legacy-cidr names another (the controller manager's node CIDRs,
 * which Calico's IPAM ignores, and kube-proxy's clusterCIDR follow it, as on such a cluster), and the
 * lab's Calico runs VXLAN on its default port, 4789.
 */
export function withLegacy(l: LabLayout, legacy: 'flannel' | 'calico'): LabLayout {
  if (legacy !== 'calico') return l;
  if (l.legacyTunnelPort !== defaultLayout.legacyTunnelPort && l.legacyTunnelPort !== calicoVxlanPort) {
    throw new UsageError(`--${layoutFlags.legacyTunnelPort} ${l.legacyTunnelPort}: the lab's Calico runs VXLAN on ${calicoVxlanPort}; expected ${calicoVxlanPort} or no --${layoutFlags.legacyTunnelPort} with --legacy calico`);
  }
  return { ...l, legacyCidr: l.legacyCidr === defaultLayout.legacyCidr ? calicoDefaultPoolCidr : l.legacyCidr, legacyTunnelPort: calicoVxlanPort };
}
