// Calico's images for `lab up --legacy calico`, as data for lab/images/build.ts: the names and tags
// the module's manifests/calico-vxlan.yaml uses, holding what upstream's node/Dockerfile.amd64,
// cni-plugin/Dockerfile and kube-controllers/Dockerfile put in them that a VXLAN node runs, with
// Debian bookworm packages in place of their UBI and AlmaLinux ones. The binaries, the manifest and
// calico-node's runit services come from the `calico` group of lab/bins/build.sh (the module from the
// Go module proxy at build time); the CNI plugins portmap and loopback from the node group.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { normalizeReference } from './oci.js';
import type { DebianBase, ImageFile, ImageSpec } from './spec.js';

/** CALICO_RELEASE of lab/bins/calico/module.env (`v3.31.0`): the tag of the manifest's images. */
export function calicoRelease(repoRoot: string): string {
  const file = join(repoRoot, 'lab', 'bins', 'calico', 'module.env');
  const m = /^CALICO_RELEASE=(v\S+)$/m.exec(readFileSync(file, 'utf8'));
  if (!m) throw new Error(`${file} sets no CALICO_RELEASE`);
  return m[1]!;
}

/**
 * calico-node's root file system: runit (start_runit runs felix, allocate-tunnel-addrs and the
 * others as runsvdir services), and what felix drives: iptables (legacy and nft), ipset, ip,
 * conntrack, nft (its nftables mode), kmod; procps, findutils and ping as upstream's image has them.
 * No BIRD: the lab runs the vxlan backend, which starts no BGP daemon.
 */
export const calicoBase: DebianBase = {
  name: 'calico',
  suite: 'bookworm',
  packages: ['runit', 'iptables', 'ipset', 'iproute2', 'conntrack', 'nftables', 'kmod', 'procps', 'findutils', 'iputils-ping', 'ca-certificates'],
};

export const calicoNodeImage = (release: string) => normalizeReference(`quay.io/calico/node:${release}`);
export const calicoCniImage = (release: string) => normalizeReference(`quay.io/calico/cni:${release}`);
export const calicoKubeControllersImage = (release: string) => normalizeReference(`quay.io/calico/kube-controllers:${release}`);

const path = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * quay.io/calico/{node,cni,kube-controllers}:RELEASE from the calico binary cache `calicoDir`
 * (lab/bins/build.sh --dir calico) and the node group's `nodeBinDir`.
 */
export function calicoImages(release: string, calicoDir: string, nodeBinDir: string): ImageSpec[] {
  const bin = (name: string, at: string): ImageFile => ({ path: at, from: { host: join(calicoDir, 'bin', name) } });
  const fs = (rel: string, at: string, mode?: number): ImageFile => ({ path: at, from: { host: join(calicoDir, 'filesystem', rel) }, ...(mode === undefined ? {} : { mode }) });
  return [
    {
      names: [calicoNodeImage(release)],
      base: calicoBase.name,
      files: [
        // Under /usr: Debian's /bin and /sbin are links into it (a /bin directory in our layer would hide them).
        bin('calico-node', '/usr/bin/calico-node'),
        fs('sbin/start_runit', '/usr/sbin/start_runit', 0o755),
        fs('sbin/restart-calico-confd', '/usr/sbin/restart-calico-confd', 0o755),
        fs('sbin/versions', '/usr/sbin/versions', 0o755),
        fs('etc/rc.local', '/etc/rc.local', 0o755),
        fs('etc/calico/felix.cfg', '/etc/calico/felix.cfg', 0o644),
        // The runit services rc.local enables (build.sh made their run scripts executable).
        { path: '/etc/service/available', from: { tree: join(calicoDir, 'filesystem', 'etc', 'service', 'available') } },
      ],
      config: { Env: [path, 'SVDIR=/etc/service/enabled'], Cmd: ['start_runit'] },
    },
    {
      // install-cni copies everything of /opt/cni/bin to the node's; the conflist chains portmap.
      names: [calicoCniImage(release)],
      base: calicoBase.name,
      files: [
        bin('calico', '/opt/cni/bin/calico'),
        bin('calico', '/opt/cni/bin/calico-ipam'),
        bin('install', '/opt/cni/bin/install'),
        ...['portmap', 'loopback', 'host-local'].map((b) => ({ path: `/opt/cni/bin/${b}`, from: { host: join(nodeBinDir, 'cni', b) } })),
      ],
      config: { Env: ['PATH=/opt/cni/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], WorkingDir: '/opt/cni/bin', Cmd: ['/opt/cni/bin/install'] },
    },
    {
      // Upstream's runs as user 999 (the manifest says runAsNonRoot) and writes its status and
      // profiles into files made for that user: here writable by anyone.
      names: [calicoKubeControllersImage(release)],
      files: [
        bin('kube-controllers', '/usr/bin/kube-controllers'),
        bin('check-status', '/usr/bin/check-status'),
        bin('wrapper', '/usr/bin/wrapper'),
        { path: '/status/status.json', from: { text: '' }, mode: 0o666 },
        { path: '/profiles/mem.pprof', from: { text: '' }, mode: 0o666 },
        { path: '/profiles/cpu.pprof', from: { text: '' }, mode: 0o666 },
        { path: '/etc/ssl/certs/ca-certificates.crt', from: { host: '/etc/ssl/certs/ca-certificates.crt' }, mode: 0o644 },
      ],
      config: { Env: [path], User: '999', Entrypoint: ['/usr/bin/wrapper', '/usr/bin/kube-controllers'] },
    },
  ];
}
