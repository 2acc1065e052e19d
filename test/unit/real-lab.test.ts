// The real-node lab's pure parts: image references as containerd's CRI names them, the image
// catalog, what a node's kubelet is configured with, Flannel's manifest with another network,
// kube-proxy as kubeadm deploys it, the docker shim's templates, kind's node addresses.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parse } from 'yaml';
import { formatTemplate } from '../../lab/docker-shim.js';
import { labHostCommandImage, labImages, labNodeImage, labPauseImage } from '../../lab/images/catalog.js';
import { buildImages, holdArchive, pruneCache } from '../../lab/images/build.js';
import { BlobStore, normalizeReference, tagOf, writeImage } from '../../lab/images/oci.js';
import { nodeIp } from '../../lab/kind-lab.js';
import { flannelManifestObjects, kubeProxyObjects } from '../../lab/node/addons.js';
import { calicoManifestObjects } from '../../lab/calico.js';
import { calicoImages, calicoRelease } from '../../lab/images/calico.js';
import { kubeletConfig, sysctlShields } from '../../lab/node/node-config.js';
import { repoRoot } from '../harness/plugin.js';

describe('image references', () => {
  const cases: [string, string][] = [
    ['nginx', 'docker.io/library/nginx:latest'],
    ['alpine/curl', 'docker.io/alpine/curl:latest'],
    ['alpine:3.20', 'docker.io/library/alpine:3.20'],
    ['cilium-migrate-agent:0.1.0', 'docker.io/library/cilium-migrate-agent:0.1.0'],
    ['registry.k8s.io/pause:3.10', 'registry.k8s.io/pause:3.10'],
    ['ghcr.io/flannel-io/flannel:v0.28.10', 'ghcr.io/flannel-io/flannel:v0.28.10'],
    ['localhost:5000/x', 'localhost:5000/x:latest'],
    ['alpine@sha256:abc', 'docker.io/library/alpine@sha256:abc'],
  ];
  for (const [ref, full] of cases) it(`${ref} is stored as ${full}`, () => assert.equal(normalizeReference(ref), full));

  it('takes the tag after the last slash only', () => {
    assert.equal(tagOf('localhost:5000/x'), 'latest');
    assert.equal(tagOf('ghcr.io/flannel-io/flannel:v0.28.10'), 'v0.28.10');
    assert.equal(tagOf('docker.io/library/alpine:3.20@sha256:abc'), '3.20');
  });
});

describe('Calico for the lab (--legacy calico)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'calico-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  // The shape of calico-vxlan.yaml (projectcalico/calico v3.31.0 manifests/): the parts the lab changes.
  const manifest = (initContainers: string[]) => {
    const file = join(dir, `calico-vxlan-${initContainers.length}.yaml`);
    writeFileSync(file, [
      'kind: ConfigMap\napiVersion: v1\nmetadata: {name: calico-config, namespace: kube-system}\ndata: {calico_backend: vxlan}',
      `kind: DaemonSet\napiVersion: apps/v1\nmetadata: {name: calico-node, namespace: kube-system}\nspec:\n  template:\n    spec:\n      initContainers: [${initContainers.map((n) => `{name: ${n}, image: 'quay.io/calico/cni:v3.31.0'}`).join(', ')}]\n      containers:\n        - name: calico-node\n          image: quay.io/calico/node:v3.31.0\n          env:\n            - {name: IP, value: autodetect}\n            - {name: CALICO_IPV4POOL_IPIP, value: Never}\n            - {name: CALICO_IPV4POOL_VXLAN, value: CrossSubnet}\n`,
    ].join('\n---\n'));
    return file;
  };
  const o = { poolCidr: '192.168.0.0/16', apiServer: { host: '172.18.0.254', port: 6443 } };

  it('changes only the pool (VXLAN Always), autodetection and what concerns the eBPF dataplane, and names the API server\'s lab address', () => {
    const objs = calicoManifestObjects(manifest(['upgrade-ipam', 'install-cni', 'ebpf-bootstrap']), o);
    const pod = (objs[1]!.spec as { template: { spec: { initContainers: { name: string }[]; containers: { image: string; env: { name: string; value?: string }[] }[] } } }).template.spec;
    assert.deepEqual(pod.initContainers.map((c) => c.name), ['upgrade-ipam', 'install-cni']);
    assert.equal(pod.containers[0]!.image, 'quay.io/calico/node:v3.31.0');
    assert.deepEqual(Object.fromEntries(pod.containers[0]!.env.map((e) => [e.name, e.value])), {
      IP: 'autodetect', CALICO_IPV4POOL_IPIP: 'Never', CALICO_IPV4POOL_VXLAN: 'Always', CALICO_IPV4POOL_CIDR: '192.168.0.0/16', IP_AUTODETECTION_METHOD: 'kubernetes-internal-ip',
      // calico-node is built without cgo (libbpf): felix's start-up cleanup of eBPF state would panic.
      FELIX_DebugSkipCTLBCleanup: 'true',
    });
    assert.deepEqual(objs[2], { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kubernetes-services-endpoint', namespace: 'kube-system' }, data: { KUBERNETES_SERVICE_HOST: '172.18.0.254', KUBERNETES_SERVICE_PORT: '6443' } });
  });

  it('refuses a manifest without the ebpf-bootstrap init container it drops, rather than run what was not reviewed', () => {
    assert.throws(() => calicoManifestObjects(manifest(['upgrade-ipam', 'install-cni']), o), /no ebpf-bootstrap init container/);
  });

  it('builds the three images calico-vxlan.yaml names, at the release module.env pins, calico-node under /usr/bin (Debian\'s /bin is a link)', () => {
    const release = calicoRelease(repoRoot);
    assert.equal(release, 'v3.31.0');
    const images = calicoImages(release, '/calico', '/node');
    assert.deepEqual(images.map((i) => i.names[0]), ['quay.io/calico/node:v3.31.0', 'quay.io/calico/cni:v3.31.0', 'quay.io/calico/kube-controllers:v3.31.0']);
    assert.ok(images[0]!.files.some((f) => f.path === '/usr/bin/calico-node'));
    assert.ok(images.every((i) => i.files.every((f) => !/^\/s?bin\//.test(f.path))));
    assert.equal(images[2]!.config.User, '999');
  });
});

describe('the lab\'s images', () => {
  const images = labImages(repoRoot);
  const names = images.flatMap((i) => i.names);

  it('carry the exact names the manifests and the seed use', () => {
    for (const n of [
      'registry.k8s.io/pause:3.10', 'registry.k8s.io/kube-proxy:v1.36.5',
      'ghcr.io/flannel-io/flannel:v0.28.10', 'ghcr.io/flannel-io/flannel-cni-plugin:v1.9.1-flannel3',
      'docker.io/library/cilium-migrate-agent:0.1.0', 'docker.io/library/nginx:latest',
      'docker.io/alpine/curl:latest', 'docker.io/library/alpine:latest', labHostCommandImage,
      // Cilium's chart with image.useDigest=false, at the version lab/bins/cilium/module.env pins.
      'quay.io/cilium/cilium:v1.18.3', 'quay.io/cilium/operator-generic:v1.18.3',
    ]) assert.ok(names.includes(n), `${n} is built`);
    assert.equal(new Set(names).size, names.length, 'each name once');
    assert.equal(labPauseImage, 'registry.k8s.io/pause:3.10');
  });

  it('match kube-flannel.yml, the agent\'s kustomization and containerd\'s sandbox image', () => {
    const kustomization = parse(repoFile('manifests/agent/kustomization.yaml')) as { images: { newName: string; newTag: string }[] };
    assert.ok(names.includes(normalizeReference(`${kustomization.images[0]!.newName}:${kustomization.images[0]!.newTag}`)));
    assert.match(repoFile('lab/node/containerd.toml'), /sandbox = "registry\.k8s\.io\/pause:3\.10"/);
  });

  it('the node image runs the node init and holds kubelet, containerd and the standard CNI plugins', () => {
    const node = labNodeImage();
    const paths = node.files.map((f) => f.path);
    for (const p of ['/usr/local/bin/kubelet', '/usr/local/bin/containerd', '/usr/local/bin/containerd-shim-runc-v2', '/opt/cni/bin/bridge', '/opt/cni/bin/host-local', '/opt/cni/bin/loopback', '/opt/cni/bin/portmap', '/usr/local/bin/systemctl']) assert.ok(paths.includes(p), p);
    assert.deepEqual(node.config.Entrypoint, ['/usr/local/bin/lab-node-init']);
  });
});

describe('a lab node\'s kubelet', () => {
  const config = (controlPlane: boolean) => parse(kubeletConfig({ nodeName: 'kind-worker', nodeIp: '172.18.0.3', cgroupRoot: 'cml1234/kind-worker', controlPlane, clusterDns: '10.96.0.10', providerID: 'kind://docker/kind/kind-worker' })) as Record<string, unknown>;

  it('runs on these machines\' cgroup v1 hierarchies, under the node\'s own cgroup, as kind\'s node', () => {
    const c = config(false);
    assert.equal(c.failCgroupV1, false);
    assert.equal(c.cgroupDriver, 'cgroupfs');
    assert.equal(c.cgroupRoot, '/cml1234/kind-worker');
    assert.equal(c.providerID, 'kind://docker/kind/kind-worker');
    assert.equal(c.address, '172.18.0.3');
    assert.equal(c.registerWithTaints, undefined);
    assert.equal(c.protectKernelDefaults, false);
  });

  it('registers the control plane with its taint', () => {
    assert.deepEqual(config(true).registerWithTaints, [{ key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' }]);
  });

  it('shields the machine-wide sysctls kubelet and Cilium write, and no per-namespace one', () => {
    for (const k of ['vm.overcommit_memory', 'kernel.panic', 'kernel.panic_on_oops', 'kernel.unprivileged_bpf_disabled']) assert.ok((sysctlShields as readonly string[]).includes(k), k);
    assert.ok(sysctlShields.every((k) => !k.startsWith('net.')));
  });

  it('gets kind\'s addresses: the control plane .2, then the workers', () => {
    assert.deepEqual([0, 1, 2, 253].map(nodeIp), ['172.18.0.2', '172.18.0.3', '172.18.0.4', '172.18.0.255']);
    assert.equal(nodeIp(254), '172.18.1.0');
  });
});

describe('addons', () => {
  const dir = mkdtempSync(join(tmpdir(), 'addons-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const manifest = join(dir, 'kube-flannel.yml');
  writeFileSync(manifest, [
    'kind: Namespace\napiVersion: v1\nmetadata: {name: kube-flannel}',
    'kind: ConfigMap\napiVersion: v1\nmetadata: {name: kube-flannel-cfg, namespace: kube-flannel}\ndata:\n  net-conf.json: |\n    {\n      "Network": "10.244.0.0/16",\n      "Backend": {"Type": "vxlan"}\n    }\n',
  ].join('\n---\n'));

  it('Flannel\'s manifest stays as published for its own network and port, and gets the lab\'s otherwise', () => {
    const conf = (objs: Record<string, unknown>[]) => (objs[1]!.data as Record<string, string>)['net-conf.json']!;
    const same = flannelManifestObjects(manifest, { network: '10.244.0.0/16', vxlanPort: 8472 });
    assert.equal(conf(same), '{\n  "Network": "10.244.0.0/16",\n  "Backend": {"Type": "vxlan"}\n}\n');
    assert.equal(conf(flannelManifestObjects(manifest, { network: '10.244.0.0/16' })), conf(same));
    const other = flannelManifestObjects(manifest, { network: '10.200.0.0/16' });
    assert.deepEqual(JSON.parse(conf(other)), { Network: '10.200.0.0/16', Backend: { Type: 'vxlan' } });
    const port = flannelManifestObjects(manifest, { network: '10.42.0.0/16', vxlanPort: 8555 });
    assert.deepEqual(JSON.parse(conf(port)), { Network: '10.42.0.0/16', Backend: { Type: 'vxlan', Port: 8555 } });
  });

  it('kube-proxy leaves nf_conntrack_max (machine-wide) alone, as on kind, and reaches the API server directly', () => {
    const objs = kubeProxyObjects({ apiServer: 'https://172.18.0.254:6443', clusterCidr: '10.244.0.0/16' });
    const cm = objs.find((o) => o.kind === 'ConfigMap')!.data as Record<string, string>;
    const cfg = parse(cm['config.conf']!) as { mode: string; conntrack: { maxPerCore: number }; clusterCIDR: string };
    assert.deepEqual([cfg.mode, cfg.conntrack.maxPerCore, cfg.clusterCIDR], ['iptables', 0, '10.244.0.0/16']);
    assert.match(cm['kubeconfig.conf']!, /server: https:\/\/172\.18\.0\.254:6443/);
  });
});

describe('the image cache', () => {
  const root = mkdtempSync(join(tmpdir(), 'image-cache-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  it('drops what no build used for two days, and every blob nothing left refers to', () => {
    const store = new BlobStore(join(root, 'blobs'));
    const base = store.putBytes('base layer', 'layer');
    const kept = writeImage(store, [base, store.putBytes('kept files', 'layer')], { Cmd: ['/kept'] });
    const dropped = writeImage(store, [base, store.putBytes('dropped files', 'layer')], { Cmd: ['/dropped'] });
    for (const d of ['manifests', 'bases', 'archives']) mkdirSync(join(root, d), { recursive: true });
    writeFileSync(join(root, 'bases', 'debian-x.json'), JSON.stringify(base));
    writeFileSync(join(root, 'manifests', 'kept.json'), JSON.stringify(kept));
    writeFileSync(join(root, 'manifests', 'dropped.json'), JSON.stringify(dropped));
    writeFileSync(join(root, 'archives', 'old.oci.tar'), '');
    const threeDaysAgo = new Date(Date.now() - 3 * 24 * 3_600_000);
    for (const f of [join(root, 'manifests', 'dropped.json'), join(root, 'archives', 'old.oci.tar'), ...readdirSync(join(root, 'blobs', 'sha256')).map((b) => join(root, 'blobs', 'sha256', b))]) utimesSync(f, threeDaysAgo, threeDaysAgo);
    pruneCache(root);
    assert.deepEqual(readdirSync(join(root, 'manifests')), ['kept.json']);
    assert.deepEqual(readdirSync(join(root, 'archives')), ['old.oci.tar'], 'an archive among the newest three stays however old');
    assert.ok(store.has(base.digest) && store.has(kept.digest), 'what a kept image or a base refers to stays, however old');
    assert.equal(store.has(dropped.digest), false);
    assert.equal(readdirSync(join(root, 'blobs', 'sha256')).length, 4, 'the base, and the kept image\'s files layer, config and manifest');
  });

  it('keeps the newest three archives; an older one goes after an hour unused, and a lab\'s hard link to it still reads', () => {
    const dir = join(root, 'archives');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const now = Date.now();
    const ages: [string, number][] = [['a', 10], ['b', 20], ['c', 30], ['d', 40], ['e', 90], ['f', 120]];
    for (const [name, minutes] of ages) {
      writeFileSync(join(dir, `${name}.oci.tar`), name);
      const t = new Date(now - minutes * 60_000);
      utimesSync(join(dir, `${name}.oci.tar`), t, t);
    }
    const held = holdArchive(join(dir, 'f.oci.tar'), join(root, 'f-held.oci.tar'));
    assert.equal(held, join(root, 'f-held.oci.tar'));
    pruneCache(root, now);
    assert.deepEqual(readdirSync(dir).sort(), ['a.oci.tar', 'b.oci.tar', 'c.oci.tar', 'd.oci.tar'], 'the newest three, and d, fourth but used 40 minutes ago');
    assert.equal(readFileSync(held, 'utf8'), 'f', 'the running lab\'s link outlives the pruned archive');
  });
});

describe('building an image (scratch, no Debian base) into an archive ctr imports', () => {
  const root = mkdtempSync(join(tmpdir(), 'image-build-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  it('places binaries, text and whole trees, names every manifest, and reuses what did not change', async () => {
    const src = join(root, 'src');
    mkdirSync(join(src, 'bpf', 'lib'), { recursive: true });
    writeFileSync(join(src, 'bpf', 'bpf_host.c'), 'int x;\n');
    writeFileSync(join(src, 'bpf', 'lib', 'common.h'), '#define Y 1\n');
    writeFileSync(join(src, 'agent'), '#!/bin/sh\n', { mode: 0o755 });
    const spec = { names: ['quay.io/cilium/cilium:v1.18.3'], files: [
      { path: '/usr/bin/cilium-agent', from: { host: join(src, 'agent') } },
      { path: '/var/lib/cilium/bpf', from: { tree: join(src, 'bpf') } },
      { path: '/etc/motd', from: { text: 'lab\n' } },
    ], config: { Entrypoint: ['/usr/bin/cilium-agent'] } };
    const lines: string[] = [];
    const o = { cacheRoot: join(root, 'cache'), nodeBinDir: root, distDir: join(root, 'dist'), images: [spec], progress: (l: string) => lines.push(l) };
    const built = await buildImages(o);
    const listing = execFileSync('tar', ['-tvf', built.archive], { encoding: 'utf8' });
    assert.match(listing, /index\.json/);
    const index = JSON.parse(execFileSync('tar', ['-xOf', built.archive, 'index.json'], { encoding: 'utf8' })) as { manifests: { annotations: Record<string, string> }[] };
    assert.deepEqual(index.manifests.map((m) => m.annotations['io.containerd.image.name']), ['quay.io/cilium/cilium:v1.18.3']);
    const manifest = JSON.parse(readFileSync(join(built.blobs, 'sha256', built.images[0]!.digest.slice(7)), 'utf8')) as { layers: { digest: string }[] };
    const layer = execFileSync('tar', ['-tvf', join(built.blobs, 'sha256', manifest.layers[0]!.digest.slice(7))], { encoding: 'utf8' });
    for (const f of ['./usr/bin/cilium-agent', './var/lib/cilium/bpf/bpf_host.c', './var/lib/cilium/bpf/lib/common.h', './etc/motd']) assert.match(layer, new RegExp(`${f.replace(/\./g, '\\.')}$`, 'm'));
    assert.match(layer, /^-rwxr-xr-x 0\/0 .* \.\/usr\/bin\/cilium-agent$/m);
    assert.ok(lines.some((l) => /image quay\.io\/cilium\/cilium:v1\.18\.3: built/.test(l)));
    // Again: nothing rebuilt, the same archive.
    lines.length = 0;
    assert.equal((await buildImages(o)).archive, built.archive);
    assert.deepEqual(lines.filter((l) => /built/.test(l)), []);
    // A file of the tree changes: a new image.
    writeFileSync(join(src, 'bpf', 'lib', 'common.h'), '#define Y 2\n');
    assert.notEqual((await buildImages(o)).images[0]!.digest, built.images[0]!.digest);
  });
});

describe('docker for the lab\'s nodes', () => {
  const inspect = { State: { StartedAt: '2026-11-25T16:24:19.138Z', Running: true, Pid: 42 }, Name: '/kind-worker' };
  it('fills docker inspect\'s Go templates', () => {
    assert.equal(formatTemplate('{{.State.StartedAt}}', inspect), '2026-11-25T16:24:19.138Z');
    assert.equal(formatTemplate('{{ .State.Pid }} {{.Name}}', inspect), '42 /kind-worker');
    assert.equal(formatTemplate('{{json .State.Running}}', inspect), 'true');
    assert.equal(formatTemplate('{{.State.Missing}}', inspect), '<no value>');
  });
});

function repoFile(path: string): string {
  return readFileSync(join(repoRoot, path), 'utf8');
}
