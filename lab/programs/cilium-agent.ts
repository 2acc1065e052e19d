// The lab's Cilium agent: what the real agent does for a migration, on one lab node (it runs in the
// node's network namespace, as the hostNetwork cilium pod does).
//
// At start it reads cilium-config and merges the CiliumNodeConfigs whose nodeSelector matches its
// node's labels (in name order, as the real init container does; read only at start, so labelling a
// node takes effect when this pod restarts). It waits for its CiliumNode's pod CIDR (the lab's
// operator allocates them from 10.245.0.0/16), builds the cilium_vxlan device on the configured
// tunnel port and keeps a route to every other node's Cilium pod CIDR through it. When the merged
// configuration says so (custom-cni-conf=false with write-cni-conf-when-ready) it writes the CNI
// config, renaming the other configs to *.cilium_bak when cni-exclusive is true, and only then
// reports ready. Environment: NODE_NAME, KUBECONFIG, LAB_HOST_ROOT (what /host/ is on this node),
// LAB_READY_FILE, CILIUM_NAMESPACE.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { connect, k8s, type Kube } from '../../lib/kube.js';
import { reflect, type KubeObject } from '../../lib/kube-watch.js';
import { selectorMatches, type LabelSelector } from '../../lib/selector.js';
import { netnsOverlays, vtepIp, vtepMac } from '../overlay-net.js';

const log = (line: string) => process.stderr.write(`${new Date().toISOString()} cilium-agent: ${line}\n`);
const mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
const dev = netnsOverlays.cilium.dev;

interface CiliumNodeObject extends KubeObject {
  spec?: { ipam?: { podCIDRs?: string[] }; addresses?: { type: string; ip: string }[] };
}
interface NodeObject extends KubeObject {
  metadata?: KubeObject['metadata'] & { labels?: Record<string, string> };
  status?: { addresses?: { type: string; address: string }[] };
}
interface CncObject {
  metadata?: { name?: string };
  spec?: { nodeSelector?: LabelSelector; defaults?: Record<string, string> };
}

function sh(file: string, args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 15_000 }, (err, _stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stderr }));
  });
}

async function must(file: string, args: string[]): Promise<void> {
  const r = await sh(file, args);
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')}: ${r.stderr.trim()}`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The third octet of a 10.245.X.0/24 pod CIDR: the node's index on the overlay. */
function overlayIndex(cidr: string): number {
  const m = /^\d+\.\d+\.(\d+)\.0\/24$/.exec(cidr);
  if (m === null) throw new Error(`pod CIDR ${cidr} is not a /24; the lab's Cilium overlay needs one /24 per node`);
  return Number(m[1]);
}

async function nodeConfig(kube: Kube, namespace: string, labels: Record<string, string>): Promise<{ config: Record<string, string>; applied: string[] }> {
  const cm = await kube.core.readNamespacedConfigMap({ namespace, name: 'cilium-config' });
  const config: Record<string, string> = { ...(cm.data ?? {}) };
  let items: CncObject[] = [];
  for (const version of ['v2', 'v2alpha1']) {
    try {
      const list = (await kube.custom.listNamespacedCustomObject({ group: 'cilium.io', version, namespace, plural: 'ciliumnodeconfigs' })) as { items?: CncObject[] };
      items = list.items ?? [];
      break;
    } catch {
      // that version is not served; try the next
    }
  }
  const matching = items.filter((c) => selectorMatches(c.spec?.nodeSelector, labels)).sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
  for (const c of matching) Object.assign(config, c.spec?.defaults ?? {});
  return { config, applied: matching.map((c) => c.metadata?.name ?? '') };
}

async function ensureDevice(port: number, localIp: string, index: number): Promise<void> {
  const exists = (await sh('ip', ['link', 'show', 'dev', dev])).code === 0;
  if (!exists) {
    await must('ip', ['link', 'add', dev, 'address', vtepMac('cilium', index), 'type', 'vxlan', 'id', String(netnsOverlays.cilium.vni), 'dstport', String(port), 'dev', 'eth0', 'local', localIp, 'nolearning']);
    await must('ip', ['addr', 'add', `${vtepIp('cilium', index)}/32`, 'dev', dev]);
    log(`created ${dev} (VNI ${netnsOverlays.cilium.vni}, UDP ${port}, local ${localIp})`);
  }
  await must('ip', ['link', 'set', dev, 'up']);
}

function writeCniConfig(config: Record<string, string>, hostRoot: string): string | undefined {
  const target = config['write-cni-conf-when-ready'];
  if (!target || config['custom-cni-conf'] === 'true') return undefined;
  const path = target.startsWith('/host/') ? join(hostRoot, target.slice('/host/'.length)) : join(hostRoot, target);
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  if (config['cni-exclusive'] === 'true') {
    for (const f of readdirSync(dir)) {
      if (join(dir, f) === path || f.endsWith('.cilium_bak') || !/\.(conf|conflist|json)$/.test(f)) continue;
      renameSync(join(dir, f), join(dir, `${f}.cilium_bak`));
      log(`cni-exclusive: renamed ${f} to ${f}.cilium_bak`);
    }
  }
  const conflist = { cniVersion: '0.3.1', name: 'cilium', plugins: [{ type: 'cilium-cni', 'enable-debug': false }] };
  writeFileSync(path, JSON.stringify(conflist, null, 2) + '\n');
  return path;
}

async function main(): Promise<void> {
  const nodeName = process.env.NODE_NAME;
  const hostRoot = process.env.LAB_HOST_ROOT;
  const namespace = process.env.CILIUM_NAMESPACE ?? 'kube-system';
  if (!nodeName || !hostRoot) throw new Error('NODE_NAME and LAB_HOST_ROOT must be set');
  const kube = connect({ kubeconfig: process.env.KUBECONFIG });

  const node = await kube.core.readNode({ name: nodeName });
  const labels = node.metadata?.labels ?? {};
  const localIp = node.status?.addresses?.find((a) => a.type === 'InternalIP')?.address;
  if (!localIp) throw new Error(`node ${nodeName} has no InternalIP`);
  const { config, applied } = await nodeConfig(kube, namespace, labels);
  log(`node ${nodeName}: CiliumNodeConfigs applied: ${applied.length ? applied.join(', ') : 'none'}`);
  const port = Number(config['tunnel-port'] || 8472);

  // The CiliumNode: created if missing; its pod CIDR comes from the operator.
  let cidr: string | undefined;
  for (let attempt = 0; cidr === undefined; attempt++) {
    let cn: CiliumNodeObject | undefined;
    try {
      cn = (await kube.custom.getClusterCustomObject({ group: 'cilium.io', version: 'v2', plural: 'ciliumnodes', name: nodeName })) as CiliumNodeObject;
    } catch {
      await kube.custom.createClusterCustomObject({ group: 'cilium.io', version: 'v2', plural: 'ciliumnodes', body: { apiVersion: 'cilium.io/v2', kind: 'CiliumNode', metadata: { name: nodeName }, spec: { addresses: [{ type: 'InternalIP', ip: localIp }] } } }).catch(() => undefined);
    }
    cidr = cn?.spec?.ipam?.podCIDRs?.[0];
    if (cidr === undefined) {
      if (attempt % 10 === 0) log(`waiting for the operator to allocate a pod CIDR to CiliumNode ${nodeName}`);
      await sleep(500);
    }
  }
  const index = overlayIndex(cidr);
  await ensureDevice(port, localIp, index);

  // Routes to every other node's Cilium pod CIDR, kept as CiliumNodes and Nodes come and go.
  let nodes = new Map<string, KubeObject>();
  let ciliumNodes = new Map<string, KubeObject>();
  const programmed = new Map<string, string>();
  let busy = Promise.resolve();
  const sync = () => {
    busy = busy.then(async () => {
      const addressOf = new Map([...nodes.values()].map((n) => [n.metadata?.name ?? '', (n as NodeObject).status?.addresses?.find((a) => a.type === 'InternalIP')?.address]));
      for (const cn of ciliumNodes.values() as Iterable<CiliumNodeObject>) {
        const name = cn.metadata?.name ?? '';
        const peerCidr = cn.spec?.ipam?.podCIDRs?.[0];
        const peerIp = addressOf.get(name);
        if (name === nodeName || !peerCidr || !peerIp) continue;
        const want = `${peerCidr} ${peerIp}`;
        if (programmed.get(name) === want) continue;
        try {
          const i = overlayIndex(peerCidr);
          await must('ip', ['neigh', 'replace', vtepIp('cilium', i), 'lladdr', vtepMac('cilium', i), 'dev', dev, 'nud', 'permanent']);
          await must('bridge', ['fdb', 'replace', vtepMac('cilium', i), 'dev', dev, 'dst', peerIp]);
          await must('ip', ['route', 'replace', peerCidr, 'via', vtepIp('cilium', i), 'dev', dev, 'onlink']);
          programmed.set(name, want);
          log(`route to ${name}'s Cilium pod CIDR ${peerCidr} via ${peerIp}`);
        } catch (err) {
          log(`cannot program the route to ${name}: ${(err as Error).message}`);
        }
      }
    });
  };
  const reflectors = [
    reflect(kube, '/api/v1/nodes', { onChange: (items) => ((nodes = items), sync()), onError: log }),
    reflect(kube, '/apis/cilium.io/v2/ciliumnodes', { onChange: (items) => ((ciliumNodes = items), sync()), onError: log }),
  ];
  while (!reflectors.every((r) => r.synced())) await sleep(100);
  sync();
  await busy;

  const written = writeCniConfig(config, hostRoot);
  if (written) log(`wrote the CNI config ${written}: new pods on ${nodeName} get Cilium addresses from ${cidr}`);
  await kube.custom.patchClusterCustomObject({
    group: 'cilium.io', version: 'v2', plural: 'ciliumnodes', name: nodeName,
    body: { spec: { addresses: [{ type: 'InternalIP', ip: localIp }, { type: 'CiliumInternalIP', ip: vtepIp('cilium', index) }] } },
  }, mergePatch);
  if (process.env.LAB_READY_FILE) writeFileSync(process.env.LAB_READY_FILE, 'ready\n');
  log(`ready: ${dev} on UDP ${port}, pod CIDR ${cidr}, CNI ${written ? 'written' : existsSync(hostRoot) ? 'left to the other CNI (custom-cni-conf)' : 'untouched'}`);

  await new Promise<void>((resolve) => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => resolve());
  });
  for (const r of reflectors) r.stop();
  process.exit(0);
}

main().catch((err: unknown) => {
  log(`fatal: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
