// Where Cilium is and how it is configured: its cilium-config ConfigMap in the Cilium namespace (the
// Helm release's namespace, not always kube-system), the cluster-pool CIDRs it names, and which
// namespaces run a Cilium agent DaemonSet, to tell a user who forgot --cilium-namespace where it is.
import { ciliumAgentSelector } from '../../lib/defaults.js';
import { call, statusCode, type k8s, type Kube } from '../../lib/kube.js';
import { ciliumTunnel, type OverlayTunnels } from '../../lib/tunnel.js';
import { readLegacyCni } from './legacy-cni.js';

/** cilium-config's data, or undefined when there is none in `namespace`. */
export async function readCiliumConfig(kube: Kube, namespace: string): Promise<Record<string, string> | undefined> {
  return call(kube, `get configmap ${namespace}/cilium-config`, async () => {
    try {
      return (await kube.core.readNamespacedConfigMap({ namespace, name: 'cilium-config' })).data ?? {};
    } catch (err) {
      if (statusCode(err) === 404) return undefined;
      throw err;
    }
  });
}

/** The cluster-pool CIDRs cilium-config names (`cluster-pool-ipv4-cidr`, space or comma separated; IPv6 too). */
export function ciliumClusterCidrs(config: Record<string, string> | undefined): string[] {
  return ['cluster-pool-ipv4-cidr', 'cluster-pool-ipv6-cidr'].flatMap((k) => (config?.[k] ?? '').split(/[\s,]+/).filter(Boolean));
}

/** Namespaces with a Cilium agent DaemonSet (k8s-app=cilium, as the Helm chart labels it). */
export function ciliumNamespacesOf(daemonSets: k8s.V1DaemonSet[]): string[] {
  const [k, v] = ciliumAgentSelector.split('=') as [string, string];
  return [...new Set(daemonSets.filter((d) => d.metadata?.labels?.[k] === v || d.spec?.template.metadata?.labels?.[k] === v).map((d) => d.metadata?.namespace ?? ''))].sort();
}

/** The Cilium agent DaemonSet in `namespace`: `cilium` as the chart names it, else the one labelled k8s-app=cilium. */
export function ciliumDaemonSetIn(daemonSets: k8s.V1DaemonSet[], namespace: string): k8s.V1DaemonSet | undefined {
  const [k, v] = ciliumAgentSelector.split('=') as [string, string];
  const inNs = daemonSets.filter((d) => d.metadata?.namespace === namespace);
  return inNs.find((d) => d.metadata?.name === 'cilium') ?? inNs.find((d) => d.metadata?.labels?.[k] === v);
}

/**
 * Both overlays' tunnels, for the gate's hints: Cilium's from cilium-config, the legacy CNI's from
 * what it is. Only hints depend on it, so a cluster that does not let us read it gets the defaults.
 */
export async function readOverlayTunnels(kube: Kube, namespace: string): Promise<OverlayTunnels> {
  try {
    const [config, dss] = await Promise.all([readCiliumConfig(kube, namespace), call(kube, 'list daemonsets', () => kube.apps.listDaemonSetForAllNamespaces())]);
    const legacy = await readLegacyCni(kube, dss.items);
    return { legacy: legacy?.tunnels.length ? legacy.tunnels : undefined, cilium: config ? ciliumTunnel(config) : undefined };
  } catch {
    return {};
  }
}
