// API objects for things that live in lab network namespaces: Nodes without a kubelet (kept Ready
// by a small heartbeat, as a kubelet would) and Pods bound to them whose status says Running and
// Ready at the namespace pod's IP, so the API server's pod proxy reaches the real process.
import { call, connect, k8s, type Kube } from '../../lib/kube.js';

const mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
const leaseNamespace = 'kube-node-lease';

export function labKube(kubeconfig: string): Kube {
  return connect({ kubeconfig });
}

async function markNodeReady(kube: Kube, name: string, since: Date): Promise<void> {
  const now = new Date().toISOString();
  const body = { status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'lab heartbeat', lastHeartbeatTime: now, lastTransitionTime: since.toISOString() }] } };
  await call(kube, `patch status of node ${name}`, () => kube.core.patchNodeStatus({ name, body }, mergePatch));
}

/** A MicroTime as the API server parses it (six fraction digits). */
const microTime = (d: Date) => d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

async function renewLease(kube: Kube, name: string): Promise<void> {
  const renewTime = microTime(new Date());
  try {
    await call(kube, `renew lease ${name}`, () => kube.coordination.patchNamespacedLease({ name, namespace: leaseNamespace, body: { spec: { renewTime } } }, mergePatch));
  } catch {
    const lease = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace: leaseNamespace }, spec: { holderIdentity: name, leaseDurationSeconds: 40, renewTime } };
    await call(kube, `create lease ${name}`, () => kube.coordination.createNamespacedLease({ namespace: leaseNamespace, body: lease as unknown as k8s.V1Lease }));
  }
}

/** Creates a Node no kubelet manages, Ready now. */
export async function registerLabNode(kube: Kube, name: string, labels: Record<string, string> = {}): Promise<void> {
  const body = { apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { 'kubernetes.io/hostname': name, ...labels } } };
  await call(kube, `create node ${name}`, () => kube.core.createNode({ body: body as k8s.V1Node }));
  await markNodeReady(kube, name, new Date());
  await renewLease(kube, name);
}

/**
 * Keeps the named nodes Ready (status heartbeat and node Lease renewal, as a kubelet does) so the
 * node lifecycle controller does not mark them NotReady after its 40 s grace period.
 */
export function nodeHeartbeat(kube: Kube, names: string[], everyMs = 10_000): { stop(): Promise<void> } {
  const since = new Date();
  let running: Promise<unknown> = Promise.resolve();
  const beat = () => {
    running = Promise.all(names.flatMap((n) => [markNodeReady(kube, n, since), renewLease(kube, n)])).catch(() => undefined);
  };
  const timer = setInterval(beat, everyMs);
  return {
    stop: async () => {
      clearInterval(timer);
      await running;
    },
  };
}

export async function ensureNamespace(kube: Kube, name: string): Promise<void> {
  await call(kube, `create namespace ${name}`, () => kube.core.createNamespace({ body: { metadata: { name } } })).catch((err: Error) => {
    if (!/already exists/.test(err.message)) throw err;
  });
}

/** Creates a Pod bound to `node` and sets its status to Running and Ready at `ip`. */
export async function registerLabPod(kube: Kube, pod: { namespace: string; name: string; node: string; ip: string; labels?: Record<string, string> }): Promise<void> {
  const body = {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name: pod.name, namespace: pod.namespace, labels: pod.labels ?? {} },
    spec: { nodeName: pod.node, containers: [{ name: 'main', image: 'lab/netns-process' }] },
  };
  await call(kube, `create pod ${pod.name}`, () => kube.core.createNamespacedPod({ namespace: pod.namespace, body: body as k8s.V1Pod }));
  const now = new Date().toISOString();
  const status = { status: { phase: 'Running', podIP: pod.ip, podIPs: [{ ip: pod.ip }], startTime: now, conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: now }, { type: 'ContainersReady', status: 'True', lastTransitionTime: now }] } };
  await call(kube, `patch status of pod ${pod.name}`, () => kube.core.patchNamespacedPodStatus({ name: pod.name, namespace: pod.namespace, body: status }, mergePatch));
}

/**
 * What kubelets and the DaemonSet controller would do for lab nodes, in the small: a pod that is
 * deleted goes (no kubelet confirms a graceful deletion otherwise), a new pod bound to a lab node
 * gets an address from that node's Cilium CIDR and turns Running and Ready, and every lab node
 * keeps one Ready Cilium agent pod (k8s-app=cilium in kube-system, host network).
 */
export function labKubelet(kube: Kube, nodes: { name: string; ciliumCidr: string; hostIp: string }[], everyMs = 300): { stop(): Promise<void> } {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  let next = 200;
  let stopped = false;
  const tick = async () => {
    const pods = (await call(kube, 'list pods', () => kube.core.listPodForAllNamespaces())).items.filter((p) => byName.has(p.spec?.nodeName ?? ''));
    for (const p of pods) {
      const ns = p.metadata!.namespace!;
      const name = p.metadata!.name!;
      if (p.metadata?.deletionTimestamp) {
        await call(kube, `delete pod ${name}`, () => kube.core.deleteNamespacedPod({ name, namespace: ns, gracePeriodSeconds: 0 })).catch(() => undefined);
      } else if (!p.status?.podIP) {
        const node = byName.get(p.spec!.nodeName!)!;
        const host = next;
        next = next >= 250 ? 200 : next + 1;
        const ip = p.spec?.hostNetwork ? node.hostIp : node.ciliumCidr.replace(/\.0\/\d+$/, `.${host}`);
        const now = new Date().toISOString();
        const body = { status: { phase: 'Running', podIP: ip, podIPs: [{ ip }], startTime: now, conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: now }] } };
        await call(kube, `patch status of pod ${name}`, () => kube.core.patchNamespacedPodStatus({ name, namespace: ns, body }, mergePatch)).catch(() => undefined);
      }
    }
    for (const n of nodes) {
      const has = pods.some((p) => p.spec?.nodeName === n.name && p.metadata?.namespace === 'kube-system' && p.metadata.labels?.['k8s-app'] === 'cilium' && !p.metadata.deletionTimestamp);
      if (has) continue;
      const body = {
        apiVersion: 'v1', kind: 'Pod',
        metadata: { generateName: `cilium-${n.name}-`, namespace: 'kube-system', labels: { 'k8s-app': 'cilium' }, ownerReferences: [] },
        spec: { nodeName: n.name, hostNetwork: true, containers: [{ name: 'cilium-agent', image: 'lab/cilium' }] },
      };
      await call(kube, `create cilium pod on ${n.name}`, () => kube.core.createNamespacedPod({ namespace: 'kube-system', body: body as k8s.V1Pod })).catch(() => undefined);
    }
  };
  const loop = (async () => {
    while (!stopped) {
      await tick().catch(() => undefined);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}
