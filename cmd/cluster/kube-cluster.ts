// The engine's narrow interfaces (cluster.ts) on a real cluster, through lib/kube.
import { randomBytes } from 'node:crypto';
import { call, k8s, mergePatch, statusCode, type Kube } from '../../lib/kube.js';
import { evictPod } from '../../lib/kube-objects.js';
import { hostPodAppName, hostPodLabels, hostPodRequestAnnotation } from '../../lib/defaults.js';
import { NotFoundError } from '../../lib/errors.js';
import { selectorMatches, type LabelSelector } from '../../lib/selector.js';
import type { KubeCluster, NodePatch, NodeView, PodView } from './cluster.js';
import type { DrainPod } from './drain-filter.js';


/** Identity and controller of a pod, common to every view of it. */
function podBasics(pod: k8s.V1Pod) {
  const controller = pod.metadata?.ownerReferences?.find((o) => o.controller);
  return {
    namespace: pod.metadata?.namespace ?? '',
    name: pod.metadata?.name ?? '',
    uid: pod.metadata?.uid ?? '',
    controller: controller ? { kind: controller.kind, name: controller.name } : undefined,
  };
}

/** The drain's view of a pod. */
export function toDrainPod(pod: k8s.V1Pod): DrainPod {
  return {
    ...podBasics(pod),
    phase: pod.status?.phase,
    deletionTimestamp: pod.metadata?.deletionTimestamp ? new Date(pod.metadata.deletionTimestamp) : undefined,
    mirror: Boolean(pod.metadata?.annotations?.['kubernetes.io/config.mirror']),
    emptyDir: (pod.spec?.volumes ?? []).some((v) => v.emptyDir !== undefined && v.emptyDir !== null),
  };
}

export function toNodeView(node: k8s.V1Node): NodeView {
  const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
  const labels = node.metadata?.labels ?? {};
  return {
    name: node.metadata?.name ?? '',
    uid: node.metadata?.uid ?? '',
    unschedulable: node.spec?.unschedulable === true,
    labels,
    annotations: node.metadata?.annotations ?? {},
    providerID: node.spec?.providerID ?? '',
    bootID: node.status?.nodeInfo?.bootID ?? '',
    ready: ready?.status === 'True',
    readySince: ready?.lastTransitionTime ? new Date(ready.lastTransitionTime) : undefined,
    readyHeartbeat: ready?.lastHeartbeatTime ? new Date(ready.lastHeartbeatTime) : undefined,
    podCIDRs: node.spec?.podCIDRs ?? (node.spec?.podCIDR ? [node.spec.podCIDR] : []),
    controlPlane: 'node-role.kubernetes.io/control-plane' in labels || 'node-role.kubernetes.io/master' in labels,
    taints: (node.spec?.taints ?? []).map((t) => ({ key: t.key, effect: t.effect })),
  };
}

export function toPodView(pod: k8s.V1Pod): PodView {
  return {
    ...podBasics(pod),
    nodeName: pod.spec?.nodeName ?? '',
    phase: pod.status?.phase ?? '',
    ready: pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
    podIP: pod.status?.podIP ?? '',
    hostNetwork: pod.spec?.hostNetwork === true,
    createdAt: pod.metadata?.creationTimestamp ? new Date(pod.metadata.creationTimestamp) : new Date(0),
    restarts: (pod.status?.containerStatuses ?? []).reduce((n, c) => n + (c.restartCount ?? 0), 0),
    containerIds: (pod.status?.containerStatuses ?? []).map((c) => c.containerID).filter((id): id is string => Boolean(id)),
  };
}

async function notFoundAsUndefined<T>(fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    if (statusCode(err) === 404) return undefined;
    throw err;
  }
}

/** The one adapter of the engine's interfaces over the Kubernetes client. */
export function kubeEngineCluster(kube: Kube): KubeCluster {
  let cncVersion: string | undefined;
  const listPods = (node: string, labelSelector?: string) =>
    call(kube, `list pods on node ${node}`, () =>
      kube.core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${node}`, ...(labelSelector ? { labelSelector } : {}) }),
    );
  return {
    async listPodsOnNode(node, podSelector) {
      return (await listPods(node, podSelector)).items.map(toDrainPod);
    },
    async daemonSetExists(namespace, name) {
      const ds = await call(kube, `get daemonset ${namespace}/${name}`, () => notFoundAsUndefined(() => kube.apps.readNamespacedDaemonSet({ namespace, name })));
      return ds !== undefined;
    },
    evictPod: (pod, gracePeriodSeconds) => evictPod(kube, pod, gracePeriodSeconds),
    async deletePod(pod, gracePeriodSeconds) {
      await this.deletePodByUid(pod.namespace, pod.name, pod.uid, gracePeriodSeconds);
    },
    async deletePodByUid(namespace: string, name: string, uid: string, gracePeriodSeconds?: number) {
      try {
        await kube.core.deleteNamespacedPod({
          namespace,
          name,
          body: { preconditions: { uid }, ...(gracePeriodSeconds !== undefined && gracePeriodSeconds >= 0 ? { gracePeriodSeconds } : {}) },
        });
      } catch (err) {
        // Gone already, or the name belongs to a new pod: ours is gone either way.
        if (statusCode(err) === 404 || statusCode(err) === 409) return;
        await call(kube, `delete pod ${namespace}/${name}`, () => Promise.reject(err));
      }
    },
    async getNode(name) {
      const node = await call(kube, `get node ${name}`, () => notFoundAsUndefined(() => kube.core.readNode({ name })));
      if (!node) throw new NotFoundError(`node "${name}" does not exist`, 'list the nodes with kubectl get nodes');
      return toNodeView(node);
    },
    async patchNode(name, patch: NodePatch) {
      const body = {
        ...(patch.unschedulable !== undefined ? { spec: { unschedulable: patch.unschedulable ? true : null } } : {}),
        ...(patch.labels || patch.annotations ? { metadata: { ...(patch.labels ? { labels: patch.labels } : {}), ...(patch.annotations ? { annotations: patch.annotations } : {}) } } : {}),
      };
      return toNodeView(await call(kube, `patch node ${name}`, () => kube.core.patchNode({ name, body }, mergePatch)));
    },
    async listPodsBySelector(namespace, labelSelector) {
      return (await call(kube, `list pods ${labelSelector} in ${namespace}`, () => kube.core.listNamespacedPod({ namespace, labelSelector }))).items.map(toPodView);
    },
    async listNodePods(node, labelSelector) {
      return (await listPods(node, labelSelector)).items.map(toPodView);
    },
    async ciliumPodCidrs(node) {
      const cn = (await call(kube, `get ciliumnode ${node}`, () =>
        notFoundAsUndefined(() => kube.custom.getClusterCustomObject({ group: 'cilium.io', version: 'v2', plural: 'ciliumnodes', name: node })),
      )) as { spec?: { ipam?: { podCIDRs?: string[] } } } | undefined;
      return cn ? cn.spec?.ipam?.podCIDRs ?? [] : undefined;
    },
    async nodeConfigsSelecting(namespace, labels) {
      // The served version is looked up once per run: a CRD does not change its versions mid-run.
      if (cncVersion === undefined) {
        const crd = await call(kube, 'get crd ciliumnodeconfigs.cilium.io', () =>
          notFoundAsUndefined(() => kube.extensions.readCustomResourceDefinition({ name: 'ciliumnodeconfigs.cilium.io' })),
        );
        const served = crd?.spec.versions.filter((v) => v.served).map((v) => v.name) ?? [];
        const found = served.includes('v2') ? 'v2' : served.includes('v2alpha1') ? 'v2alpha1' : undefined;
        if (!found) return [];
        cncVersion = found;
      }
      const version = cncVersion;
      const list = (await call(kube, 'list ciliumnodeconfigs', () =>
        kube.custom.listNamespacedCustomObject({ group: 'cilium.io', version, namespace, plural: 'ciliumnodeconfigs' }),
      )) as { items?: { metadata?: { name?: string }; spec?: { nodeSelector?: LabelSelector } }[] };
      return (list.items ?? []).filter((c) => selectorMatches(c.spec?.nodeSelector, labels)).map((c) => c.metadata?.name ?? '');
    },
    async createProbePod(namespace, name, node, image) {
      await call(kube, `create pod ${namespace}/${name}`, () =>
        kube.core.createNamespacedPod({
          namespace,
          body: {
            metadata: { name, namespace, labels: { 'app.kubernetes.io/name': 'cilium-migrate-verify' } },
            spec: {
              nodeName: node,
              restartPolicy: 'Never',
              terminationGracePeriodSeconds: 0,
              tolerations: [{ operator: 'Exists' }],
              automountServiceAccountToken: false,
              containers: [{ name: 'verify', image, resources: { requests: { cpu: '1m', memory: '4Mi' } } }],
            },
          },
        }),
      );
    },
    async createHostCommandPod(pod) {
      try {
        await kube.core.createNamespacedPod({
          namespace: pod.namespace,
          body: {
            metadata: {
              name: pod.name,
              namespace: pod.namespace,
              labels: { [hostPodLabels.app]: hostPodAppName, [hostPodLabels.purpose]: pod.purpose },
              annotations: { [hostPodRequestAnnotation]: pod.request },
            },
            spec: {
              nodeName: pod.node,
              hostPID: true,
              restartPolicy: 'Never',
              tolerations: [{ operator: 'Exists' }],
              automountServiceAccountToken: false,
              containers: [{ name: 'host', image: pod.image, command: pod.command, securityContext: { privileged: true } }],
            },
          },
        });
        return 'created';
      } catch (err) {
        // The name is derived from the request: a pod of that name is this request's own.
        if (statusCode(err) === 409) return 'exists';
        return call(kube, `create pod ${pod.namespace}/${pod.name}`, () => Promise.reject(err));
      }
    },
    async getPod(namespace, name) {
      const pod = await call(kube, `get pod ${namespace}/${name}`, () => notFoundAsUndefined(() => kube.core.readNamespacedPod({ namespace, name })));
      return pod ? toPodView(pod) : undefined;
    },
    async recordEvent(node, type, reason, message) {
      const now = new Date();
      try {
        await kube.core.createNamespacedEvent({
          namespace: 'default',
          body: {
            metadata: { name: `${node.name}.${now.getTime().toString(16)}${randomBytes(2).toString('hex')}`, namespace: 'default' },
            involvedObject: { apiVersion: 'v1', kind: 'Node', name: node.name, uid: node.uid },
            type,
            reason,
            message,
            source: { component: 'cilium-migrate' },
            reportingComponent: 'cilium-migrate',
            reportingInstance: 'kubectl-cilium_migrate',
            firstTimestamp: now,
            lastTimestamp: now,
            count: 1,
          },
        });
      } catch {
        // An event is a courtesy to people reading `kubectl describe node`; the state annotation is the record.
      }
    },
    async lastKubeletStart(node) {
      // kubelet records "Starting kubelet." on its Node each time it starts (in the default
      // namespace); kube-proxy's own Starting events are told apart by their source.
      const list = await call(kube, `list the events of node ${node}`, () => kube.core.listEventForAllNamespaces({ fieldSelector: `involvedObject.kind=Node,involvedObject.name=${node},reason=Starting` }));
      let last: Date | undefined;
      for (const e of list.items) {
        if (e.source?.component !== 'kubelet' && e.reportingComponent !== 'kubelet') continue;
        const at = e.lastTimestamp ?? e.eventTime ?? e.firstTimestamp;
        const t = at === undefined ? undefined : new Date(at as unknown as string | Date);
        if (t && !Number.isNaN(t.getTime()) && (!last || t > last)) last = t;
      }
      return last;
    },
    async getLease(namespace, name) {
      const lease = await call(kube, `get lease ${namespace}/${name}`, () => notFoundAsUndefined(() => kube.coordination.readNamespacedLease({ namespace, name })));
      if (!lease) return undefined;
      return {
        holder: lease.spec?.holderIdentity ?? '',
        renewTime: new Date(lease.spec?.renewTime ?? lease.spec?.acquireTime ?? 0),
        durationSeconds: lease.spec?.leaseDurationSeconds ?? 0,
        resourceVersion: lease.metadata?.resourceVersion ?? '',
      };
    },
    async writeLease(namespace, name, holder, durationSeconds, now, resourceVersion) {
      const body: k8s.V1Lease = {
        metadata: { name, namespace, ...(resourceVersion ? { resourceVersion } : {}) },
        // MicroTime wants six fraction digits; a plain Date serialises with three and is refused.
        spec: { holderIdentity: holder, leaseDurationSeconds: durationSeconds, renewTime: new k8s.V1MicroTime(now.getTime()), acquireTime: new k8s.V1MicroTime(now.getTime()) },
      };
      try {
        if (resourceVersion) await kube.coordination.replaceNamespacedLease({ namespace, name, body });
        else await kube.coordination.createNamespacedLease({ namespace, body });
        return true;
      } catch (err) {
        if (statusCode(err) === 409) return false;
        return call(kube, `write lease ${namespace}/${name}`, () => Promise.reject(err));
      }
    },
    async deleteLease(namespace, name, holder) {
      const lease = await this.getLease(namespace, name);
      if (!lease || lease.holder !== holder) return;
      try {
        await kube.coordination.deleteNamespacedLease({ namespace, name, body: { preconditions: { resourceVersion: lease.resourceVersion } } });
      } catch (err) {
        if (statusCode(err) === 404 || statusCode(err) === 409) return;
        await call(kube, `delete lease ${namespace}/${name}`, () => Promise.reject(err));
      }
    },
  };
}
