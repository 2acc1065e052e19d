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
import { existsSync, mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { reflect, type KubeObject } from '../../lib/kube-watch.js';
import { api, apiOrNotFound, labClient, type LabClient } from '../lab-api.js';
import { selectorMatches, type LabelSelector } from '../../lib/selector.js';
import { netnsOverlays, vtepIp } from '../overlay-net.js';
import { ensureVxlanDevice, overlayIndex, vxlanPeers } from './vxlan.js';

const log = (line: string) => process.stderr.write(`${new Date().toISOString()} cilium-agent: ${line}\n`);
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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function nodeConfig(kube: LabClient, namespace: string, labels: Record<string, string>): Promise<{ config: Record<string, string>; applied: string[] }> {
  const cm = await api<{ data?: Record<string, string> }>(kube, 'GET', `/api/v1/namespaces/${namespace}/configmaps/cilium-config`);
  const config: Record<string, string> = { ...(cm.data ?? {}) };
  let items: CncObject[] = [];
  for (const version of ['v2', 'v2alpha1']) {
    const list = await apiOrNotFound<{ items?: CncObject[] }>(kube, 'GET', `/apis/cilium.io/${version}/namespaces/${namespace}/ciliumnodeconfigs`);
    if (list === undefined) continue; // that version is not served; try the next
    items = list.items ?? [];
    break;
  }
  const matching = items.filter((c) => selectorMatches(c.spec?.nodeSelector, labels)).sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
  for (const c of matching) Object.assign(config, c.spec?.defaults ?? {});
  return { config, applied: matching.map((c) => c.metadata?.name ?? '') };
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
  const kube = labClient(process.env.KUBECONFIG);

  const node = await api<NodeObject>(kube, 'GET', `/api/v1/nodes/${nodeName}`);
  const labels = node.metadata?.labels ?? {};
  const localIp = node.status?.addresses?.find((a) => a.type === 'InternalIP')?.address;
  if (!localIp) throw new Error(`node ${nodeName} has no InternalIP`);
  const { config, applied } = await nodeConfig(kube, namespace, labels);
  log(`node ${nodeName}: CiliumNodeConfigs applied: ${applied.length ? applied.join(', ') : 'none'}`);
  const port = Number(config['tunnel-port'] || 8472);

  // The CiliumNode: created if missing; its pod CIDR comes from the operator.
  let cidr: string | undefined;
  for (let attempt = 0; cidr === undefined; attempt++) {
    const cn = await apiOrNotFound<CiliumNodeObject>(kube, 'GET', `/apis/cilium.io/v2/ciliumnodes/${nodeName}`);
    if (cn === undefined) {
      await api(kube, 'POST', '/apis/cilium.io/v2/ciliumnodes', { apiVersion: 'cilium.io/v2', kind: 'CiliumNode', metadata: { name: nodeName }, spec: { addresses: [{ type: 'InternalIP', ip: localIp }] } }).catch(() => undefined);
    }
    cidr = cn?.spec?.ipam?.podCIDRs?.[0];
    if (cidr === undefined) {
      if (attempt % 10 === 0) log(`waiting for the operator to allocate a pod CIDR to CiliumNode ${nodeName}`);
      await sleep(500);
    }
  }
  const index = overlayIndex(cidr);
  await ensureVxlanDevice('cilium', port, localIp, cidr, log);

  // Routes to every other node's Cilium pod CIDR, kept as CiliumNodes and Nodes come and go.
  let nodes = new Map<string, KubeObject>();
  let ciliumNodes = new Map<string, KubeObject>();
  const program = vxlanPeers('cilium', log);
  let busy = Promise.resolve();
  const sync = () => {
    const addressOf = new Map([...nodes.values()].map((n) => [n.metadata?.name ?? '', (n as NodeObject).status?.addresses?.find((a) => a.type === 'InternalIP')?.address]));
    const peers = [...(ciliumNodes.values() as Iterable<CiliumNodeObject>)]
      .map((cn) => ({ name: cn.metadata?.name ?? '', podCidr: cn.spec?.ipam?.podCIDRs?.[0] ?? '', underlayIp: addressOf.get(cn.metadata?.name ?? '') ?? '' }))
      .filter((p) => p.name !== nodeName && p.podCidr && p.underlayIp);
    busy = busy.then(() => program(peers));
  };
  const reflectors = [
    reflect(kube.lite, '/api/v1/nodes', { onChange: (items) => ((nodes = items), sync()), onError: log }),
    reflect(kube.lite, '/apis/cilium.io/v2/ciliumnodes', { onChange: (items) => ((ciliumNodes = items), sync()), onError: log }),
  ];
  while (!reflectors.every((r) => r.synced())) await sleep(100);
  sync();
  await busy;

  const written = writeCniConfig(config, hostRoot);
  if (written) log(`wrote the CNI config ${written}: new pods on ${nodeName} get Cilium addresses from ${cidr}`);
  await api(kube, 'PATCH', `/apis/cilium.io/v2/ciliumnodes/${nodeName}`, { spec: { addresses: [{ type: 'InternalIP', ip: localIp }, { type: 'CiliumInternalIP', ip: vtepIp('cilium', index) }] } }, 'merge');
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
