// What the lab installs into its fresh cluster, as on the seed's kind cluster before the
// migration: Flannel (DaemonSet kube-flannel-ds and ConfigMap kube-flannel-cfg in kube-flannel,
// VXLAN on 8472 over 10.244.0.0/16) and Cilium in migration mode (cilium-config as the initial Helm
// values make it, the cilium DaemonSet with its RBAC, and a CiliumNode per node with a pod CIDR from
// 10.245.0.0/16, which the Cilium operator would allocate).
import { agentNamespace, ciliumClusterCidr, ciliumVxlanPort, legacyClusterCidr, legacyVxlanPort } from '../lib/defaults.js';

type Obj = Record<string, unknown>;

export const flannelNamespace = 'kube-flannel';
export const flannelDaemonSet = 'kube-flannel-ds';

/** The Flannel CNI config kind nodes carry in /etc/cni/net.d. */
export const flannelConflist = {
  name: 'cbr0',
  cniVersion: '0.3.1',
  plugins: [{ type: 'flannel', delegate: { hairpinMode: true, isDefaultGateway: true } }, { type: 'portmap', capabilities: { portMappings: true } }],
};

export function flannelObjects(): Obj[] {
  const labels = { app: 'flannel', 'k8s-app': 'flannel', tier: 'node' };
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: flannelNamespace, labels: { 'pod-security.kubernetes.io/enforce': 'privileged' } } },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'flannel', namespace: flannelNamespace } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'flannel' },
      rules: [{ apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'] }, { apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'flannel' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'flannel' },
      subjects: [{ kind: 'ServiceAccount', name: 'flannel', namespace: flannelNamespace }],
    },
    {
      apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kube-flannel-cfg', namespace: flannelNamespace, labels },
      data: {
        'cni-conf.json': JSON.stringify(flannelConflist, null, 2),
        'net-conf.json': JSON.stringify({ Network: legacyClusterCidr, EnableNFTables: false, Backend: { Type: 'vxlan', Port: legacyVxlanPort } }, null, 2),
      },
    },
    {
      apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: flannelDaemonSet, namespace: flannelNamespace, labels },
      spec: {
        selector: { matchLabels: { app: 'flannel' } },
        template: {
          metadata: { labels },
          spec: {
            hostNetwork: true,
            serviceAccountName: 'flannel',
            tolerations: [{ operator: 'Exists', effect: 'NoSchedule' }, { operator: 'Exists', effect: 'NoExecute' }],
            containers: [{ name: 'kube-flannel', image: 'ghcr.io/flannel-io/flannel:v0.26.4', args: ['--ip-masq', '--kube-subnet-mgr'] }],
          },
        },
      },
    },
  ];
}

/** cilium-config as `values --phase initial` makes it: Cilium on every node, CNI on none yet. */
export function ciliumConfigData(): Record<string, string> {
  return {
    'custom-cni-conf': 'true',
    'cni-uninstall': 'false',
    'cni-exclusive': 'false',
    ipam: 'cluster-pool',
    'cluster-pool-ipv4-cidr': ciliumClusterCidr,
    'cluster-pool-ipv4-mask-size': '24',
    'routing-mode': 'tunnel',
    'tunnel-protocol': 'vxlan',
    'tunnel-port': String(ciliumVxlanPort),
    'enable-policy': 'never',
    'enable-host-legacy-routing': 'true',
    'unmanaged-pod-watcher-restart': 'false',
  };
}

export function ciliumObjects(image = 'quay.io/cilium/cilium:v1.18.0'): Obj[] {
  const ns = 'kube-system';
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'cilium', namespace: ns } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'cilium' },
      rules: [
        { apiGroups: [''], resources: ['nodes', 'pods', 'namespaces'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['cilium.io'], resources: ['ciliumnodes', 'ciliumnodes/status'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch'] },
        { apiGroups: ['cilium.io'], resources: ['ciliumnodeconfigs'], verbs: ['get', 'list', 'watch'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'cilium' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cilium' },
      subjects: [{ kind: 'ServiceAccount', name: 'cilium', namespace: ns }],
    },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cilium-config', namespace: ns }, data: ciliumConfigData() },
    {
      apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'cilium', namespace: ns, labels: { 'k8s-app': 'cilium' } },
      spec: {
        selector: { matchLabels: { 'k8s-app': 'cilium' } },
        updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 2 } },
        template: {
          metadata: { labels: { 'k8s-app': 'cilium' } },
          spec: {
            hostNetwork: true,
            serviceAccountName: 'cilium',
            tolerations: [{ operator: 'Exists' }],
            containers: [{ name: 'cilium-agent', image }],
          },
        },
      },
    },
  ];
}

/** The CiliumNodes with the operator's allocation: node i gets 10.245.i.0/24. */
export function ciliumNodeObjects(nodes: { name: string; index: number; internalIp: string }[]): Obj[] {
  const net = ciliumClusterCidr.split('.').slice(0, 2).join('.');
  return nodes.map((n) => ({
    apiVersion: 'cilium.io/v2', kind: 'CiliumNode', metadata: { name: n.name },
    spec: { addresses: [{ type: 'InternalIP', ip: n.internalIp }], ipam: { podCIDRs: [`${net}.${n.index}.0/24`] } },
  }));
}

/**
 * The probe agent DaemonSet for the lab, with the RBAC its discovery needs: a copy of the deployable
 * one in manifests/agent (kustomize), kept small for the lab; the manifests test checks that one.
 */
export function probeAgentObjects(namespace = agentNamespace, image = 'ghcr.io/cilium-migrate/agent:dev'): Obj[] {
  const labels = { 'app.kubernetes.io/name': 'cilium-migrate-agent' };
  const fieldEnv = (name: string, fieldPath: string) => ({ name, valueFrom: { fieldRef: { fieldPath } } });
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'cilium-migrate-agent', namespace } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'cilium-migrate-agent' },
      rules: [
        { apiGroups: [''], resources: ['pods', 'nodes'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['cilium.io'], resources: ['ciliumnodes'], verbs: ['get', 'list', 'watch'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'cilium-migrate-agent' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cilium-migrate-agent' },
      subjects: [{ kind: 'ServiceAccount', name: 'cilium-migrate-agent', namespace }],
    },
    {
      apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'cilium-migrate-agent', namespace, labels },
      spec: {
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: 'cilium-migrate-agent',
            tolerations: [{ operator: 'Exists' }],
            containers: [{
              name: 'agent', image, args: ['--interval', '1s', '--timeout', '500ms', '--window', '15s'],
              ports: [{ name: 'http', containerPort: 8080 }],
              readinessProbe: { httpGet: { path: '/readyz', port: 'http' }, periodSeconds: 2 },
              env: [fieldEnv('NODE_NAME', 'spec.nodeName'), fieldEnv('POD_NAME', 'metadata.name'), fieldEnv('POD_NAMESPACE', 'metadata.namespace'), fieldEnv('POD_IP', 'status.podIP')],
            }],
          },
        },
      },
    },
  ];
}

/** Where on a node the traffic checkers write their records (a hostPath: it outlives the node's restarts, as the node's /var does). */
export const trafficResultsHostPath = '/var/lib/cilium-migrate-lab/traffic';

/**
 * A DaemonSet of traffic checkers (lab/programs/traffic-checker.ts, bundled into the lab's agent
 * image as /opt/cilium-migrate/lab/traffic-checker.js) requesting every nginx pod; each writes its
 * records into its node's trafficResultsHostPath. It runs as root to write there.
 */
export function trafficCheckerObjects(image: string, namespace = 'default'): Obj[] {
  const labels = { app: 'traffic-checker' };
  const fieldEnv = (name: string, fieldPath: string) => ({ name, valueFrom: { fieldRef: { fieldPath } } });
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'traffic-checker', namespace } },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'traffic-checker', namespace }, rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] }] },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'traffic-checker', namespace },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'traffic-checker' },
      subjects: [{ kind: 'ServiceAccount', name: 'traffic-checker', namespace }],
    },
    {
      apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'traffic-checker', namespace, labels },
      spec: {
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: 'traffic-checker',
            tolerations: [{ operator: 'Exists' }],
            containers: [{
              name: 'checker', image, command: ['node', '/opt/cilium-migrate/lab/traffic-checker.js'],
              args: ['--selector', 'app=nginx', '--namespace', 'default', '--results', '/results', '--interval', '500'],
              securityContext: { runAsUser: 0, runAsGroup: 0 },
              env: [fieldEnv('NODE_NAME', 'spec.nodeName'), fieldEnv('POD_NAME', 'metadata.name'), fieldEnv('POD_IP', 'status.podIP')],
              volumeMounts: [{ name: 'results', mountPath: '/results' }],
            }],
            volumes: [{ name: 'results', hostPath: { path: trafficResultsHostPath, type: 'DirectoryOrCreate' } }],
          },
        },
      },
    },
  ];
}
