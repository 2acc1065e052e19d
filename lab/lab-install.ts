// What the lab's scenario (lab/scenario.ts) installs on top of the lab's cluster: the probe agents
// and, for the end-to-end test, the traffic checkers.
import { agentNamespace } from '../lib/defaults.js';

type Obj = Record<string, unknown>;

/**
 * The probe agent DaemonSet for the lab, with the RBAC its discovery needs: a copy of the deployable
 * one in manifests/agent (kustomize), kept small for the lab; the manifests test checks that one.
 */
export function probeAgentObjects(namespace = agentNamespace, image = 'ghcr.io/cilium-migrate/agent:dev', nets: { legacyCidrs?: string[]; ciliumCidrs?: string[] } = {}): Obj[] {
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
              env: [
                fieldEnv('NODE_NAME', 'spec.nodeName'), fieldEnv('POD_NAME', 'metadata.name'), fieldEnv('POD_NAMESPACE', 'metadata.namespace'), fieldEnv('POD_IP', 'status.podIP'),
                // The lab's layout, as manifests/agent's ConfigMap gives it (the agent's defaults are the seed's).
                ...(nets.legacyCidrs ? [{ name: 'LEGACY_CIDRS', value: nets.legacyCidrs.join(',') }] : []),
                ...(nets.ciliumCidrs ? [{ name: 'CILIUM_CIDRS', value: nets.ciliumCidrs.join(',') }] : []),
              ],
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
