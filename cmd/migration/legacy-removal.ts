// What finalize removes of the legacy CNI: exactly the objects its manifest created, identified by
// what they are (the DaemonSet found by detection, what its pods use, the RBAC bound to its service
// accounts, its own namespace when nothing else lives there), with what is left on purpose named.
// Deciding is pure; reading is at the end of the file.
import { call, optional, type k8s, type Kube } from '../../lib/kube.js';
import { configMapsUsedBy, images, isCalicoKubeControllersImage, key, systemNamespaces, type LegacyCni, type LegacyObject } from './legacy-cni.js';

export interface Binding {
  name: string;
  roleRef: { kind: string; name: string };
  subjects: { kind: string; name: string; namespace?: string | undefined }[];
}

/** What finalize reads to know which objects belong to the legacy CNI. */
export interface LegacyInventory {
  /** The legacy DaemonSet (and, for Calico, the kube-controllers Deployment) as read now. */
  daemonSet?: k8s.V1DaemonSet | undefined;
  deployments: k8s.V1Deployment[];
  /** ServiceAccounts that exist, "namespace/name". */
  serviceAccounts: string[];
  clusterRoleBindings: Binding[];
  /** ClusterRoles that exist. */
  clusterRoles: string[];
  /** ConfigMaps that exist, "namespace/name". */
  configMaps: string[];
  /** What else lives in the legacy CNI's own namespace (Flannel's kube-flannel), by kind. */
  namespaceContents?: { namespace: string; pods: { name: string; owner?: string | undefined }[]; others: string[] } | undefined;
}

export interface LegacyRemoval {
  /** In deletion order: the DaemonSet first (the CNI stops), the namespace last. */
  objects: LegacyObject[];
  /** What is deliberately left, and what to do by hand. */
  notes: string[];
}

/**
 * The objects of the legacy CNI's manifest: its DaemonSet, its configuration, the ServiceAccounts
 * its pods run as, the ClusterRoleBindings that bind only those and the ClusterRoles only those
 * bindings use, and its own namespace when nothing else lives there. With the Tigera operator only
 * the Installation (the operator would recreate anything else). Pure.
 */
export function legacyRemoval(legacy: LegacyCni, inv: LegacyInventory): LegacyRemoval {
  const objects: LegacyObject[] = [];
  const notes: string[] = [];
  if (legacy.kind === 'calico' && legacy.installation) {
    objects.push({ apiVersion: 'operator.tigera.io/v1', kind: 'Installation', name: legacy.installation });
    notes.push(
      `Calico is managed by the Tigera operator: deleting Installation ${legacy.installation} makes the operator remove calico-node (deleting the DaemonSet would only see it recreated)`,
      'afterwards remove the operator itself as it was installed (kubectl delete -f tigera-operator.yaml, or helm uninstall) and, once nothing uses them, Calico\'s CRDs',
    );
    return { objects, notes };
  }
  const [dsNs, dsName] = (legacy.daemonSet ?? '/').split('/') as [string, string];
  if (!legacy.daemonSet || !inv.daemonSet) return { objects, notes: [`no ${legacy.kind} DaemonSet left to remove`] };
  objects.push({ apiVersion: 'apps/v1', kind: 'DaemonSet', namespace: dsNs, name: dsName });
  if (legacy.kind === 'aws-cni') {
    notes.push('on EKS with the vpc-cni add-on, remove the add-on too (aws eks delete-addon --cluster-name CLUSTER --addon-name vpc-cni), or it brings aws-node back');
    return { objects, notes };
  }

  // Calico's manifest also runs calico-kube-controllers next to calico-node.
  const workloads: (k8s.V1DaemonSet | k8s.V1Deployment)[] = [inv.daemonSet];
  if (legacy.kind === 'calico') {
    for (const d of inv.deployments.filter((x) => x.metadata?.namespace === dsNs && images(x).some(isCalicoKubeControllersImage))) {
      workloads.push(d);
      objects.push({ apiVersion: 'apps/v1', kind: 'Deployment', namespace: dsNs, name: d.metadata?.name ?? '' });
    }
  }
  const configMaps = new Set<string>();
  if (legacy.config?.name) configMaps.add(legacy.config.name);
  for (const w of workloads) for (const cm of configMapsUsedBy(w)) configMaps.add(cm);
  for (const cm of [...configMaps].sort()) if (inv.configMaps.includes(key(dsNs, cm))) objects.push({ apiVersion: 'v1', kind: 'ConfigMap', namespace: dsNs, name: cm });

  const accounts = new Set(workloads.map((w) => w.spec?.template.spec?.serviceAccountName).filter((n): n is string => !!n && n !== 'default'));
  // calico-cni-plugin is the account the CNI plugin's kubeconfig holds a token of: no pod runs as it,
  // but its binding names it together with nothing else but calico's.
  if (legacy.kind === 'calico' && inv.serviceAccounts.includes(key(dsNs, 'calico-cni-plugin'))) accounts.add('calico-cni-plugin');
  const ours = (s: Binding['subjects'][number]) => s.kind === 'ServiceAccount' && (s.namespace ?? dsNs) === dsNs && accounts.has(s.name);
  const bindings = inv.clusterRoleBindings.filter((b) => b.subjects.length > 0 && b.subjects.every(ours));
  const goingBindings = new Set(bindings.map((b) => b.name));
  const roles = [...new Set(bindings.filter((b) => b.roleRef.kind === 'ClusterRole').map((b) => b.roleRef.name))].filter(
    // A role some other binding still uses stays.
    (r) => inv.clusterRoles.includes(r) && !inv.clusterRoleBindings.some((b) => !goingBindings.has(b.name) && b.roleRef.kind === 'ClusterRole' && b.roleRef.name === r),
  );
  for (const b of bindings.map((x) => x.name).sort()) objects.push({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', name: b });
  for (const r of roles.sort()) objects.push({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', name: r });
  for (const a of [...accounts].sort()) if (inv.serviceAccounts.includes(key(dsNs, a))) objects.push({ apiVersion: 'v1', kind: 'ServiceAccount', namespace: dsNs, name: a });

  const contents = inv.namespaceContents;
  if (legacy.kind === 'flannel' && !systemNamespaces.has(dsNs) && contents?.namespace === dsNs) {
    const foreignPods = contents.pods.filter((p) => p.owner !== `DaemonSet/${dsName}`).map((p) => `pod ${p.name}`);
    const going = new Set(objects.filter((o) => o.namespace === dsNs).map((o) => `${o.kind}/${o.name}`));
    const others = [...foreignPods, ...contents.others.filter((o) => !going.has(o))];
    if (others.length === 0) objects.push({ apiVersion: 'v1', kind: 'Namespace', name: dsNs });
    else notes.push(`kept namespace ${dsNs}: it also holds ${others.slice(0, 5).join(', ')}${others.length > 5 ? ', ...' : ''}`);
  }
  if (legacy.kind === 'calico') notes.push('Calico\'s CRDs (crd.projectcalico.org) stay: delete them once no policy or tool uses them');
  return { objects, notes };
}

/** "DaemonSet kube-flannel/kube-flannel-ds". */
export const objectName = (o: LegacyObject) => `${o.kind} ${o.namespace ? `${o.namespace}/` : ''}${o.name}`;

// ---- reading ----

/** Reads what finalize needs to know which objects are the legacy CNI's. */
export async function readLegacyInventory(kube: Kube, legacy: LegacyCni): Promise<LegacyInventory> {
  const inv: LegacyInventory = { deployments: [], serviceAccounts: [], clusterRoleBindings: [], clusterRoles: [], configMaps: [] };
  if (!legacy.daemonSet || (legacy.kind === 'calico' && legacy.installation)) return inv;
  const [ns, name] = legacy.daemonSet.split('/') as [string, string];
  inv.daemonSet = await call(kube, `get daemonset ${legacy.daemonSet}`, () => optional(() => kube.apps.readNamespacedDaemonSet({ namespace: ns, name })));
  if (!inv.daemonSet || legacy.kind === 'aws-cni') return inv;
  const [deployments, bindings, accounts, configMaps] = await Promise.all([
    call(kube, `list deployments in ${ns}`, () => kube.apps.listNamespacedDeployment({ namespace: ns })),
    call(kube, 'list clusterrolebindings', () => kube.rbac.listClusterRoleBinding()),
    call(kube, `list serviceaccounts in ${ns}`, () => kube.core.listNamespacedServiceAccount({ namespace: ns })),
    call(kube, `list configmaps in ${ns}`, () => kube.core.listNamespacedConfigMap({ namespace: ns })),
  ]);
  inv.deployments = deployments.items;
  inv.clusterRoleBindings = bindings.items.map((b) => ({ name: b.metadata?.name ?? '', roleRef: { kind: b.roleRef.kind, name: b.roleRef.name }, subjects: (b.subjects ?? []).map((s) => ({ kind: s.kind, name: s.name, namespace: s.namespace })) }));
  inv.serviceAccounts = accounts.items.map((a) => key(ns, a.metadata?.name));
  inv.configMaps = configMaps.items.map((c) => key(ns, c.metadata?.name));
  const roles = [...new Set(inv.clusterRoleBindings.map((b) => b.roleRef.name))];
  inv.clusterRoles = (
    await Promise.all(roles.filter((r) => inv.clusterRoleBindings.some((b) => b.roleRef.name === r && b.subjects.some((s) => s.kind === 'ServiceAccount' && (s.namespace ?? ns) === ns))).map(async (r) => ((await call(kube, `get clusterrole ${r}`, () => optional(() => kube.rbac.readClusterRole({ name: r })))) ? r : undefined)))
  ).filter((r): r is string => r !== undefined);
  if (legacy.kind === 'flannel' && !systemNamespaces.has(ns)) {
    const [pods, dss, sts, svcs] = await Promise.all([
      call(kube, `list pods in ${ns}`, () => kube.core.listNamespacedPod({ namespace: ns })),
      call(kube, `list daemonsets in ${ns}`, () => kube.apps.listNamespacedDaemonSet({ namespace: ns })),
      call(kube, `list statefulsets in ${ns}`, () => kube.apps.listNamespacedStatefulSet({ namespace: ns })),
      call(kube, `list services in ${ns}`, () => kube.core.listNamespacedService({ namespace: ns })),
    ]);
    const ownerOf = (p: k8s.V1Pod) => {
      const o = p.metadata?.ownerReferences?.find((r) => r.controller);
      return o ? `${o.kind}/${o.name}` : undefined;
    };
    inv.namespaceContents = {
      namespace: ns,
      pods: pods.items.map((p) => ({ name: p.metadata?.name ?? '', owner: ownerOf(p) })),
      others: [
        ...dss.items.map((d) => `DaemonSet/${d.metadata?.name}`),
        ...deployments.items.map((d) => `Deployment/${d.metadata?.name}`),
        ...sts.items.map((d) => `StatefulSet/${d.metadata?.name}`),
        ...svcs.items.map((d) => `Service/${d.metadata?.name}`),
        // Every namespace gets these two from Kubernetes itself.
        ...configMaps.items.map((c) => `ConfigMap/${c.metadata?.name}`).filter((c) => c !== 'ConfigMap/kube-root-ca.crt'),
        ...accounts.items.map((a) => `ServiceAccount/${a.metadata?.name}`).filter((a) => a !== 'ServiceAccount/default'),
      ],
    };
  }
  return inv;
}
