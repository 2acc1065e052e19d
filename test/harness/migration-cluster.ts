// A control plane set up as the seed's cluster is just before its migration: three kind-named
// nodes, Cilium installed (a `cilium` DaemonSet in kube-system, a CiliumNode per node, the
// CiliumNodeConfig of the migration) and nginx with 10 replicas.
//
// kwok gives pods IPs from their node's spec.podCIDR and cannot switch a node's CNI, so each
// CiliumNode's spec.ipam.podCIDRs is set to that CIDR: the engine's verify step then checks a real
// pod's real IP against the CiliumNode, which is the comparison it makes on a real cluster. The
// local lab (make demo) runs the real switch between two overlays.
import { join } from 'node:path';
import { createSimulatedNodes, installCiliumCrds, kindNodes } from '../../lab/cluster-objects.js';
import { startControlPlane, type ControlPlane } from '../../lab/control-plane.js';
import { repoRoot } from './plugin.js';
import { eventually } from './wait.js';

export const ciliumDaemonSet = `
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: cilium, namespace: kube-system, labels: {k8s-app: cilium}}
spec:
  selector: {matchLabels: {k8s-app: cilium}}
  template:
    metadata: {labels: {k8s-app: cilium}}
    spec:
      hostNetwork: true
      tolerations: [{operator: Exists}]
      containers: [{name: cilium-agent, image: quay.io/cilium/cilium:v1.18.0}]
`;

interface NodeList {
  items: { metadata: { name: string }; spec: { podCIDR?: string } }[];
}

/** Creates a CiliumNode for every node, its podCIDRs set to `cidrFor(node)`. */
export async function createCiliumNodes(cp: ControlPlane, cidrFor: (node: string, podCIDR: string) => string[]): Promise<void> {
  const nodes = await cp.get<NodeList>('/api/v1/nodes');
  const docs = nodes.items.map((n) =>
    JSON.stringify({ apiVersion: 'cilium.io/v2', kind: 'CiliumNode', metadata: { name: n.metadata.name }, spec: { ipam: { podCIDRs: cidrFor(n.metadata.name, n.spec.podCIDR ?? '') } } }),
  );
  for (const doc of docs) await cp.kubectl(['apply', '--server-side', '-f', '-'], { input: doc });
}

export async function deploymentsAvailable(cp: ControlPlane, namespace: string): Promise<boolean> {
  const list = await cp.get<{ items: { metadata: { name: string }; spec: { replicas: number }; status: { availableReplicas?: number; updatedReplicas?: number } }[] }>(`/apis/apps/v1/namespaces/${namespace}/deployments`);
  return list.items.every((d) => (d.status.availableReplicas ?? 0) === d.spec.replicas);
}

/** Starts the cluster; `progress` gets the harness's lines. */
export async function startMigrationCluster(progress: (line: string) => void, workers = 2): Promise<ControlPlane> {
  const cp = await startControlPlane({ progress });
  try {
    await installCiliumCrds(cp);
    await createSimulatedNodes(cp, kindNodes(workers));
    await cp.kubectl(['apply', '-f', '-'], { input: ciliumDaemonSet });
    await createCiliumNodes(cp, (_n, podCIDR) => [podCIDR]);
    await cp.kubectl(['apply', '--server-side', '-f', join(repoRoot, 'manifests', 'ciliumnodeconfig.yaml')]);
    await cp.kubectl(['create', 'deployment', 'nginx', '--image', 'nginx', '--port', '80', '--replicas', '10']);
    await eventually('nginx and the Cilium agents ready', async () => {
      const ds = await cp.get<{ status: { numberReady?: number; desiredNumberScheduled?: number } }>('/apis/apps/v1/namespaces/kube-system/daemonsets/cilium');
      return (await deploymentsAvailable(cp, 'default')) && ds.status.desiredNumberScheduled === workers + 1 && ds.status.numberReady === workers + 1 ? true : undefined;
    }, 90_000);
    return cp;
  } catch (err) {
    await cp.stop();
    throw err;
  }
}
