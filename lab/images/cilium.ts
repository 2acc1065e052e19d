// Cilium's images for the lab's nodes, as data for lab/images/build.ts: the names and tags the
// chart (install/kubernetes/cilium in the cilium module) uses with image.useDigest=false, holding
// what upstream's images/cilium/Dockerfile (release stage), images/runtime/Dockerfile and
// images/operator/Dockerfile put in them, with Debian bookworm packages in place of their bases.
// The binaries, the module's bpf/ sources and the chart's scripts come from the `cilium` group of
// lab/bins/build.sh (fetched from the Go module proxy at build time); the CNI loopback plugin from
// the node group (the same containernetworking release upstream's image ships).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DebianBase, ImageFile, ImageSpec } from './spec.js';
import { normalizeReference } from './oci.js';

/** CILIUM_VERSION of lab/bins/cilium/module.env: the release the lab builds and runs (`v1.18.3`). */
export function ciliumVersion(repoRoot: string): string {
  const file = join(repoRoot, 'lab', 'bins', 'cilium', 'module.env');
  const m = /^CILIUM_VERSION=(v\S+)$/m.exec(readFileSync(file, 'utf8'));
  if (!m) throw new Error(`${file} sets no CILIUM_VERSION`);
  return m[1]!;
}

/**
 * The agent image's root file system: clang compiles the datapath from /var/lib/cilium/bpf at
 * every agent start (the agent runs "clang" from PATH; LLVM >= 18.1); iproute2, iptables (legacy
 * and nft), ipset and kmod as in upstream's runtime image; util-linux and mount for the init
 * containers' nsenter and mount (bookworm's util-linux no longer carries mount, and mount-bpf-fs
 * runs it); bash and findutils for the chart's scripts and the agent's postStart.
 */
export const ciliumBase: DebianBase = {
  name: 'cilium',
  suite: 'bookworm',
  packages: ['clang-19', 'llvm-19', 'iproute2', 'iptables', 'ipset', 'kmod', 'ca-certificates', 'bash', 'util-linux', 'mount', 'findutils', 'jq'],
};

/** The agent's image (the DaemonSet and every init container of the chart run it). */
export const ciliumAgentImage = (version: string) => normalizeReference(`quay.io/cilium/cilium:${version}`);
/** The operator's image (operator.image, the generic variant the chart picks for cluster-pool IPAM). */
export const ciliumOperatorImage = (version: string) => normalizeReference(`quay.io/cilium/operator-generic:${version}`);

/** quay.io/cilium/cilium:VERSION and quay.io/cilium/operator-generic:VERSION. */
export function ciliumImages(version: string): ImageSpec[] {
  const bin = (name: string, path = `/usr/bin/${name}`): ImageFile => ({ path, from: { cilium: `bin/${name}` } });
  return [
    {
      names: [ciliumAgentImage(version)],
      base: ciliumBase.name,
      files: [
        ...['cilium-agent', 'cilium-dbg', 'cilium-health', 'cilium-health-responder', 'cilium-bugtool', 'cilium-mount', 'cilium-sysctlfix'].map((b) => bin(b)),
        // Upstream links `cilium` to cilium-dbg; the chart never calls it, people do.
        { path: '/usr/bin/cilium', from: { text: '#!/bin/sh\nexec /usr/bin/cilium-dbg "$@"\n' }, mode: 0o755 },
        // install-cni-binaries (/install-plugin.sh) copies these two to the node's /opt/cni/bin.
        bin('cilium-cni', '/opt/cni/bin/cilium-cni'),
        { path: '/cni/loopback', from: { bin: 'cni/loopback' } },
        { path: '/etc/cni/net.d/05-cilium-cni.conf', from: { cilium: 'module/plugins/cilium-cni/05-cilium-cni.conf' }, mode: 0o644 },
        // The datapath's C sources, where the agent's --bpf-dir default looks (upstream: make install-bpf).
        { path: '/var/lib/cilium/bpf', from: { cilium: 'module/bpf' } },
        // The chart runs these as commands; a module zip keeps no file modes, so they are set here.
        { path: '/init-container.sh', from: { cilium: 'module/images/cilium/init-container.sh' }, mode: 0o755 },
        { path: '/install-plugin.sh', from: { cilium: 'module/plugins/cilium-cni/install-plugin.sh' }, mode: 0o755 },
        { path: '/cni-uninstall.sh', from: { cilium: 'module/plugins/cilium-cni/cni-uninstall.sh' }, mode: 0o755 },
        // The working directory upstream's image declares.
        { path: '/home/cilium/.keep', from: { text: '' } },
      ],
      config: {
        // clang and llc first: Debian installs them as /usr/lib/llvm-19/bin/{clang,llc}.
        // Upstream's iptables-wrapper is left out: it makes iptables follow kube-proxy's backend,
        // and in the lab every image runs Debian's default (iptables-nft) anyway.
        Env: ['PATH=/usr/lib/llvm-19/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HUBBLE_SERVER=unix:///var/run/cilium/hubble.sock', 'INITSYSTEM=SYSTEMD'],
        WorkingDir: '/home/cilium',
        Cmd: ['/usr/bin/cilium-dbg'],
      },
    },
    {
      // Upstream's is FROM scratch: the binary, a CA bundle (this machine's, here) and gops' directory.
      names: [ciliumOperatorImage(version)],
      files: [
        bin('cilium-operator-generic'),
        { path: '/etc/ssl/certs/ca-certificates.crt', from: { host: '/etc/ssl/certs/ca-certificates.crt' }, mode: 0o644 },
        { path: '/home/gops/.keep', from: { text: '' } },
      ],
      config: { Env: ['GOPS_CONFIG_DIR=/home/gops'], WorkingDir: '/', Cmd: ['/usr/bin/cilium-operator-generic'] },
    },
  ];
}
