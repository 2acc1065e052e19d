// The lab's flanneld (kube-subnet-mgr mode), run by the kube-flannel-ds pods in each node's network
// namespace: reads net-conf.json, builds flannel.1 (VXLAN on the configured port, 8472) for the pod
// CIDR the controller manager gave its node (node.spec.podCIDR), and keeps a route to every other
// node's pod CIDR through it. Environment: NODE_NAME, KUBECONFIG, LAB_READY_FILE, POD_NAMESPACE.
import { writeFileSync } from 'node:fs';
import { reflect, type KubeObject } from '../../lib/kube-watch.js';
import { api, labClient } from '../lab-api.js';
import { ensureVxlanDevice, vxlanPeers } from './vxlan.js';

const log = (line: string) => process.stderr.write(`${new Date().toISOString()} flanneld: ${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface NodeObject extends KubeObject {
  spec?: { podCIDR?: string };
  status?: { addresses?: { type: string; address: string }[] };
}

async function main(): Promise<void> {
  const nodeName = process.env.NODE_NAME;
  if (!nodeName) throw new Error('NODE_NAME must be set');
  const kube = labClient(process.env.KUBECONFIG);
  const cm = await api<{ data?: Record<string, string> }>(kube, 'GET', `/api/v1/namespaces/${process.env.POD_NAMESPACE ?? 'kube-flannel'}/configmaps/kube-flannel-cfg`);
  const netConf = JSON.parse(cm.data?.['net-conf.json'] ?? '{}') as { Network?: string; Backend?: { Type?: string; Port?: number } };
  if ((netConf.Backend?.Type ?? 'vxlan').toLowerCase() !== 'vxlan') throw new Error(`backend ${netConf.Backend?.Type}: the lab's flanneld has only vxlan`);
  const port = netConf.Backend?.Port ?? 8472;

  let self: NodeObject | undefined;
  for (let i = 0; !self?.spec?.podCIDR; i++) {
    self = await api<NodeObject>(kube, 'GET', `/api/v1/nodes/${nodeName}`);
    if (!self.spec?.podCIDR) {
      if (i % 10 === 0) log(`waiting for ${nodeName} to get a podCIDR`);
      await sleep(500);
    }
  }
  const localIp = self.status?.addresses?.find((a) => a.type === 'InternalIP')?.address;
  if (!localIp) throw new Error(`node ${nodeName} has no InternalIP`);
  await ensureVxlanDevice('legacy', port, localIp, self.spec!.podCIDR!, log);

  const program = vxlanPeers('legacy', log);
  let busy = Promise.resolve();
  const nodes = reflect(kube.lite, '/api/v1/nodes', {
    onChange: (items) => {
      const peers = [...(items.values() as Iterable<NodeObject>)]
        .filter((n) => n.metadata?.name !== nodeName && n.spec?.podCIDR)
        .map((n) => ({ name: n.metadata?.name ?? '', podCidr: n.spec!.podCIDR!, underlayIp: n.status?.addresses?.find((a) => a.type === 'InternalIP')?.address ?? '' }))
        .filter((p) => p.underlayIp);
      busy = busy.then(() => program(peers));
    },
    onError: log,
  });
  while (!nodes.synced()) await sleep(100);
  await busy;
  if (process.env.LAB_READY_FILE) writeFileSync(process.env.LAB_READY_FILE, 'ready\n');
  log(`ready: flannel.1 on UDP ${port} for ${self.spec!.podCIDR} (network ${netConf.Network ?? '?'})`);
  await new Promise<void>((resolve) => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => resolve());
  });
  nodes.stop();
  process.exit(0);
}

main().catch((err: unknown) => {
  log(`fatal: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
