// The images the lab's nodes run, as data: every name is the one the manifests use (normalised as
// containerd's CRI stores it), so pods find them imported and never pull. An image is a Debian
// base layer (a root file system made by mmdebstrap from Debian packages, shared by every image
// on that base) plus one layer of files we place: Go-built binaries from the node binary cache,
// files from dist/, or files of this machine.
//
// Cilium's agent and operator images are described in lab/images/cilium.ts and are part of the
// lab's images (labBases, labImages) like the others.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ciliumBase, ciliumImages, ciliumVersion } from './cilium.js';
import { normalizeReference } from './oci.js';
import type { DebianBase, ImageSpec } from './spec.js';

export type { DebianBase, FileSource, ImageFile, ImageSpec } from './spec.js';

/** The Kubernetes and Flannel versions the images carry (the node binaries' versions). */
export const labVersions = { kubernetes: 'v1.36.5', flannel: 'v0.28.10', flannelCniPlugin: 'v1.9.1-flannel3', pause: '3.10' } as const;

const path = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * One base for the lab's node image and every image its pods run: what a node needs (runc,
 * mount, iptables, ip, kmod), what kube-proxy (iptables, conntrack), flanneld (iptables, ip), the
 * probe agent (libstdc++ for node, iputils-ping), nginx, curl and the host-command pods (sh,
 * nsenter, ip) need. Sharing it keeps each node's containerd to one copy (about 150 MB).
 */
export const labBases: DebianBase[] = [
  {
    name: 'debian',
    suite: 'bookworm',
    packages: ['runc', 'mount', 'kmod', 'iproute2', 'iptables', 'conntrack', 'curl', 'ca-certificates', 'iputils-ping', 'nginx-light', 'libstdc++6', 'procps'],
  },
  // Cilium's agent image: clang and LLVM for its datapath (lab/images/cilium.ts).
  ciliumBase,
];

/** The probe agent's image reference, read from the one place that names it (manifests/agent/kustomization.yaml). */
export function agentImageReference(repoRoot: string): string {
  const kustomization = join(repoRoot, 'manifests', 'agent', 'kustomization.yaml');
  const k = parse(readFileSync(kustomization, 'utf8')) as { images?: { name: string; newName?: string; newTag?: string }[] };
  const entry = k.images?.find((i) => i.name === 'cilium-migrate-agent');
  if (!entry) throw new Error(`${kustomization} has no images entry for cilium-migrate-agent`);
  return `${entry.newName ?? entry.name}:${entry.newTag ?? 'latest'}`;
}

/**
 * The host-command image the lab provides (sh, nsenter, ip). The plugin's default is pinned by a
 * digest of the real alpine image, which no locally built image can have: pass this one with
 * --host-image on the lab.
 */
export const labHostCommandImage = 'docker.io/library/alpine:3.20';

/** Where every node's containerd sends pulls: the lab's registry mirror (lab/registry.ts) on the underlay's gateway. */
export const labRegistryMirror = '172.18.0.1:5000';

/** The pause image containerd runs for every pod sandbox (and the engine's verify pod). */
export const labPauseImage = `registry.k8s.io/pause:${labVersions.pause}`;
export const labKubeProxyImage = `registry.k8s.io/kube-proxy:${labVersions.kubernetes}`;

function image(names: string[], spec: Omit<ImageSpec, 'names'>): ImageSpec {
  return { names: names.map(normalizeReference), ...spec };
}

/**
 * The lab's node image, as kind's kindest/node: the root file system every lab node runs on (an
 * overlay per node on top of it), with kubelet, containerd and its shim, ctr, the standard CNI
 * plugins kind ships, the node's init script and a `systemctl` that asks the lab for a reboot.
 */
export function labNodeImage(): ImageSpec {
  return image(['localhost/cilium-migrate-lab/node:' + labVersions.kubernetes], {
    base: 'debian',
    files: [
      ...['kubelet', 'containerd', 'containerd-shim-runc-v2', 'ctr'].map((b) => ({ path: `/usr/local/bin/${b}`, from: { bin: b } })),
      ...['bridge', 'host-local', 'loopback', 'portmap'].map((b) => ({ path: `/opt/cni/bin/${b}`, from: { bin: `cni/${b}` } })),
      { path: '/usr/local/bin/lab-node-init', from: { repo: 'lab/node/node-init.sh' }, mode: 0o755 },
      { path: '/usr/local/bin/systemctl', from: { repo: 'lab/node/systemctl.sh' }, mode: 0o755 },
      { path: '/etc/containerd/config.toml', from: { repo: 'lab/node/containerd.toml' }, mode: 0o644 },
      // Pulls of any registry go to the lab's mirror (for imagePullPolicy Always); nothing leaves the lab.
      { path: '/etc/containerd/certs.d/_default/hosts.toml', from: { text: `[host."http://${labRegistryMirror}"]\n  capabilities = ["pull", "resolve"]\n` } },
      { path: '/etc/resolv.conf', from: { text: '# A lab node has no DNS server outside the cluster.\n' } },
    ],
    config: { Entrypoint: ['/usr/local/bin/lab-node-init'], Env: [path] },
  });
}

/**
 * Every image a lab node gets; `repoRoot` is the repository (where the agent's image is named and
 * the Cilium version pinned).
 */
export function labImages(repoRoot: string): ImageSpec[] {
  return [
    image([labPauseImage], { files: [{ path: '/pause', from: { bin: 'pause' } }], config: { Entrypoint: ['/pause'] } }),
    image([labKubeProxyImage], {
      base: 'debian',
      files: [{ path: '/usr/local/bin/kube-proxy', from: { bin: 'kube-proxy' } }],
      config: { Entrypoint: ['/usr/local/bin/kube-proxy'], Env: [path] },
    }),
    // kube-flannel.yml's images: flanneld and install-conf, and the CNI plugin its init container copies.
    image([`ghcr.io/flannel-io/flannel:${labVersions.flannel}`], {
      base: 'debian',
      files: [
        { path: '/opt/bin/flanneld', from: { bin: 'flanneld' } },
        { path: '/opt/bin/install-conf', from: { bin: 'install-conf' } },
      ],
      config: { Entrypoint: ['/opt/bin/flanneld'], Env: [path] },
    }),
    image([`ghcr.io/flannel-io/flannel-cni-plugin:${labVersions.flannelCniPlugin}`], {
      base: 'debian',
      files: [{ path: '/flannel', from: { bin: 'cni/flannel' } }],
      config: { Cmd: ['/bin/sh'], Env: [path] },
    }),
    // The Dockerfile's recipe: Node.js 20 (this machine's, which the repository requires), ping,
    // dist/agent.js and the plugin (the in-cluster run's Job runs it from this image). For the
    // lab's end-to-end test only, the traffic checker too (dist/lab/traffic-checker.js, 170 KiB),
    // run as this image with another command: an image of its own would carry node again.
    image([agentImageReference(repoRoot)], {
      base: 'debian',
      files: [
        { path: '/usr/local/bin/node', from: { host: process.execPath } },
        { path: '/opt/cilium-migrate/agent.js', from: { dist: 'agent.js' } },
        { path: '/opt/cilium-migrate/kubectl-cilium_migrate', from: { dist: 'kubectl-cilium_migrate' }, mode: 0o755 },
        { path: '/opt/cilium-migrate/lab/traffic-checker.js', from: { dist: 'lab/traffic-checker.js' } },
      ],
      config: { Entrypoint: ['node', '/opt/cilium-migrate/agent.js'], Env: [path], User: '1000:1000', ExposedPorts: { '8080/tcp': {} } },
    }),
    // The seed's `kubectl create deployment nginx --image nginx`: Debian's nginx on port 80.
    image(['nginx'], { base: 'debian', files: [], config: { Cmd: ['nginx', '-g', 'daemon off;'], Env: [path], ExposedPorts: { '80/tcp': {} } } }),
    // The seed's checks (`kubectl run ... --image alpine/curl` and `--image alpine`) and the host-command pods.
    image(['alpine/curl'], { base: 'debian', files: [], config: { Cmd: ['/bin/sh'], Env: [path] } }),
    image(['alpine', labHostCommandImage], { base: 'debian', files: [], config: { Cmd: ['/bin/sh'], Env: [path] } }),
    ...ciliumImages(ciliumVersion(repoRoot)),
  ];
}
