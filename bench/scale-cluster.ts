// A cluster of 1,000 simulated nodes for the scale benchmarks, shaped like one in the middle of a
// migration to Cilium: the real control plane (lab/control-plane.ts) with kwok running realistic
// Node objects (bench/realistic-objects.ts), a CiliumNode per node, Cilium's DaemonSet (one agent
// pod per node), the CiliumNodeConfig, the probe agent's DaemonSet from manifests/agent, and
// optionally application pods spread over the nodes.
import { join } from 'node:path';
import { stringify } from 'yaml';
import { installCiliumCrds, scaleNodes } from '../lab/cluster-objects.js';
import { startControlPlane, type ControlPlane, type ControlPlaneOptions } from '../lab/control-plane.js';
import { agentNamespace } from '../lib/defaults.js';
import { waitFor } from './apiserver-requests.js';
import { createRealisticCiliumNodes, createRealisticNodes, realisticDeployment } from './realistic-objects.js';

const repoRoot = join(import.meta.dirname, '..');

export interface ScaleClusterOptions extends Pick<ControlPlaneOptions, 'kwokStages' | 'clusterEgressSocket'> {
  nodes: number;
  /** Application pods per node, as Deployments of 100 replicas (default none). */
  podsPerNode?: number;
  /** Annotations on Cilium's agent pods (a kwok stage can delay their Ready with one). */
  ciliumPodAnnotations?: Record<string, string>;
  /** Where pods get their IPs (default 10.244.0.0/16, a /26 per node: up to 1,024 nodes). */
  clusterCidr?: string;
  nodeCidrMaskSize?: number;
  log: (line: string) => void;
}

/** Cilium's agent DaemonSet, as its chart names and labels it (kwok runs the pods). */
function ciliumDaemonSet(annotations: Record<string, string>): Record<string, unknown> {
  return {
    apiVersion: 'apps/v1', kind: 'DaemonSet',
    metadata: { name: 'cilium', namespace: 'kube-system', labels: { 'k8s-app': 'cilium' } },
    spec: {
      selector: { matchLabels: { 'k8s-app': 'cilium' } },
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 2 } },
      template: {
        metadata: { labels: { 'k8s-app': 'cilium', 'app.kubernetes.io/name': 'cilium-agent', 'app.kubernetes.io/part-of': 'cilium' }, annotations },
        spec: {
          hostNetwork: true,
          priorityClassName: 'system-node-critical',
          tolerations: [{ operator: 'Exists' }],
          containers: [{ name: 'cilium-agent', image: 'quay.io/cilium/cilium:v1.18.3', command: ['cilium-agent'], args: ['--config-dir=/tmp/cilium/config-map'], env: [{ name: 'K8S_NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } }] }],
        },
      },
    },
  };
}

/** Starts the control plane and creates the cluster; the caller stops it. */
export async function startScaleCluster(o: ScaleClusterOptions): Promise<ControlPlane> {
  const cp = await startControlPlane({ clusterCidr: o.clusterCidr ?? '10.244.0.0/16', nodeCidrMaskSize: o.nodeCidrMaskSize ?? 26, kwokStages: o.kwokStages, clusterEgressSocket: o.clusterEgressSocket, progress: o.log });
  try {
    const started = Date.now();
    await installCiliumCrds(cp);
    await createRealisticNodes(cp, scaleNodes(o.nodes), { log: o.log });
    o.log(`${o.nodes} nodes Ready after ${((Date.now() - started) / 1000).toFixed(0)} s`);
    await createRealisticCiliumNodes(cp);
    await cp.kubectl(['apply', '-f', '-'], { input: stringify(ciliumDaemonSet(o.ciliumPodAnnotations ?? {})) });
    await cp.kubectl(['apply', '--server-side', '-f', join(repoRoot, 'manifests', 'ciliumnodeconfig.yaml')]);
    await cp.kubectl(['apply', '-k', join(repoRoot, 'manifests', 'agent')], { timeoutMs: 120_000 });
    const pods = o.podsPerNode ?? 0;
    if (pods > 0) {
      const total = pods * o.nodes;
      const docs = [];
      for (let i = 0; i * 100 < total; i++) docs.push(stringify(realisticDeployment(`app-${String(i).padStart(3, '0')}`, Math.min(100, total - i * 100), { graceSeconds: 5 })));
      for (let i = 0; i < docs.length; i += 20) await cp.kubectl(['apply', '-f', '-'], { input: docs.slice(i, i + 20).join('---\n'), timeoutMs: 300_000 });
    }
    await waitFor('the DaemonSets and Deployments Ready', async () => {
      const ready = async (path: string) => (await cp.get<{ status: { numberReady?: number } }>(path)).status.numberReady ?? 0;
      const [cilium, agents] = await Promise.all([ready('/apis/apps/v1/namespaces/kube-system/daemonsets/cilium'), ready(`/apis/apps/v1/namespaces/${agentNamespace}/daemonsets/cilium-migrate-agent`)]);
      const deps = pods > 0 ? (await cp.get<{ items: { status: { availableReplicas?: number } }[] }>('/apis/apps/v1/namespaces/default/deployments')).items.reduce((s, d) => s + (d.status.availableReplicas ?? 0), 0) : 0;
      o.log(`Cilium agents Ready ${cilium}/${o.nodes}, probe agents ${agents}/${o.nodes}, application pods ${deps}/${pods * o.nodes}`);
      return cilium === o.nodes && agents === o.nodes && deps === pods * o.nodes;
    }, 3_600_000, 10_000);
    o.log(`cluster ready after ${((Date.now() - started) / 1000).toFixed(0)} s`);
    return cp;
  } catch (err) {
    await cp.stop();
    throw err;
  }
}
