// Counting one client's requests with the API server's own metrics: API Priority and Fairness
// dispatches every request of a user matched by a FlowSchema under that schema's name, so a
// FlowSchema per benchmark user turns apiserver_flowcontrol_dispatched_requests_total into a
// per-client request counter. The user is bound to cluster-admin but is not in system:masters
// (whose requests the built-in "exempt" schema takes first).
import type { ControlPlane } from '../lab/control-plane.js';
import { waitUntil } from '../lab/wait.js';

/** A kubeconfig for `user` whose requests the API server counts under flow schema `user`. */
export async function countedUser(cp: ControlPlane, user: string): Promise<string> {
  const docs = [
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: `bench-${user}` }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' }, subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: user }] },
    {
      apiVersion: 'flowcontrol.apiserver.k8s.io/v1',
      kind: 'FlowSchema',
      metadata: { name: user },
      spec: {
        priorityLevelConfiguration: { name: 'workload-high' },
        matchingPrecedence: 200,
        distinguisherMethod: { type: 'ByUser' },
        rules: [{
          subjects: [{ kind: 'User', user: { name: user } }],
          resourceRules: [{ verbs: ['*'], apiGroups: ['*'], resources: ['*'], clusterScope: true, namespaces: ['*'] }],
          nonResourceRules: [{ verbs: ['*'], nonResourceURLs: ['*'] }],
        }],
      },
    },
  ];
  for (const d of docs) await cp.kubectl(['apply', '--server-side', '-f', '-'], { input: JSON.stringify(d) });
  return cp.userKubeconfig(user);
}

/** Requests the API server has dispatched for each flow schema so far. */
export async function dispatchedByFlowSchema(cp: ControlPlane): Promise<Map<string, number>> {
  const { stdout } = await cp.kubectl(['get', '--raw', '/metrics'], { timeoutMs: 60_000 });
  const out = new Map<string, number>();
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('apiserver_flowcontrol_dispatched_requests_total{')) continue;
    const schema = /flow_schema="([^"]+)"/.exec(line)?.[1];
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (schema) out.set(schema, (out.get(schema) ?? 0) + value);
  }
  return out;
}

/** Polls `check` every `intervalMs` until it is true (the lab's waiting loop); throws naming `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 180_000, intervalMs = 500): Promise<void> {
  await waitUntil(what, async () => ((await check()) ? true : undefined), timeoutMs, intervalMs);
}

/** The API server's /metrics text. */
export async function apiserverMetrics(cp: ControlPlane): Promise<string> {
  return (await cp.kubectl(['get', '--raw', '/metrics'], { timeoutMs: 120_000 })).stdout;
}

/** The sum of a metric's samples whose label text matches every one of `filters` (e.g. 'verb="PATCH"'). */
export function sumMetric(text: string, name: string, ...filters: (string | RegExp)[]): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const labels = line.slice(name.length, line.lastIndexOf(' '));
    if (filters.every((f) => (typeof f === 'string' ? labels.includes(f) : f.test(labels)))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

