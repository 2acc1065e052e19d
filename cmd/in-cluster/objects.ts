// What `run --in-cluster` creates, as data: a ServiceAccount bound to the plugin's roles
// (manifests/rbac/plugin.yaml) and a Job that runs the plugin with the same run flags from the
// project's image. Pure, so `--dry-run` prints exactly what a real run applies.
import { stringify } from 'yaml';
import { inClusterRun } from '../../lib/defaults.js';
import type { ManifestObject } from '../../lib/kube-objects.js';

export interface RunObjectsOptions {
  /** The agent namespace: where the Job and its ServiceAccount live. */
  namespace: string;
  ciliumNamespace: string;
  verifyNamespace: string;
  image: string;
  /** The run flags the pod gets (`run` first). */
  args: string[];
  /** The label the CiliumNodeConfig selects: a migrated node carries it, and is not drained again. */
  labelKey: string;
}

const labels = { 'app.kubernetes.io/name': inClusterRun.name, 'app.kubernetes.io/part-of': 'cilium-migrate' };
const rbac = 'rbac.authorization.k8s.io/v1';

/** The run's exit codes that no retry can change: bad flags, no usable configuration. */
export const hopelessExitCodes = [2, 3];

export function runObjects(o: RunObjectsOptions): ManifestObject[] {
  const name = inClusterRun.name;
  const subject = { kind: 'ServiceAccount', name, namespace: o.namespace };
  const meta = (namespace?: string) => ({ name, ...(namespace ? { namespace } : {}), labels });
  // The plugin's Role in each namespace it works in (the same namespace twice is bound once).
  const roleNamespaces = [...new Set([o.ciliumNamespace, o.verifyNamespace, o.namespace])];
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(o.namespace) },
    { apiVersion: rbac, kind: 'ClusterRoleBinding', metadata: meta(), roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cilium-migrate' }, subjects: [subject] },
    ...roleNamespaces.map((ns) => ({ apiVersion: rbac, kind: 'RoleBinding', metadata: meta(ns), roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'cilium-migrate' }, subjects: [subject] })),
    // The run pod writes its progress on its own Job (for `status`), and nothing else.
    { apiVersion: rbac, kind: 'Role', metadata: meta(o.namespace), rules: [{ apiGroups: ['batch'], resources: ['jobs'], resourceNames: [name], verbs: ['get', 'patch'] }] },
    { apiVersion: rbac, kind: 'RoleBinding', metadata: { ...meta(o.namespace), name: `${name}-progress` }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name }, subjects: [subject] },
    runJob(o),
  ];
}

function runJob(o: RunObjectsOptions): ManifestObject {
  const name = inClusterRun.name;
  const field = (path: string) => ({ valueFrom: { fieldRef: { fieldPath: path } } });
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, namespace: o.namespace, labels },
    spec: {
      // One pod at a time: with a pod failure policy the Job starts a replacement only once the
      // old pod has ended (and the migration lock keeps two runs apart whatever happens).
      parallelism: 1,
      completions: 1,
      backoffLimit: inClusterRun.backoffLimit,
      podFailurePolicy: {
        rules: [
          // Evicted by its own drain (or preempted): not a failure; the next pod resumes.
          { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget' }] },
          { action: 'FailJob', onExitCodes: { containerName: 'run', operator: 'In', values: hopelessExitCodes } },
        ],
      },
      template: {
        metadata: { labels },
        spec: {
          serviceAccountName: name,
          restartPolicy: 'Never',
          terminationGracePeriodSeconds: inClusterRun.terminationGraceSeconds,
          // A migrated node is not drained again: the run pod goes there when it can.
          affinity: { nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, preference: { matchExpressions: [{ key: o.labelKey, operator: 'In', values: ['true'] }] } }] } },
          securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [
            {
              name: 'run',
              image: o.image,
              command: ['node', inClusterRun.pluginPath],
              args: o.args,
              env: [
                { name: inClusterRun.env.job, value: name },
                { name: inClusterRun.env.namespace, ...field('metadata.namespace') },
                { name: inClusterRun.env.pod, ...field('metadata.name') },
                { name: inClusterRun.env.podUid, ...field('metadata.uid') },
                { name: inClusterRun.env.node, ...field('spec.nodeName') },
              ],
              resources: { requests: { cpu: '50m', memory: '128Mi' }, limits: { memory: '512Mi' } },
              securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
            },
          ],
        },
      },
    },
  };
}

/** The objects as one YAML stream, as `kubectl apply -f` reads it. */
export const objectsYaml = (objects: ManifestObject[]) => objects.map((o) => stringify(o, { aliasDuplicateObjects: false })).join('---\n');

/** Flags that concern the command on this machine, not the run: never passed to the pod. */
const localValueFlags = new Set(['kubeconfig', 'context', 'namespace', 'image']);
const localBooleanFlags = new Set(['in-cluster', 'attach', 'cancel', 'dry-run']);

/**
 * The run flags the pod gets: the person's own (already checked by the parsers), minus those that
 * concern this machine (kubeconfig, context, -n, the image) or the in-cluster command itself.
 * `argv` is as cli.ts normalised it: a value starting with '-' is joined to its flag.
 */
export function forwardedArgs(argv: readonly string[]): string[] {
  const out: string[] = ['run'];
  let command = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') break;
    const m = /^--(no-)?([a-z][a-z0-9-]*)(=.*)?$/.exec(arg);
    const short = /^-n(=.*)?$/.exec(arg);
    if (short) {
      if (short[1] === undefined) i++;
      continue;
    }
    if (m) {
      const name = m[2]!;
      if (localBooleanFlags.has(name)) continue;
      if (localValueFlags.has(name)) {
        if (m[3] === undefined) i++;
        continue;
      }
      out.push(arg);
      continue;
    }
    if (!command && arg === 'run') {
      command = true;
      continue;
    }
    out.push(arg);
  }
  return out;
}
