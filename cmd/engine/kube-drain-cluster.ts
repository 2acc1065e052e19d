// DrainCluster on a real cluster, through lib/kube.
import { call, evictPod, statusCode, type k8s, type Kube } from '../../lib/kube.js';
import type { DrainCluster } from './drain.js';
import type { DrainPod } from './drain-filter.js';

/** The drain's view of a pod. */
export function toDrainPod(pod: k8s.V1Pod): DrainPod {
  const controller = pod.metadata?.ownerReferences?.find((o) => o.controller);
  return {
    namespace: pod.metadata?.namespace ?? '',
    name: pod.metadata?.name ?? '',
    uid: pod.metadata?.uid ?? '',
    phase: pod.status?.phase,
    deletionTimestamp: pod.metadata?.deletionTimestamp ? new Date(pod.metadata.deletionTimestamp) : undefined,
    controller: controller ? { kind: controller.kind, name: controller.name } : undefined,
    mirror: Boolean(pod.metadata?.annotations?.['kubernetes.io/config.mirror']),
    emptyDir: (pod.spec?.volumes ?? []).some((v) => v.emptyDir !== undefined && v.emptyDir !== null),
  };
}

export function kubeDrainCluster(kube: Kube): DrainCluster {
  return {
    async listPodsOnNode(node, podSelector) {
      const list = await call(kube, `list pods on node ${node}`, () =>
        kube.core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${node}`, ...(podSelector ? { labelSelector: podSelector } : {}) }),
      );
      return list.items.map(toDrainPod);
    },
    async daemonSetExists(namespace, name) {
      try {
        await kube.apps.readNamespacedDaemonSet({ namespace, name });
        return true;
      } catch (err) {
        if (statusCode(err) === 404) return false;
        return call(kube, `get daemonset ${namespace}/${name}`, () => Promise.reject(err));
      }
    },
    evictPod: (pod, gracePeriodSeconds) => evictPod(kube, pod, gracePeriodSeconds),
    async deletePod(pod, gracePeriodSeconds) {
      try {
        await kube.core.deleteNamespacedPod({
          namespace: pod.namespace,
          name: pod.name,
          body: { preconditions: { uid: pod.uid }, ...(gracePeriodSeconds !== undefined && gracePeriodSeconds >= 0 ? { gracePeriodSeconds } : {}) },
        });
      } catch (err) {
        // Gone already, or the name belongs to a new pod: ours is gone either way.
        if (statusCode(err) === 404 || statusCode(err) === 409) return;
        await call(kube, `delete pod ${pod.namespace}/${pod.name}`, () => Promise.reject(err));
      }
    },
  };
}
