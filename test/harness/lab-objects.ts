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
