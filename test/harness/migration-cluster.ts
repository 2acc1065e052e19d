// A control plane set up as the seed's cluster is just before its migration: three kind-named
// nodes, Cilium installed (a `cilium` DaemonSet in kube-system, a CiliumNode per node, the
// CiliumNodeConfig of the migration) and nginx with 10 replicas.
//
// kwok gives pods IPs from their node's spec.podCIDR and cannot switch a node's CNI, so each
// CiliumNode's spec.ipam.podCIDRs is set to that CIDR: the engine's verify step then checks a real
// pod's real IP against the CiliumNode, which is the comparison it makes on a real cluster. The
// local lab (make demo) runs the real switch between two overlays.
import { basename, join } from 'node:path';
import { createSimulatedNodes, installCiliumCrds, kindNodes } from '../../lab/cluster-objects.js';
import { defaultBinDir, kwokStageFiles, startControlPlane, type ControlPlane } from '../../lab/control-plane.js';
import { repoRoot } from './plugin.js';
import { eventually } from './wait.js';

/**
 * A stand-in for Cilium's agent DaemonSet where real Cilium does not run: the `cilium` DaemonSet
 * labelled k8s-app=cilium that the engine restarts and the cluster-state gate waits for.
 */
export function ciliumStandIn(opts: { namespace?: string; image?: string; gracePeriodSeconds?: number } = {}): string {
  return `
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: cilium, namespace: ${opts.namespace ?? 'kube-system'}, labels: {k8s-app: cilium}}
spec:
  selector: {matchLabels: {k8s-app: cilium}}
  template:
    metadata: {labels: {k8s-app: cilium}}
    spec:
      hostNetwork: true
      tolerations: [{operator: Exists}]${opts.gracePeriodSeconds === undefined ? '' : `
      terminationGracePeriodSeconds: ${opts.gracePeriodSeconds}`}
      containers: [{name: cilium-agent, image: ${opts.image ?? 'quay.io/cilium/cilium:v1.18.0'}}]
`;
}

/** Flannel as the seed has it (DaemonSet and kube-flannel-cfg), and Cilium's config in migration mode. */
export const legacyAndCiliumConfig = `
apiVersion: v1
kind: Namespace
metadata: {name: kube-flannel}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: kube-flannel-cfg, namespace: kube-flannel}
data:
  net-conf.json: '{"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}}'
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: kube-flannel-ds, namespace: kube-flannel}
spec:
  selector: {matchLabels: {app: flannel}}
  template:
    metadata: {labels: {app: flannel}}
    spec: {hostNetwork: true, tolerations: [{operator: Exists}], containers: [{name: kube-flannel, image: flannel/flannel}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cilium-config, namespace: kube-system}
data: {custom-cni-conf: "true", ipam: cluster-pool, cluster-pool-ipv4-cidr: 10.245.0.0/16, routing-mode: tunnel, tunnel-protocol: vxlan, tunnel-port: "8473"}
---
apiVersion: v1
kind: Namespace
metadata: {name: cilium-migrate}
`;

/** A probe agent pod (kwok makes it Ready) on each node, as preflight expects; waits until Ready. */
export async function createAgentPods(cp: ControlPlane, nodes: string[]): Promise<void> {
  for (const node of nodes) {
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: `agent-${node}`, namespace: 'cilium-migrate', labels: { 'app.kubernetes.io/name': 'cilium-migrate-agent' } }, spec: { nodeName: node, tolerations: [{ operator: 'Exists' }], containers: [{ name: 'agent', image: 'agent' }] } };
    await cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify(pod) });
  }
  await eventually('agents Ready', async () => {
    const { stdout } = await cp.kubectl(['-n', 'cilium-migrate', 'get', 'pods', '-o', 'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{" "}{end}']);
    const ready = stdout.trim().split(/\s+/).filter((s) => s === 'True').length;
    return ready === nodes.length ? true : undefined;
  });
}

/** The probe agent as a DaemonSet (kwok makes its pods Ready) on every node; waits until all are Ready. */
export async function createAgentDaemonSet(cp: ControlPlane, nodes: number): Promise<void> {
  const ds = {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name: 'cilium-migrate-agent', namespace: 'cilium-migrate' },
    spec: {
      selector: { matchLabels: { 'app.kubernetes.io/name': 'cilium-migrate-agent' } },
      template: { metadata: { labels: { 'app.kubernetes.io/name': 'cilium-migrate-agent' } }, spec: { tolerations: [{ operator: 'Exists' }], containers: [{ name: 'agent', image: 'agent' }] } },
    },
  };
  await cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify(ds) });
  await eventually('agents Ready', async () => {
    const got = await cp.get<{ status: { numberReady?: number } }>('/apis/apps/v1/namespaces/cilium-migrate/daemonsets/cilium-migrate-agent');
    return got.status.numberReady === nodes ? true : undefined;
  });
}

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

/**
 * Starts the cluster; `progress` gets the harness's lines. Without `nodeConfig` no CiliumNodeConfig
 * is applied (prepare's job). `kwokCompletesJobs: false` leaves out kwok's pod-complete stage, which
 * ends a Job's pods as soon as they run (as if their container exited 0 at once): they then run
 * until deleted or until the test reports their end, as a kubelet does for a long-running container.
 */
export async function startMigrationCluster(progress: (line: string) => void, workers = 2, opts: { nodeConfig?: boolean; kwokCompletesJobs?: boolean } = {}): Promise<ControlPlane> {
  const stages = opts.kwokCompletesJobs === false ? kwokStageFiles(defaultBinDir()).filter((f) => basename(f) !== 'pod-complete.yaml') : undefined;
  const cp = await startControlPlane({ progress, ...(stages ? { kwokStages: stages } : {}) });
  try {
    await installCiliumCrds(cp);
    await createSimulatedNodes(cp, kindNodes(workers));
    await cp.kubectl(['apply', '-f', '-'], { input: ciliumStandIn() });
    await createCiliumNodes(cp, (_n, podCIDR) => [podCIDR]);
    if (opts.nodeConfig ?? true) await cp.kubectl(['apply', '--server-side', '-f', join(repoRoot, 'manifests', 'ciliumnodeconfig.yaml')]);
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
