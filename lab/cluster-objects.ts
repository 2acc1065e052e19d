// Objects the tests and the lab put into a fresh control plane: simulated nodes named and shaped
// like the seed's kind cluster, and the Cilium CRDs.
import { randomUUID } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import type { ControlPlane } from './control-plane.js';
import { waitUntil } from './wait.js';

const here = dirname(fileURLToPath(import.meta.url));

/** The CRD manifests (CiliumNodeConfig v2 + v2alpha1, CiliumNode). */
export const ciliumCrdsFile = join(here, 'crds', 'cilium.yaml');

export type NodeRole = 'control-plane' | 'worker';

export interface SimulatedNode {
  name: string;
  role: NodeRole;
}

/** kind's node names: kind-control-plane, kind-worker, kind-worker2, ... (`workers` workers). */
export function kindNodes(workers = 2): SimulatedNode[] {
  const nodes: SimulatedNode[] = [{ name: 'kind-control-plane', role: 'control-plane' }];
  for (let i = 1; i <= workers; i++) nodes.push({ name: i === 1 ? 'kind-worker' : `kind-worker${i}`, role: 'worker' });
  return nodes;
}

/** N workers for scale tests: sim-worker-0001 ... (no control plane). */
export function scaleNodes(count: number, prefix = 'sim-worker-'): SimulatedNode[] {
  const width = String(count).length;
  return Array.from({ length: count }, (_, i) => ({ name: `${prefix}${String(i + 1).padStart(Math.max(4, width), '0')}`, role: 'worker' as const }));
}

/** A Node that kwok manages (annotation kwok.x-k8s.io/node=fake), labelled and tainted like kind's. */
/** The labels kind gives a node (hostname, OS, architecture, and the control-plane role). */
export function kindNodeLabels(node: SimulatedNode): Record<string, string> {
  const labels: Record<string, string> = {
    'kubernetes.io/hostname': node.name,
    'kubernetes.io/os': 'linux',
    'kubernetes.io/arch': 'amd64',
    'beta.kubernetes.io/os': 'linux',
    'beta.kubernetes.io/arch': 'amd64',
  };
  if (node.role === 'control-plane') labels['node-role.kubernetes.io/control-plane'] = '';
  return labels;
}

export function simulatedNodeManifest(node: SimulatedNode): Record<string, unknown> {
  const labels = { ...kindNodeLabels(node), type: 'kwok' };
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: node.name,
      labels,
      annotations: { 'kwok.x-k8s.io/node': 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
    },
    spec: {
      providerID: `kwok://${node.name}`,
      ...(node.role === 'control-plane' ? { taints: [{ key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' }] } : {}),
    },
    status: {
      capacity: { cpu: '8', memory: '32Gi', pods: '110' },
      allocatable: { cpu: '8', memory: '32Gi', pods: '110' },
      nodeInfo: { bootID: randomUUID(), architecture: 'amd64', operatingSystem: 'linux' },
    },
  };
}

interface NodeList {
  items: { metadata: { name: string }; spec?: { podCIDR?: string }; status?: { conditions?: { type: string; status: string }[] } }[];
}

/** Creates the nodes and waits until kwok reports them Ready and each has a pod CIDR. */
export async function createSimulatedNodes(cp: ControlPlane, nodes: SimulatedNode[], timeoutMs = 120_000): Promise<void> {
  // kubectl create takes one stream of documents; chunks keep each request moderate at scale.
  for (let i = 0; i < nodes.length; i += 200) {
    const docs = nodes.slice(i, i + 200).map((n) => stringify(simulatedNodeManifest(n))).join('---\n');
    await cp.kubectl(['create', '-f', '-'], { input: docs, timeoutMs: 300_000 });
  }
  const names = new Set(nodes.map((n) => n.name));
  let pending: string[] = [];
  await waitUntil('the nodes to be Ready with a pod CIDR', async () => {
    const list = await cp.get<NodeList>('/api/v1/nodes');
    pending = list.items.filter((n) => names.has(n.metadata.name) && !(n.spec?.podCIDR && n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))).map((n) => n.metadata.name);
    return pending.length === 0 ? true : undefined;
  }, timeoutMs, 250).catch(() => {
    throw new Error(`nodes not Ready with a pod CIDR after ${timeoutMs / 1000}s: ${pending.slice(0, 5).join(', ')}${pending.length > 5 ? ', ...' : ''}`);
  });
}

/**
 * Waits until every named CRD is Established. Polled here rather than with `kubectl wait`, which
 * fails at once ("accessor error: <nil> is of the type <nil>") when it reads a CRD the API server
 * has not yet given a condition.
 */
export async function waitEstablished(cp: ControlPlane, crds: string[], timeoutMs = 60_000): Promise<void> {
  let pending = crds;
  await waitUntil(`CRDs to be Established: ${crds.join(', ')}`, async () => {
    const states = await Promise.all(crds.map(async (name) => {
      const crd = await cp.get<{ status?: { conditions?: { type: string; status: string }[] | null } }>(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`).catch(() => undefined);
      return crd?.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ? undefined : name;
    }));
    pending = states.filter((n): n is string => n !== undefined);
    return pending.length === 0 ? true : undefined;
  }, timeoutMs, 250).catch((err: Error) => {
    throw new Error(`${err.message}; not yet: ${pending.join(', ')}`);
  });
}

/** prometheus-operator's ServiceMonitor and PrometheusRule CRDs, vendored from its release. */
export const prometheusOperatorCrdsDir = join(here, 'crds', 'prometheus-operator');

/** Installs the ServiceMonitor and PrometheusRule CRDs and waits until they are Established. */
export async function installPrometheusOperatorCrds(cp: ControlPlane): Promise<void> {
  await cp.kubectl(['apply', '--server-side', '-f', prometheusOperatorCrdsDir]);
  await waitEstablished(cp, ['servicemonitors.monitoring.coreos.com', 'prometheusrules.monitoring.coreos.com']);
}

/** Installs the Cilium CRDs and waits until they are Established. */
export async function installCiliumCrds(cp: ControlPlane): Promise<void> {
  await cp.kubectl(['apply', '--server-side', '-f', ciliumCrdsFile]);
  await waitEstablished(cp, ['ciliumnodeconfigs.cilium.io', 'ciliumnodes.cilium.io']);
}
