// Read-only checks before a migration: each pitfall of REFERENCE.md section 1 that can be seen from
// the API is detected here, with a one-line fix. Gathering reads the cluster; judging is pure.
import { cidrContains, cidrsOverlap, parseCidr } from '../../lib/cidr.js';
import { ciliumNodeConfigName, lockLeaseName } from '../../lib/defaults.js';
import { finalizeRecordName } from './finalize.js';
import { preferredNodeConfigVersion } from './node-config.js';
import { call, statusCode, type k8s, type Kube } from '../../lib/kube.js';

export type CheckResult = 'pass' | 'warn' | 'fail';

export interface Check {
  name: string;
  result: CheckResult;
  detail: string;
  /** What to do, when not passing. */
  fix?: string;
}

export interface LegacyCni {
  kind: 'flannel' | 'calico' | 'aws-cni';
  daemonSet: string;
  podCidr?: string;
  /** UDP port of its VXLAN (Flannel's default 8472), when it uses VXLAN. */
  vxlanPort?: number;
}

export interface PreflightFacts {
  legacy: LegacyCni | undefined;
  /** The cilium-config ConfigMap's data, or undefined when Cilium is not installed. */
  ciliumConfig: Record<string, string> | undefined;
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

/** Where the plugin's objects are: the namespaces its flags name. */
export interface PermissionScope {
  ciliumNamespace: string;
  verifyNamespace: string;
  agentNamespace: string;
  /** The legacy CNI's DaemonSet (deleted by finalize --yes) and, for Flannel, its ConfigMap. */
  legacy?: { namespace: string; daemonSet: string; configMap?: string | undefined } | undefined;
}

/** The legacy CNIs the plugin knows, where their manifests put them (manifests/rbac names each). */
export const knownLegacyCnis: NonNullable<PermissionScope['legacy']>[] = [
  { namespace: 'kube-flannel', daemonSet: 'kube-flannel-ds', configMap: 'kube-flannel-cfg' },
  { namespace: 'kube-system', daemonSet: 'kube-flannel-ds', configMap: 'kube-flannel-cfg' },
  { namespace: 'kube-system', daemonSet: 'calico-node' },
  { namespace: 'kube-system', daemonSet: 'aws-node' },
];

/**
 * What the plugin does with the API, and where: the permission check of preflight asks the API
 * server about each (SelfSubjectAccessReview with its namespace and name). manifests/rbac grants
 * exactly these for the default namespaces (test/unit/plugin-rbac.test.ts holds the two together):
 * add a permission to both.
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
    // The legacy CNI: its configuration, and its DaemonSet that finalize --yes deletes.
    ...(scope.legacy
      ? [
          { verb: 'delete', group: 'apps', resource: 'daemonsets', namespace: scope.legacy.namespace, name: scope.legacy.daemonSet },
          ...(scope.legacy.configMap ? [core('get', 'configmaps', { namespace: scope.legacy.namespace, name: scope.legacy.configMap })] : []),
        ]
      : []),
  ];
}

/** "verb resource[/sub][.group] [in ns] [name]", for messages. */
export function describePermission(p: Permission): string {
  return `${p.verb} ${p.resource}${p.subresource ? `/${p.subresource}` : ''}${p.group ? `.${p.group}` : ''}${p.name ? ` ${p.name}` : ''}${p.namespace ? ` in ${p.namespace}` : ''}`;
}

/** Judges the facts; pure. */
export function preflightChecks(f: PreflightFacts): Check[] {
  const checks: Check[] = [];
  const add = (name: string, result: CheckResult, detail: string, fix?: string) => checks.push({ name, result, detail, ...(fix && result !== 'pass' ? { fix } : {}) });

  if (f.legacy) {
    add('legacy CNI', 'pass', `${f.legacy.kind} (DaemonSet ${f.legacy.daemonSet})${f.legacy.podCidr ? `, pod CIDR ${f.legacy.podCidr}` : ''}${f.legacy.vxlanPort ? `, VXLAN port ${f.legacy.vxlanPort}` : ''}`);
  } else {
    add('legacy CNI', 'warn', 'no Flannel, Calico or AWS-CNI DaemonSet found', 'if another CNI runs, check by hand that it uses the Linux routing stack and its own CIDR and port');
  }

  const cc = f.ciliumConfig;
  if (!cc) {
    add('Cilium installed', 'fail', 'no cilium-config ConfigMap in kube-system', 'install Cilium in migration mode: kubectl cilium-migrate values --phase initial');
  } else {
    add('Cilium installed', 'pass', 'cilium-config found');
    const customConf = cc['custom-cni-conf'] === 'true';
    add('migration mode', customConf ? 'pass' : 'fail', customConf ? 'custom-cni-conf=true: Cilium writes no CNI config until a node opts in' : `custom-cni-conf=${cc['custom-cni-conf'] ?? 'unset'}: Cilium takes over every node's CNI at once`, 'reinstall with the values of `kubectl cilium-migrate values --phase initial` (cni.customConf=true)');
    const ipam = cc['ipam'] ?? 'cluster-pool';
    add('IPAM mode', ipam === 'cluster-pool' ? 'pass' : 'fail', `ipam=${ipam}`, 'live migration needs ipam.mode=cluster-pool');
  }

  const ciliumCidr = cc?.['cluster-pool-ipv4-cidr']?.split(/[ ,]+/)[0] || f.ciliumCidrFlag;
  const conflicts: string[] = [];
  try {
    parseCidr(ciliumCidr);
    if (f.legacy?.podCidr && cidrsOverlap(ciliumCidr, f.legacy.podCidr)) conflicts.push(`the legacy pod CIDR ${f.legacy.podCidr}`);
    if (cidrsOverlap(ciliumCidr, f.serviceCidr)) conflicts.push(`the service CIDR ${f.serviceCidr}`);
    const nodesInside = f.nodes.filter((n) => n.internalIPs.some((ip) => cidrContains(ciliumCidr, ip))).map((n) => n.name);
    if (nodesInside.length) conflicts.push(`node addresses (${nodesInside.join(', ')})`);
    add('Cilium CIDR distinct', conflicts.length ? 'fail' : 'pass', conflicts.length ? `${ciliumCidr} overlaps ${conflicts.join(' and ')}` : `${ciliumCidr} overlaps no pod, service or node network`, 'choose a Cilium cluster-pool CIDR that overlaps nothing (the seed uses 10.245.0.0/16)');
  } catch {
    add('Cilium CIDR distinct', 'fail', `"${ciliumCidr}" is not a CIDR`, 'set ipam.operator.clusterPoolIPv4PodCIDRList');
  }

  if (cc) {
    const tunnel = cc['routing-mode'] === 'native' || cc['tunnel'] === 'disabled' ? 'native' : cc['tunnel-protocol'] ?? cc['tunnel'] ?? 'vxlan';
    const ciliumPort = Number(cc['tunnel-port'] || (tunnel === 'geneve' ? 6081 : 8472));
    if (tunnel === 'native') add('tunnel ports', 'fail', 'Cilium runs in native routing: no second overlay', 'use routingMode=tunnel for the migration');
    else if (f.legacy?.vxlanPort && tunnel === 'vxlan' && ciliumPort === f.legacy.vxlanPort) {
      add('tunnel ports', 'fail', `Cilium and ${f.legacy.kind} both use VXLAN on UDP ${ciliumPort} ("Address already in use")`, 'set tunnelPort to another port (8473 in the seed)');
    } else add('tunnel ports', 'pass', `Cilium ${tunnel} on ${ciliumPort}${f.legacy?.vxlanPort ? `, ${f.legacy.kind} VXLAN on ${f.legacy.vxlanPort}` : ''}`);
  }

  if (f.cncVersions.length === 0) add('CiliumNodeConfig API', 'fail', 'ciliumnodeconfigs.cilium.io is not served', 'Cilium 1.13 or newer installs it; check the CRD (kubectl get crd ciliumnodeconfigs.cilium.io)');
  else add('CiliumNodeConfig API', 'pass', `served as ${f.cncVersions.map((v) => `cilium.io/${v}`).join(', ')}; the plugin uses ${preferredNodeConfigVersion(f.cncVersions)}`);

  const missing = f.nodes.filter((n) => !f.agentNodes.has(n.name)).map((n) => n.name);
  add('probe agents', missing.length ? 'fail' : 'pass', missing.length ? `no Ready probe agent on ${missing.join(', ')}` : `a Ready agent on each of ${f.nodes.length} nodes`, 'deploy the agent DaemonSet (manifests/) and wait for it; without agents the gate cannot see connectivity');

  add('PodDisruptionBudgets', f.zeroDisruptionPdbs.length ? 'fail' : 'pass', f.zeroDisruptionPdbs.length ? `allowing no disruption now: ${f.zeroDisruptionPdbs.join(', ')}` : 'none blocks a drain now', 'scale the workload up or relax the budget; a drain would wait on it until --drain-timeout');

  add('NetworkPolicies', f.networkPolicies ? 'warn' : 'pass', f.networkPolicies ? `${f.networkPolicies} present` : 'none', 'Cilium enforces them after finalize; make sure they allow the Cilium pod CIDR (and the probe agents)');

  add('permissions', f.deniedPermissions.length ? 'fail' : 'pass', f.deniedPermissions.length ? `not allowed: ${f.deniedPermissions.join(', ')}` : `all ${f.checkedPermissions} permissions the plugin uses`, 'apply manifests/rbac (plugin.yaml, and flannel.yaml for Flannel in kube-flannel) and put your user in the group cilium-migrate (see README "Permissions")');
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

/** The legacy CNI among the DaemonSets (Flannel with its net-conf.json, Calico, AWS-CNI), if any. */
export async function detectLegacyCni(kube: Kube, daemonSets: k8s.V1DaemonSet[]): Promise<LegacyCni | undefined> {
  let legacy: LegacyCni | undefined;
  for (const ds of daemonSets) {
    const name = ds.metadata?.name ?? '';
    const ns = ds.metadata?.namespace ?? '';
    if (/flannel/.test(name)) {
      legacy = { kind: 'flannel', daemonSet: `${ns}/${name}` };
      const cm = await call(kube, 'get flannel config', async () => (await optional(() => kube.core.readNamespacedConfigMap({ namespace: ns, name: 'kube-flannel-cfg' }))));
      try {
        const conf = JSON.parse(cm?.data?.['net-conf.json'] ?? '{}') as { Network?: string; Backend?: { Type?: string; Port?: number } };
        if (conf.Network) legacy.podCidr = conf.Network;
        if ((conf.Backend?.Type ?? 'vxlan').toLowerCase() === 'vxlan') legacy.vxlanPort = conf.Backend?.Port ?? 8472;
      } catch {
        // an unreadable net-conf.json leaves CIDR and port unknown
      }
    } else if (name === 'calico-node') legacy = { kind: 'calico', daemonSet: `${ns}/${name}`, vxlanPort: 4789 };
    else if (name === 'aws-node') legacy = { kind: 'aws-cni', daemonSet: `${ns}/${name}` };
  }
  return legacy;
}

/** Reads the facts from the cluster. */
export async function gatherFacts(kube: Kube, opts: { agentNamespace: string; ciliumNamespace: string; verifyNamespace: string; serviceCidr: string; ciliumCidr: string }): Promise<PreflightFacts> {
  const [dss, nodes, pods, pdbs, netpols, crd, ciliumConfig] = await Promise.all([
    call(kube, 'list daemonsets', () => kube.apps.listDaemonSetForAllNamespaces()),
    call(kube, 'list nodes', () => kube.core.listNode()),
    call(kube, `list pods in ${opts.agentNamespace}`, () => kube.core.listNamespacedPod({ namespace: opts.agentNamespace, labelSelector: 'app.kubernetes.io/name=cilium-migrate-agent' })),
    call(kube, 'list poddisruptionbudgets', () => kube.policy.listPodDisruptionBudgetForAllNamespaces()),
    call(kube, 'list networkpolicies', () => optional(() => kube.networking.listNetworkPolicyForAllNamespaces())),
    call(kube, 'get crd ciliumnodeconfigs.cilium.io', () => optional(() => kube.extensions.readCustomResourceDefinition({ name: 'ciliumnodeconfigs.cilium.io' }))),
    call(kube, `get configmap ${opts.ciliumNamespace}/cilium-config`, () => optional(() => kube.core.readNamespacedConfigMap({ namespace: opts.ciliumNamespace, name: 'cilium-config' }))),
  ]);

  const legacy = await detectLegacyCni(kube, dss.items);

  const [legacyNamespace, legacyDaemonSet] = legacy?.daemonSet.split('/') ?? [];
  const permissions = requiredPermissions({
    ciliumNamespace: opts.ciliumNamespace,
    verifyNamespace: opts.verifyNamespace,
    agentNamespace: opts.agentNamespace,
    legacy: legacyNamespace && legacyDaemonSet ? { namespace: legacyNamespace, daemonSet: legacyDaemonSet, ...(legacy?.kind === 'flannel' ? { configMap: 'kube-flannel-cfg' } : {}) } : undefined,
  });
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
    ciliumConfig: ciliumConfig?.data ?? (ciliumConfig ? {} : undefined),
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
