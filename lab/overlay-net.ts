// Addresses of the lab's two overlays, shared by the topology (lab/netns.ts) and the programs that
// run on its nodes (the Cilium emulation programs its overlay itself): deterministic per node index,
// so a peer can be programmed from its pod CIDR and underlay address alone.

export type OverlayName = 'legacy' | 'cilium';

export interface OverlaySpec {
  readonly dev: string;
  readonly vni: number;
  readonly udpPort: number;
  /** First two octets of the overlay's /16; node i owns <net>.i.0/24 and its VTEP is <net>.i.0. */
  readonly net: string;
  /** Distinguishes the overlays in the deterministic VTEP MACs. */
  readonly macTag: number;
}

/** The two overlays every node carries. */
export const netnsOverlays: Readonly<Record<OverlayName, OverlaySpec>> = {
  legacy: { dev: 'flannel.1', vni: 1, udpPort: 8472, net: '10.244', macTag: 1 },
  cilium: { dev: 'cilium_vxlan', vni: 2, udpPort: 8473, net: '10.245', macTag: 2 },
};

/** The underlay address of node `i` (kind's docker network is 172.18.0.0/16 too). */
export function underlayIp(i: number): string {
  return `172.18.0.${i + 2}`;
}

/** The VTEP address of node `i` on an overlay: the first address of its /24. */
export function vtepIp(overlay: OverlayName, i: number): string {
  return `${netnsOverlays[overlay].net}.${i}.0`;
}

// Locally administered, and known before the device exists, so peers can be programmed up front.
/** The VTEP MAC of node `i` on an overlay. */
export function vtepMac(overlay: OverlayName, i: number): string {
  const hex = (n: number) => n.toString(16).padStart(2, '0');
  return `02:00:${hex(netnsOverlays[overlay].macTag)}:00:${hex(i >> 8)}:${hex(i & 0xff)}`;
}
