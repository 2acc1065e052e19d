// The tunnels of the two overlays: what each one binds on the nodes, the rule that keeps them
// apart (two overlays on one UDP port: "Address already in use") and how a blocked tunnel is named
// in the gate's hints. Flannel uses VXLAN 8472 by default, Calico IP-in-IP (no UDP port) or VXLAN
// 4789, AWS-CNI no tunnel at all (VPC routing), Cilium VXLAN 8472 unless tunnel-port says otherwise.
import { ciliumVxlanPort, legacyVxlanPort } from './defaults.js';

export type TunnelProtocol = 'vxlan' | 'geneve' | 'udp' | 'wireguard' | 'ipip' | 'none';

export interface Tunnel {
  protocol: TunnelProtocol;
  /** The UDP port it binds on every node; only the UDP-based protocols have one. */
  port?: number | undefined;
}

/** Cilium's default ports when cilium-config names none (its tunnel-port default depends on the protocol). */
const ciliumDefaultPort: Partial<Record<TunnelProtocol, number>> = { vxlan: 8472, geneve: 6081 };

/** A person's words for a tunnel: "VXLAN on UDP 8472", "IP-in-IP (IP protocol 4, no UDP port)". */
export function describeTunnel(t: Tunnel): string {
  switch (t.protocol) {
    case 'vxlan':
      return `VXLAN on UDP ${t.port}`;
    case 'geneve':
      return `Geneve on UDP ${t.port}`;
    case 'udp':
      return `UDP encapsulation on UDP ${t.port}`;
    case 'wireguard':
      return `WireGuard on UDP ${t.port}`;
    case 'ipip':
      return 'IP-in-IP (IP protocol 4, no UDP port)';
    case 'none':
      return 'no tunnel (routed)';
  }
}

/** Cilium's tunnel as cilium-config describes it (keys of 1.14+; `tunnel` of older versions too). */
export function ciliumTunnel(config: Record<string, string>): Tunnel {
  if (config['routing-mode'] === 'native' || config['tunnel'] === 'disabled') return { protocol: 'none' };
  const protocol = (config['tunnel-protocol'] || config['tunnel'] || 'vxlan') === 'geneve' ? 'geneve' : 'vxlan';
  const port = Number(config['tunnel-port']) || ciliumDefaultPort[protocol];
  return { protocol, port };
}

/** The legacy tunnels that bind the UDP port Cilium's tunnel binds (each one is an "Address already in use"). */
export function tunnelClashes(legacy: readonly Tunnel[], cilium: Tunnel): Tunnel[] {
  if (cilium.port === undefined) return [];
  return legacy.filter((t) => t.port !== undefined && t.port === cilium.port);
}

/** The tunnels of both overlays, as far as they are known (the gate's hints name them). */
export interface OverlayTunnels {
  legacy?: readonly Tunnel[] | undefined;
  cilium?: Tunnel | undefined;
}

/** Without knowledge of the cluster: the seed's tunnels (Flannel VXLAN 8472, Cilium VXLAN 8473). */
export const seedTunnels: Required<OverlayTunnels> = {
  legacy: [{ protocol: 'vxlan', port: legacyVxlanPort }],
  cilium: { protocol: 'vxlan', port: ciliumVxlanPort },
};

/**
 * What to allow between the nodes for an overlay's tunnels to work, for the gate's hint on a node
 * that nobody reaches: "the cilium tunnel port UDP 8473", "IP-in-IP (IP protocol 4) of the legacy
 * overlay", "the legacy overlay's routes (it has no tunnel: ...)".
 */
export function blockedTunnelText(overlay: 'legacy' | 'cilium', tunnels: readonly Tunnel[]): { what: string; allow: string } {
  const udp = tunnels.filter((t) => t.port !== undefined).map((t) => `UDP ${t.port}`);
  const ipip = tunnels.some((t) => t.protocol === 'ipip');
  if (udp.length > 0 || ipip) {
    const parts = [...udp, ...(ipip ? ['IP protocol 4 (IP-in-IP)'] : [])];
    const list = parts.join(' and ');
    return { what: udp.length > 0 ? `the ${overlay} tunnel port ${list}` : `the ${overlay} overlay's ${list}`, allow: list };
  }
  return {
    what: `the ${overlay} overlay's routed traffic (it has no tunnel)`,
    allow: 'pod traffic between the nodes (routes, security groups or BGP peering)',
  };
}
