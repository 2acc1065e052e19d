// A node's VXLAN overlay as Flannel and Cilium program it, from inside the node's network namespace:
// the device with the node's VTEP address (the first address of its pod CIDR) and, for every other
// node, a permanent neighbour entry, a forwarding entry to its underlay address and a route to its
// pod CIDR through its VTEP. Addresses are derived from the pod CIDRs (lab/overlay-net.ts), so a
// peer can be programmed from what the API says about it.
import { execFile } from 'node:child_process';
import { netnsOverlays, vtepIp, vtepMac, type OverlayName } from '../overlay-net.js';

function sh(file: string, args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 15_000 }, (err, _stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stderr }));
  });
}

async function must(file: string, args: string[]): Promise<void> {
  const r = await sh(file, args);
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')}: ${r.stderr.trim()}`);
}

/** The third octet of a /24 pod CIDR: the node's index on the overlay. */
export function overlayIndex(cidr: string): number {
  const m = /^\d+\.\d+\.(\d+)\.0\/24$/.exec(cidr);
  if (m === null) throw new Error(`pod CIDR ${cidr} is not a /24; the lab's overlays need one /24 per node`);
  return Number(m[1]);
}

/** Creates the overlay's device if it is missing (UDP `port`), with this node's VTEP address, and brings it up. */
export async function ensureVxlanDevice(overlay: OverlayName, port: number, localIp: string, podCidr: string, log: (line: string) => void): Promise<void> {
  const o = netnsOverlays[overlay];
  const index = overlayIndex(podCidr);
  if ((await sh('ip', ['link', 'show', 'dev', o.dev])).code !== 0) {
    await must('ip', ['link', 'add', o.dev, 'address', vtepMac(overlay, index), 'type', 'vxlan', 'id', String(o.vni), 'dstport', String(port), 'dev', 'eth0', 'local', localIp, 'nolearning']);
    await must('ip', ['addr', 'add', `${vtepIp(overlay, index)}/32`, 'dev', o.dev]);
    log(`created ${o.dev} (VNI ${o.vni}, UDP ${port}, local ${localIp}, VTEP ${vtepIp(overlay, index)})`);
  }
  await must('ip', ['link', 'set', o.dev, 'up']);
}

/** Keeps a route to every peer's pod CIDR through the overlay; returns a function taking the current peers. */
export function vxlanPeers(overlay: OverlayName, log: (line: string) => void): (peers: { name: string; podCidr: string; underlayIp: string }[]) => Promise<void> {
  const o = netnsOverlays[overlay];
  const programmed = new Map<string, string>();
  return async (peers) => {
    for (const p of peers) {
      const want = `${p.podCidr} ${p.underlayIp}`;
      if (programmed.get(p.name) === want) continue;
      try {
        const i = overlayIndex(p.podCidr);
        await must('ip', ['neigh', 'replace', vtepIp(overlay, i), 'lladdr', vtepMac(overlay, i), 'dev', o.dev, 'nud', 'permanent']);
        await must('bridge', ['fdb', 'replace', vtepMac(overlay, i), 'dev', o.dev, 'dst', p.underlayIp]);
        await must('ip', ['route', 'replace', p.podCidr, 'via', vtepIp(overlay, i), 'dev', o.dev, 'onlink']);
        programmed.set(p.name, want);
        log(`route to ${p.name}'s pod CIDR ${p.podCidr} via ${p.underlayIp} over ${o.dev}`);
      } catch (err) {
        log(`cannot program the route to ${p.name}: ${(err as Error).message}`);
      }
    }
  };
}
