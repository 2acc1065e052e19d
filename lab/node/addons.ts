// What a kind cluster runs besides the nodes, installed into the real-node lab: kube-proxy as
// kubeadm deploys it (its ServiceAccount, RBAC, ConfigMap and DaemonSet), and Flannel from its own
// kube-flannel.yml, unchanged but for the pod network and the VXLAN port when the lab uses others.
import { readFileSync } from 'node:fs';
import { parseAllDocuments, stringify } from 'yaml';
import { labKubeProxyImage } from '../images/catalog.js';

type Obj = Record<string, unknown>;

/** kube-proxy in iptables mode, as kubeadm (and so kind) installs it. */
export function kubeProxyObjects(o: { apiServer: string; clusterCidr: string }): Obj[] {
  const ns = 'kube-system';
  const labels = { 'k8s-app': 'kube-proxy' };
  const config = {
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    kind: 'KubeProxyConfiguration',
    bindAddress: '0.0.0.0',
    clientConnection: { kubeconfig: '/var/lib/kube-proxy/kubeconfig.conf' },
    clusterCIDR: o.clusterCidr,
    mode: 'iptables',
    // As kind: leave nf_conntrack_max (machine-wide) alone.
    conntrack: { maxPerCore: 0 },
  };
  const kubeconfig = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'default', cluster: { server: o.apiServer, 'certificate-authority': '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt' } }],
    users: [{ name: 'default', user: { tokenFile: '/var/run/secrets/kubernetes.io/serviceaccount/token' } }],
    contexts: [{ name: 'default', context: { cluster: 'default', namespace: 'default', user: 'default' } }],
    'current-context': 'default',
  };
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'kube-proxy', namespace: ns } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'kubeadm:node-proxier' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:node-proxier' },
      subjects: [{ kind: 'ServiceAccount', name: 'kube-proxy', namespace: ns }],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'kube-proxy', namespace: ns },
      rules: [{ apiGroups: [''], resources: ['configmaps'], resourceNames: ['kube-proxy'], verbs: ['get'] }],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'kube-proxy', namespace: ns },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'kube-proxy' },
      subjects: [{ kind: 'Group', name: 'system:bootstrappers:kubeadm:default-node-token' }, { kind: 'ServiceAccount', name: 'kube-proxy', namespace: ns }],
    },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kube-proxy', namespace: ns, labels: { app: 'kube-proxy' } }, data: { 'config.conf': stringify(config), 'kubeconfig.conf': stringify(kubeconfig) } },
    {
      apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'kube-proxy', namespace: ns, labels },
      spec: {
        selector: { matchLabels: labels },
        updateStrategy: { type: 'RollingUpdate' },
        template: {
          metadata: { labels },
          spec: {
            priorityClassName: 'system-node-critical',
            hostNetwork: true,
            serviceAccountName: 'kube-proxy',
            nodeSelector: { 'kubernetes.io/os': 'linux' },
            tolerations: [{ operator: 'Exists' }],
            containers: [{
              name: 'kube-proxy',
              image: labKubeProxyImage,
              imagePullPolicy: 'IfNotPresent',
              command: ['/usr/local/bin/kube-proxy', '--config=/var/lib/kube-proxy/config.conf', '--hostname-override=$(NODE_NAME)'],
              env: [{ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } }],
              securityContext: { privileged: true },
              volumeMounts: [
                { name: 'kube-proxy', mountPath: '/var/lib/kube-proxy' },
                { name: 'xtables-lock', mountPath: '/run/xtables.lock' },
                { name: 'lib-modules', mountPath: '/lib/modules', readOnly: true },
              ],
            }],
            volumes: [
              { name: 'kube-proxy', configMap: { name: 'kube-proxy' } },
              { name: 'xtables-lock', hostPath: { path: '/run/xtables.lock', type: 'FileOrCreate' } },
              { name: 'lib-modules', hostPath: { path: '/lib/modules' } },
            ],
          },
        },
      },
    },
  ];
}

/** Flannel's VXLAN port when its Backend names none (flannel-io/flannel pkg/backend/vxlan). */
const flannelDefaultVxlanPort = 8472;

/**
 * Flannel's kube-flannel.yml as published in its module, with the lab's layout: `network` as its
 * Network, and `vxlanPort` as its VXLAN backend's Port when that is not Flannel's default.
 */
export function flannelManifestObjects(file: string, o: { network: string; vxlanPort?: number }): Obj[] {
  const docs = parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJSON() as Obj | null).filter((d): d is Obj => d !== null);
  for (const d of docs) {
    const data = (d.kind === 'ConfigMap' ? d.data : undefined) as Record<string, string> | undefined;
    if (data?.['net-conf.json']) {
      const net = JSON.parse(data['net-conf.json']) as { Network: string; Backend?: { Type?: string; Port?: number } };
      const backend = net.Backend ?? { Type: 'vxlan' };
      const port = o.vxlanPort ?? flannelDefaultVxlanPort;
      const portChanges = (backend.Type ?? 'vxlan') === 'vxlan' && (backend.Port ?? flannelDefaultVxlanPort) !== port;
      if (net.Network !== o.network || portChanges) {
        const conf = { ...net, Network: o.network, ...(portChanges ? { Backend: { ...backend, Port: port } } : {}) };
        data['net-conf.json'] = `${JSON.stringify(conf, null, 2)}\n`;
      }
    }
  }
  return docs;
}
