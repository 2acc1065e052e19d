// Read-only checks before a migration: each pitfall of REFERENCE.md sections 1 and 8 that can be
// seen from the API is detected here, with a one-line fix. Gathering reads the cluster; judging is pure.
import { cidrContains, cidrsOverlap, parseCidr } from '../../lib/cidr.js';
import { call, statusCode, type Kube } from '../../lib/kube.js';
import { ciliumTunnel, describeTunnel, tunnelClashes } from '../../lib/tunnel.js';
import { ciliumClusterCidrs, ciliumDaemonSetIn, ciliumNamespacesOf } from './cilium-config.js';
import { ciliumVersionFromImage } from './finalize.js';
import { parseVersion, unsupportedCilium } from './helm-values.js';
import { readLegacyCni, type LegacyCni } from './legacy-cni.js';
import { preferredNodeConfigVersion } from './node-config.js';

export type CheckResult = 'pass' | 'warn' | 'fail';

export interface Check {
  name: string;
  result: CheckResult;
  detail: string;
  /** What to do, when not passing. */
  fix?: string;
}

export interface PreflightFacts {
  legacy: LegacyCni | undefined;
  /** The namespace Cilium is expected in (--cilium-namespace). */
  ciliumNamespace: string;
  /** Namespaces that run a Cilium agent DaemonSet. */
  ciliumNamespaces: string[];
  /** The cilium-config ConfigMap's data, or undefined when Cilium is not installed. */
  ciliumConfig: Record<string, string> | undefined;
  /** The Cilium agent image in the Cilium namespace, when there is a Cilium DaemonSet. */
  ciliumImage?: string | undefined;
  /** Versions of ciliumnodeconfigs.cilium.io that are served. */
  cncVersions: string[];
  nodes: { name: string; internalIPs: string[] }[];
  /** Nodes with a Ready probe agent pod. */
  agentNodes: Set<string>;
  zeroDisruptionPdbs: string[];
  networkPolicies: number;
  /** "verb resource" pairs the caller may not do. */
  deniedPermissions: string[];
  serviceCidr: string;
  /** The Cilium CIDR to check when cilium-config has none (not installed yet). */
  ciliumCidrFlag: string;
}

/**
 * What the plugin does with the API, for the permission check. manifests/rbac/plugin-clusterrole.yaml
 * grants exactly these (test/unit/plugin-rbac.test.ts holds the two together): add a permission to both.
 */
export const requiredPermissions: { verb: string; group: string; resource: string; subresource?: string }[] = [
  { verb: 'get', group: '', resource: 'nodes' },
  { verb: 'list', group: '', resource: 'nodes' },
  { verb: 'patch', group: '', resource: 'nodes' },
  { verb: 'list', group: '', resource: 'pods' },
  { verb: 'get', group: '', resource: 'pods' },
  // The reachability matrix: each agent's row through the API server's pod proxy.
  { verb: 'get', group: '', resource: 'pods', subresource: 'proxy' },
  { verb: 'create', group: '', resource: 'pods' },
  { verb: 'delete', group: '', resource: 'pods' },
  { verb: 'create', group: '', resource: 'pods', subresource: 'eviction' },
  { verb: 'create', group: '', resource: 'events' },
  { verb: 'list', group: 'networking.k8s.io', resource: 'networkpolicies' },
  { verb: 'get', group: 'apps', resource: 'daemonsets' },
  { verb: 'patch', group: 'apps', resource: 'daemonsets' },
  { verb: 'delete', group: 'apps', resource: 'daemonsets' },
  { verb: 'get', group: '', resource: 'configmaps' },
  { verb: 'create', group: '', resource: 'configmaps' },
  { verb: 'update', group: '', resource: 'configmaps' },
  { verb: 'list', group: 'apps', resource: 'daemonsets' },
  { verb: 'list', group: 'policy', resource: 'poddisruptionbudgets' },
  { verb: 'get', group: 'coordination.k8s.io', resource: 'leases' },
  { verb: 'create', group: 'coordination.k8s.io', resource: 'leases' },
  { verb: 'update', group: 'coordination.k8s.io', resource: 'leases' },
  { verb: 'delete', group: 'coordination.k8s.io', resource: 'leases' },
  { verb: 'get', group: 'cilium.io', resource: 'ciliumnodes' },
  { verb: 'list', group: 'cilium.io', resource: 'ciliumnodes' },
  { verb: 'list', group: 'cilium.io', resource: 'ciliumnodeconfigs' },
  { verb: 'get', group: 'cilium.io', resource: 'ciliumnodeconfigs' },
  // Server-side apply needs create as well as patch when the object does not exist yet.
  { verb: 'create', group: 'cilium.io', resource: 'ciliumnodeconfigs' },
  { verb: 'patch', group: 'cilium.io', resource: 'ciliumnodeconfigs' },
  { verb: 'delete', group: 'cilium.io', resource: 'ciliumnodeconfigs' },
  { verb: 'get', group: 'apiextensions.k8s.io', resource: 'customresourcedefinitions' },
  // Which legacy CNI runs and how (cmd/migration/legacy-cni.ts): Calico's pools, Felix's VXLAN port, the Tigera operator.
  { verb: 'list', group: 'crd.projectcalico.org', resource: 'ippools' },
  { verb: 'get', group: 'crd.projectcalico.org', resource: 'felixconfigurations' },
  { verb: 'list', group: 'operator.tigera.io', resource: 'installations' },
  // finalize: find and delete exactly the objects of the legacy CNI's manifest (legacyRemoval).
  { verb: 'delete', group: 'operator.tigera.io', resource: 'installations' },
  { verb: 'list', group: '', resource: 'configmaps' },
  { verb: 'delete', group: '', resource: 'configmaps' },
  { verb: 'list', group: '', resource: 'serviceaccounts' },
  { verb: 'delete', group: '', resource: 'serviceaccounts' },
  { verb: 'list', group: '', resource: 'services' },
  { verb: 'delete', group: '', resource: 'namespaces' },
  { verb: 'list', group: 'apps', resource: 'deployments' },
  { verb: 'delete', group: 'apps', resource: 'deployments' },
  { verb: 'list', group: 'apps', resource: 'statefulsets' },
  { verb: 'list', group: 'rbac.authorization.k8s.io', resource: 'clusterrolebindings' },
  { verb: 'delete', group: 'rbac.authorization.k8s.io', resource: 'clusterrolebindings' },
  { verb: 'get', group: 'rbac.authorization.k8s.io', resource: 'clusterroles' },
  { verb: 'delete', group: 'rbac.authorization.k8s.io', resource: 'clusterroles' },
];

/** One line about the legacy CNI: "flannel (DaemonSet kube-flannel/kube-flannel-ds), pod CIDR 10.244.0.0/16 (net-conf.json ...), VXLAN on UDP 8472". */
export function describeLegacy(l: LegacyCni): string {
  const owner = l.installation ? `Tigera operator Installation ${l.installation}${l.daemonSet ? `, DaemonSet ${l.daemonSet}` : ''}` : `DaemonSet ${l.daemonSet}`;
  const pools = l.pools.length ? `, pod CIDR${l.pools.length > 1 ? 's' : ''} ${l.pools.join(', ')}${l.poolSource ? ` (${l.poolSource})` : ''}` : l.kind === 'aws-cni' ? ', VPC addresses (no pod CIDR of its own)' : ', pod CIDR unknown';
  const tunnels = l.tunnels.length ? `, ${l.tunnels.map(describeTunnel).join(' and ')}` : ', tunnel unknown';
  return `${l.kind} (${owner})${pools}${tunnels}${l.nftables ? ', nftables mode' : ''}`;
}

/** Judges the facts; pure. */
export function preflightChecks(f: PreflightFacts): Check[] {
  const checks: Check[] = [];
  const add = (name: string, result: CheckResult, detail: string, fix?: string) => checks.push({ name, result, detail, ...(fix && result !== 'pass' ? { fix } : {}) });
  const ns = f.ciliumNamespace;

  if (f.legacy) add('legacy CNI', 'pass', describeLegacy(f.legacy));
  else add('legacy CNI', 'warn', 'no Flannel, Calico or AWS-CNI found', 'if another CNI runs, check by hand that it uses the Linux routing stack and its own CIDR and port; its pods count as legacy (anything outside Cilium\'s CIDRs)');

  const auto = f.legacy?.autodetection;
  if (auto) {
    add(
      'Calico node address',
      auto.risky ? 'warn' : 'pass',
      auto.risky
        ? `calico-node detects its node address by ${auto.method}, which can pick Cilium's cilium_host interface once Cilium runs on a node (Calico then routes to the wrong address)`
        : `calico-node detects its node address by ${auto.method}, which cannot pick cilium_host`,
      `${auto.fix}   (before Cilium starts on the nodes, or followed by a restart of calico-node)`,
    );
  }

  const cc = f.ciliumConfig;
  const elsewhere = f.ciliumNamespaces.filter((n) => n !== ns);
  if (!cc) {
    add(
      'Cilium installed',
      'fail',
      `no cilium-config ConfigMap in ${ns}${elsewhere.length ? `; a Cilium DaemonSet runs in ${elsewhere.join(', ')}` : ''}`,
      elsewhere.length ? `pass --cilium-namespace ${elsewhere[0]} (to every command)` : 'install Cilium in migration mode: kubectl cilium-migrate values --phase initial',
    );
  } else {
    add('Cilium installed', 'pass', `cilium-config found in ${ns}`);
    const customConf = cc['custom-cni-conf'] === 'true';
    add('migration mode', customConf ? 'pass' : 'fail', customConf ? 'custom-cni-conf=true: Cilium writes no CNI config until a node opts in' : `custom-cni-conf=${cc['custom-cni-conf'] ?? 'unset'}: Cilium takes over every node's CNI at once`, 'reinstall with the values of `kubectl cilium-migrate values --phase initial` (cni.customConf=true)');
    const ipam = cc['ipam'] ?? 'cluster-pool';
    add('IPAM mode', ipam === 'cluster-pool' ? 'pass' : 'fail', `ipam=${ipam}`, 'live migration needs ipam.mode=cluster-pool');
  }

  if (f.ciliumImage !== undefined || cc) {
    const text = ciliumVersionFromImage(f.ciliumImage);
    const v = text ? parseVersion(text) : undefined;
    const refused = v && text ? unsupportedCilium(v, text) : undefined;
    if (!v) add('Cilium version', 'warn', f.ciliumImage ? `cannot tell the version from the agent image ${f.ciliumImage}` : `no Cilium agent DaemonSet in ${ns}`, 'check that Cilium 1.14 or newer runs (kubectl -n NAMESPACE get ds cilium -o wide)');
    else if (refused) add('Cilium version', 'fail', refused.message, refused.hint);
    else add('Cilium version', 'pass', `Cilium ${text}`);
  }

  const ciliumCidrs = ciliumClusterCidrs(cc);
  const ciliumCidr = ciliumCidrs[0] || f.ciliumCidrFlag;
  const conflicts: string[] = [];
  try {
    parseCidr(ciliumCidr);
    const pools = (f.legacy?.pools ?? []).filter((p) => {
      try {
        return cidrsOverlap(ciliumCidr, p);
      } catch {
        return false;
      }
    });
    if (pools.length) conflicts.push(`the legacy pod CIDR${pools.length > 1 ? 's' : ''} ${pools.join(', ')}`);
    if (cidrsOverlap(ciliumCidr, f.serviceCidr)) conflicts.push(`the service CIDR ${f.serviceCidr}`);
    const nodesInside = f.nodes.filter((n) => n.internalIPs.some((ip) => cidrContains(ciliumCidr, ip))).map((n) => n.name);
    if (nodesInside.length) conflicts.push(`node addresses (${nodesInside.join(', ')})`);
    add('Cilium CIDR distinct', conflicts.length ? 'fail' : 'pass', conflicts.length ? `${ciliumCidr} overlaps ${conflicts.join(' and ')}` : `${ciliumCidr} overlaps no pod, service or node network`, 'choose a Cilium cluster-pool CIDR that overlaps nothing (the seed uses 10.245.0.0/16)');
  } catch {
    add('Cilium CIDR distinct', 'fail', `"${ciliumCidr}" is not a CIDR`, 'set ipam.operator.clusterPoolIPv4PodCIDRList');
  }

  if (cc) {
    const cilium = ciliumTunnel(cc);
    const legacyTunnels = f.legacy?.tunnels ?? [];
    const clashes = tunnelClashes(legacyTunnels, cilium);
    const legacyText = f.legacy ? `; ${f.legacy.kind}: ${legacyTunnels.length ? legacyTunnels.map(describeTunnel).join(' and ') : 'tunnel unknown'}` : '';
    if (cilium.protocol === 'none') add('tunnel ports', 'fail', 'Cilium runs in native routing: no second overlay', 'use routingMode=tunnel for the migration');
    else if (clashes.length) {
      add('tunnel ports', 'fail', `Cilium (${describeTunnel(cilium)}) and ${f.legacy!.kind} (${clashes.map(describeTunnel).join(', ')}) both bind UDP ${cilium.port} ("Address already in use")`, `set tunnelPort to another port (8473 in the seed): kubectl cilium-migrate values --tunnel-port PORT`);
    } else add('tunnel ports', 'pass', `Cilium ${describeTunnel(cilium)}${legacyText}`);
  }

  if (f.cncVersions.length === 0) add('CiliumNodeConfig API', 'fail', 'ciliumnodeconfigs.cilium.io is not served', 'Cilium 1.14 or newer installs it; check the CRD (kubectl get crd ciliumnodeconfigs.cilium.io)');
  else add('CiliumNodeConfig API', 'pass', `served as ${f.cncVersions.map((v) => `cilium.io/${v}`).join(', ')}; the plugin uses ${preferredNodeConfigVersion(f.cncVersions)}`);

  const missing = f.nodes.filter((n) => !f.agentNodes.has(n.name)).map((n) => n.name);
  add('probe agents', missing.length ? 'fail' : 'pass', missing.length ? `no Ready probe agent on ${missing.join(', ')}` : `a Ready agent on each of ${f.nodes.length} nodes`, 'deploy the agent DaemonSet (manifests/) and wait for it; without agents the gate cannot see connectivity');

  add('PodDisruptionBudgets', f.zeroDisruptionPdbs.length ? 'fail' : 'pass', f.zeroDisruptionPdbs.length ? `allowing no disruption now: ${f.zeroDisruptionPdbs.join(', ')}` : 'none blocks a drain now', 'scale the workload up or relax the budget; a drain would wait on it until --drain-timeout');

  add('NetworkPolicies', f.networkPolicies ? 'warn' : 'pass', f.networkPolicies ? `${f.networkPolicies} present` : 'none', 'Cilium enforces them after finalize; make sure they allow the Cilium pod CIDR (and the probe agents)');

  add('permissions', f.deniedPermissions.length ? 'fail' : 'pass', f.deniedPermissions.length ? `not allowed: ${f.deniedPermissions.join(', ')}` : `all ${requiredPermissions.length} permissions the plugin uses`, 'bind the plugin\'s ClusterRole to your user (see README)');
  return checks;
}

/** The worst result. */
export function worst(checks: Check[]): CheckResult {
  return checks.some((c) => c.result === 'fail') ? 'fail' : checks.some((c) => c.result === 'warn') ? 'warn' : 'pass';
}

async function optional<T>(fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    if (statusCode(err) === 404 || statusCode(err) === 403) return undefined;
    throw err;
  }
}

/** Reads the facts from the cluster. */
export async function gatherFacts(kube: Kube, opts: { agentNamespace: string; ciliumNamespace: string; serviceCidr: string; ciliumCidr: string }): Promise<PreflightFacts> {
  const ns = opts.ciliumNamespace;
  const [dss, nodes, pods, pdbs, netpols, crd, ciliumConfig] = await Promise.all([
    call(kube, 'list daemonsets', () => kube.apps.listDaemonSetForAllNamespaces()),
    call(kube, 'list nodes', () => kube.core.listNode()),
    call(kube, `list pods in ${opts.agentNamespace}`, () => kube.core.listNamespacedPod({ namespace: opts.agentNamespace, labelSelector: 'app.kubernetes.io/name=cilium-migrate-agent' })),
    call(kube, 'list poddisruptionbudgets', () => kube.policy.listPodDisruptionBudgetForAllNamespaces()),
    call(kube, 'list networkpolicies', () => optional(() => kube.networking.listNetworkPolicyForAllNamespaces())),
    call(kube, 'get crd ciliumnodeconfigs.cilium.io', () => optional(() => kube.extensions.readCustomResourceDefinition({ name: 'ciliumnodeconfigs.cilium.io' }))),
    call(kube, `get configmap ${ns}/cilium-config`, () => optional(() => kube.core.readNamespacedConfigMap({ namespace: ns, name: 'cilium-config' }))),
  ]);

  const legacy = await readLegacyCni(kube, dss.items);
  const ciliumDs = ciliumDaemonSetIn(dss.items, ns);
  const containers = ciliumDs?.spec?.template.spec?.containers ?? [];

  const denied: string[] = [];
  await Promise.all(
    requiredPermissions.map(async (p) => {
      const review = await call(kube, 'selfsubjectaccessreview', () =>
        kube.authorization.createSelfSubjectAccessReview({ body: { spec: { resourceAttributes: { verb: p.verb, group: p.group, resource: p.resource, ...(p.subresource ? { subresource: p.subresource } : {}) } } } }),
      );
      if (!review.status?.allowed) denied.push(`${p.verb} ${p.resource}${p.subresource ? `/${p.subresource}` : ''}${p.group ? `.${p.group}` : ''}`);
    }),
  );

  return {
    legacy,
    ciliumNamespace: ns,
    ciliumNamespaces: ciliumNamespacesOf(dss.items),
    ciliumConfig: ciliumConfig?.data ?? (ciliumConfig ? {} : undefined),
    ciliumImage: ciliumDs ? ((containers.find((c) => c.name === 'cilium-agent') ?? containers[0])?.image ?? '') : undefined,
    cncVersions: crd?.spec.versions.filter((v) => v.served).map((v) => v.name) ?? [],
    nodes: nodes.items.map((n) => ({ name: n.metadata?.name ?? '', internalIPs: (n.status?.addresses ?? []).filter((a) => a.type === 'InternalIP').map((a) => a.address) })),
    agentNodes: new Set(pods.items.filter((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).map((p) => p.spec?.nodeName ?? '')),
    zeroDisruptionPdbs: pdbs.items.filter((p) => (p.status?.disruptionsAllowed ?? 0) === 0 && (p.status?.expectedPods ?? 0) > 0).map((p) => `${p.metadata?.namespace}/${p.metadata?.name}`),
    networkPolicies: netpols?.items.length ?? 0,
    deniedPermissions: denied.sort(),
    serviceCidr: opts.serviceCidr,
    ciliumCidrFlag: opts.ciliumCidr,
  };
}
