// Read-only checks before a migration: each pitfall of REFERENCE.md sections 1 and 8 that can be
// seen from the API is detected here, with a one-line fix. Gathering reads the cluster; judging is pure.
import { cidrContains, cidrsOverlap, parseCidr } from '../../lib/cidr.js';
import { ciliumNodeConfigName, lockLeaseName } from '../../lib/defaults.js';
import { call, optional, type Kube } from '../../lib/kube.js';
import { ciliumTunnel, describeTunnel, tunnelClashes } from '../../lib/tunnel.js';
import { ciliumClusterCidrs, ciliumDaemonSetIn, ciliumNamespacesOf } from './cilium-config.js';
import { ciliumVersionFromImage, finalizeRecordName } from './finalize.js';
import { parseVersion, unsupportedCilium } from './helm-values.js';
import { configMapsToRead, readLegacyCni, systemNamespaces, type LegacyCni, type LegacyKind } from './legacy-cni.js';
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
  /** The permissions the caller may not use, described. */
  deniedPermissions: string[];
  /** How many permissions were checked. */
  checkedPermissions: number;
  serviceCidr: string;
  /** The Cilium CIDR to check when cilium-config has none (not installed yet). */
  ciliumCidrFlag: string;
}

/** One permission the plugin uses: where (namespace; none = cluster-wide) and on what (name; none = any). */
export interface Permission {
  verb: string;
  group: string;
  resource: string;
  subresource?: string | undefined;
  namespace?: string | undefined;
  name?: string | undefined;
}

/** What the permissions of the legacy CNI depend on: what it is and where its objects are. */
export interface LegacyScope {
  kind: LegacyKind;
  /** "namespace/name" of its DaemonSet. */
  daemonSet?: string | undefined;
  /** The Tigera operator's Installation, when the operator manages Calico. */
  installation?: string | undefined;
  /** Flannel: the ConfigMap holding net-conf.json. */
  config?: string | undefined;
}

/** Where the plugin's objects are: the namespaces its flags name, and the legacy CNI found. */
export interface PermissionScope {
  ciliumNamespace: string;
  verifyNamespace: string;
  agentNamespace: string;
  legacy?: LegacyScope | undefined;
}

/** The legacy CNIs as their own manifests install them; manifests/rbac/legacy/ has a file for each. */
export const knownLegacyCnis: Record<string, LegacyScope> = {
  flannel: { kind: 'flannel', daemonSet: 'kube-flannel/kube-flannel-ds', config: 'kube-flannel-cfg' },
  calico: { kind: 'calico', daemonSet: 'kube-system/calico-node' },
  'calico-operator': { kind: 'calico', daemonSet: 'calico-system/calico-node', installation: 'default' },
  'aws-cni': { kind: 'aws-cni', daemonSet: 'kube-system/aws-node' },
};

/** The objects of each legacy CNI's manifest beside its DaemonSet, which finalize --yes may delete. */
const legacyManifestObjects: Record<'flannel' | 'calico', { serviceAccounts: string[]; clusterRbac: string[]; configMaps: string[]; deployments: string[] }> = {
  flannel: { serviceAccounts: ['flannel'], clusterRbac: ['flannel'], configMaps: [], deployments: [] },
  calico: { serviceAccounts: ['calico-cni-plugin', 'calico-kube-controllers', 'calico-node'], clusterRbac: ['calico-cni-plugin', 'calico-kube-controllers', 'calico-node'], configMaps: ['calico-config'], deployments: ['calico-kube-controllers'] },
};

/** What finalize needs to find and remove exactly the legacy CNI's objects (legacyRemoval). */
export function legacyPermissions(l: LegacyScope): Permission[] {
  const core = (verb: string, resource: string, extra: Partial<Permission> = {}): Permission => ({ verb, group: '', resource, ...extra });
  const rbac = (verb: string, resource: string, name?: string): Permission => ({ verb, group: 'rbac.authorization.k8s.io', resource, ...(name ? { name } : {}) });
  if (l.kind === 'calico' && l.installation) return [{ verb: 'delete', group: 'operator.tigera.io', resource: 'installations', name: l.installation }];
  const [ns, ds] = (l.daemonSet ?? '/').split('/') as [string, string];
  if (!ns || !ds) return [];
  const out: Permission[] = [{ verb: 'delete', group: 'apps', resource: 'daemonsets', namespace: ns, name: ds }];
  if (l.kind === 'aws-cni') return out;
  const objects = legacyManifestObjects[l.kind];
  const configMaps = [...new Set([...(l.config ? [l.config] : []), ...objects.configMaps])];
  if (l.config) out.push(core('get', 'configmaps', { namespace: ns, name: l.config }));
  out.push(
    ...configMaps.map((name) => core('delete', 'configmaps', { namespace: ns, name })),
    ...objects.deployments.map((name) => ({ verb: 'delete', group: 'apps', resource: 'deployments', namespace: ns, name })),
    ...objects.serviceAccounts.map((name) => core('delete', 'serviceaccounts', { namespace: ns, name })),
    // What exists in its namespace, and which ClusterRoleBindings bind only its accounts.
    { verb: 'list', group: 'apps', resource: 'deployments', namespace: ns },
    core('list', 'serviceaccounts', { namespace: ns }),
    core('list', 'configmaps', { namespace: ns }),
    rbac('list', 'clusterrolebindings'),
    ...objects.clusterRbac.flatMap((name) => [rbac('get', 'clusterroles', name), rbac('delete', 'clusterroles', name), rbac('delete', 'clusterrolebindings', name)]),
  );
  // Its own namespace goes too, when nothing else lives there.
  if (!systemNamespaces.has(ns)) {
    out.push({ verb: 'list', group: 'apps', resource: 'statefulsets', namespace: ns }, core('list', 'services', { namespace: ns }), core('delete', 'namespaces', { name: ns }));
  }
  return out;
}

/** The legacy CNI as the permissions see it. */
export const legacyScope = (l: LegacyCni): LegacyScope => ({ kind: l.kind, daemonSet: l.daemonSet, installation: l.installation, config: l.config?.name });

/**
 * What the plugin does with the API, and where: the permission check of preflight asks the API
 * server about each (SelfSubjectAccessReview with its namespace and name). manifests/rbac grants
 * exactly these for the default namespaces and the known legacy CNIs (test/unit/plugin-rbac.test.ts
 * holds the two together): add a permission to both.
 */
export function requiredPermissions(scope: PermissionScope): Permission[] {
  const core = (verb: string, resource: string, extra: Partial<Permission> = {}): Permission => ({ verb, group: '', resource, ...extra });
  const c = scope.ciliumNamespace;
  return [
    // Cluster-wide by nature: nodes, listing every node's pods, evicting any workload.
    core('get', 'nodes'),
    core('list', 'nodes'),
    core('patch', 'nodes'),
    core('list', 'pods'),
    core('create', 'pods', { subresource: 'eviction' }),
    { verb: 'get', group: 'apps', resource: 'daemonsets' },
    { verb: 'list', group: 'apps', resource: 'daemonsets' },
    { verb: 'list', group: 'policy', resource: 'poddisruptionbudgets' },
    { verb: 'list', group: 'networking.k8s.io', resource: 'networkpolicies' },
    { verb: 'get', group: 'cilium.io', resource: 'ciliumnodes' },
    { verb: 'list', group: 'cilium.io', resource: 'ciliumnodes' },
    { verb: 'get', group: 'apiextensions.k8s.io', resource: 'customresourcedefinitions', name: 'ciliumnodeconfigs.cilium.io' },
    // Which legacy CNI runs and how (cmd/migration/legacy-cni.ts): Calico's pools, Felix's VXLAN port, the Tigera operator.
    { verb: 'list', group: 'crd.projectcalico.org', resource: 'ippools' },
    { verb: 'get', group: 'crd.projectcalico.org', resource: 'felixconfigurations', name: 'default' },
    { verb: 'list', group: 'operator.tigera.io', resource: 'installations' },
    // The Cilium namespace: the lock, cilium-config, finalize's record, the CiliumNodeConfig, the
    // Cilium agent pods and the host-command pods.
    { verb: 'create', group: 'coordination.k8s.io', resource: 'leases', namespace: c },
    ...['get', 'update', 'delete'].map((verb) => ({ verb, group: 'coordination.k8s.io', resource: 'leases', namespace: c, name: lockLeaseName })),
    core('get', 'configmaps', { namespace: c, name: 'cilium-config' }),
    ...['get', 'create', 'patch'].map((verb) => core(verb, 'configmaps', { namespace: c, name: finalizeRecordName })),
    { verb: 'patch', group: 'apps', resource: 'daemonsets', namespace: c, name: 'cilium' },
    { verb: 'list', group: 'cilium.io', resource: 'ciliumnodeconfigs', namespace: c },
    ...['get', 'create', 'patch', 'delete'].map((verb) => ({ verb, group: 'cilium.io', resource: 'ciliumnodeconfigs', namespace: c, name: ciliumNodeConfigName })),
    ...['get', 'list', 'create', 'delete'].map((verb) => core(verb, 'pods', { namespace: c })),
    // The verify pod, and the Events on Nodes (which live in default).
    ...['get', 'create', 'delete'].map((verb) => core(verb, 'pods', { namespace: scope.verifyNamespace })),
    core('create', 'events', { namespace: 'default' }),
    // The probe agents' rows, through the pod proxy.
    core('get', 'pods', { subresource: 'proxy', namespace: scope.agentNamespace }),
    // The legacy CNI: its configuration, and exactly its manifest's objects for finalize --yes.
    ...(scope.legacy ? legacyPermissions(scope.legacy) : []),
  ];
}

/** "verb resource[/sub][.group] [name] [in ns]", for messages. */
export function describePermission(p: Permission): string {
  return `${p.verb} ${p.resource}${p.subresource ? `/${p.subresource}` : ''}${p.group ? `.${p.group}` : ''}${p.name ? ` ${p.name}` : ''}${p.namespace ? ` in ${p.namespace}` : ''}`;
}


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

  add('permissions', f.deniedPermissions.length ? 'fail' : 'pass', f.deniedPermissions.length ? `not allowed: ${f.deniedPermissions.join(', ')}` : `all ${f.checkedPermissions} permissions the plugin uses`, 'apply manifests/rbac/plugin.yaml and the file of your legacy CNI in manifests/rbac/legacy/, and put your user in the group cilium-migrate (see README "Permissions")');
  return checks;
}

/** The worst result. */
export function worst(checks: Check[]): CheckResult {
  return checks.some((c) => c.result === 'fail') ? 'fail' : checks.some((c) => c.result === 'warn') ? 'warn' : 'pass';
}


/** Reads the facts from the cluster. */
export async function gatherFacts(kube: Kube, opts: { agentNamespace: string; ciliumNamespace: string; verifyNamespace: string; serviceCidr: string; ciliumCidr: string }): Promise<PreflightFacts> {
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

  const permissions = [
    ...requiredPermissions({ ciliumNamespace: opts.ciliumNamespace, verifyNamespace: opts.verifyNamespace, agentNamespace: opts.agentNamespace, legacy: legacy ? legacyScope(legacy) : undefined }),
    // A Flannel DaemonSet whose configuration could not be read is no legacy CNI found: say which
    // permission is missing rather than "none found".
    ...(legacy ? [] : configMapsToRead(dss.items).map((c): Permission => ({ verb: 'get', group: '', resource: 'configmaps', namespace: c.namespace, name: c.name }))),
  ];
  const denied: string[] = [];
  await Promise.all(
    permissions.map(async (p) => {
      const review = await call(kube, 'selfsubjectaccessreview', () =>
        kube.authorization.createSelfSubjectAccessReview({
          body: { spec: { resourceAttributes: { verb: p.verb, group: p.group, resource: p.resource, ...(p.subresource ? { subresource: p.subresource } : {}), ...(p.namespace ? { namespace: p.namespace } : {}), ...(p.name ? { name: p.name } : {}) } } },
        }),
      );
      if (!review.status?.allowed) denied.push(describePermission(p));
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
    checkedPermissions: permissions.length,
    serviceCidr: opts.serviceCidr,
    ciliumCidrFlag: opts.ciliumCidr,
  };
}
