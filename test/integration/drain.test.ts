// Our drain against real `kubectl drain` on the same cluster, and the Eviction API's traps
// (PodDisruptionBudgets, the pod under two PDBs) on a real apiserver with the disruption controller.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { defaultDrainFlags } from '../../cmd/cluster/drain-filter.js';
import { systemClock } from '../../lib/clock.js';
import { defaultDrainOptions, drainNode, planDrain, podKey, type DrainOptions } from '../../cmd/engine/drain.js';
import { kubeEngineCluster as kubeDrainCluster } from '../../cmd/cluster/kube-cluster.js';
import { TimeoutError } from '../../lib/errors.js';
import { connect, rawRequest, type Kube } from '../../lib/kube.js';
import { evictPod } from '../../lib/kube-objects.js';
import { createSimulatedNodes, kindNodes } from '../../lab/cluster-objects.js';
import { startControlPlane, type ControlPlane } from '../../lab/control-plane.js';
import { eventually } from '../harness/wait.js';
import { progress } from '../harness/shared-cluster.js';

interface Pod {
  metadata: { name: string; namespace: string; uid: string };
  spec: { nodeName?: string };
  status: { phase?: string };
}

const ns = 'mix';
const manifests = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: ${ns}}
spec:
  replicas: 6
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: cache, namespace: ${ns}}
spec:
  replicas: 4
  selector: {matchLabels: {app: cache}}
  template:
    metadata: {labels: {app: cache}}
    spec:
      containers: [{name: cache, image: redis, volumeMounts: [{name: data, mountPath: /data}]}]
      volumes: [{name: data, emptyDir: {}}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: ${ns}}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: agent, image: busybox}]}
---
apiVersion: v1
kind: Pod
metadata: {name: lonely-1, namespace: ${ns}}
spec: {nodeName: kind-worker, containers: [{name: c, image: busybox}]}
---
apiVersion: v1
kind: Pod
metadata: {name: lonely-2, namespace: ${ns}}
spec: {nodeName: kind-worker2, containers: [{name: c, image: busybox}]}
`;

/** The pods kubectl refuses, from "cannot delete Pods ... (use --force to override): ns/a, ns/b" (deduplicated: kubectl repeats the list). */
function kubectlRefused(stderr: string): string[] {
  const names = [...stderr.matchAll(/\(use --[a-z-]+ to override\): ([^\]\n]+)/g)].flatMap((m) => m[1]!.split(',').map((s) => s.trim()));
  return [...new Set(names.filter((n) => /^[a-z0-9-]+\/[a-z0-9.-]+$/.test(n)))];
}

/** The pods kubectl says it evicts ("evicting pod ns/name"). */
function kubectlEvicting(stdout: string): string[] {
  return [...stdout.matchAll(/evicting pod (\S+)/g)].map((m) => m[1]!);
}

describe('drain compared with kubectl drain', () => {
  let cp: ControlPlane;
  let kube: Kube;
  const opts = (extra: Partial<DrainOptions> = {}): DrainOptions => ({ ...defaultDrainFlags, ...defaultDrainOptions, timeoutMs: 60_000, ...extra });

  before(async () => {
    cp = await startControlPlane({ progress });
    await createSimulatedNodes(cp, kindNodes(3));
    kube = connect({ kubeconfig: cp.kubeconfig });
    await cp.kubectl(['create', 'namespace', ns]);
    await cp.kubectl(['apply', '-f', '-'], { input: manifests });
    await eventually('every mix pod Running', async () => {
      const list = await cp.get<{ items: Pod[] }>(`/api/v1/namespaces/${ns}/pods`);
      // 6 web + 4 cache + 3 agent (workers only: the control plane is tainted) + 2 lonely
      return list.items.length === 15 && list.items.every((p) => p.status.phase === 'Running') ? true : undefined;
    }, 90_000);
  });
  after(() => cp?.stop());

  it('refuses the same pods as kubectl drain --ignore-daemonsets', async () => {
    const plan = await planDrain(kubeDrainCluster(kube), 'kind-worker', opts(), new Date());
    const ours = plan.filter((d) => d.action === 'refuse').map((d) => podKey(d.pod)).sort();
    await assert.rejects(cp.kubectl(['drain', 'kind-worker', '--ignore-daemonsets', '--dry-run=server']), (err: { stderr?: string }) => {
      const theirs = kubectlRefused(err.stderr ?? '').sort();
      assert.ok(theirs.includes('mix/lonely-1'), `kubectl refused the unmanaged pod: ${err.stderr}`);
      assert.deepEqual(ours, theirs);
      return true;
    });
    assert.ok(ours.some((p) => p.startsWith('mix/cache-')) || !plan.some((d) => d.pod.name.startsWith('cache-')), 'emptyDir pods are refused');
    await cp.kubectl(['uncordon', 'kind-worker']);
  });

  it('evicts the same pods as a real kubectl drain --ignore-daemonsets --force --delete-emptydir-data', async () => {
    const plan = await planDrain(kubeDrainCluster(kube), 'kind-worker', opts({ force: true, deleteEmptyDirData: true }), new Date());
    const ours = plan.filter((d) => d.action === 'evict').map((d) => podKey(d.pod)).sort();
    const { stdout } = await cp.kubectl(['drain', 'kind-worker', '--ignore-daemonsets', '--force', '--delete-emptydir-data', '--timeout=60s'], { timeoutMs: 90_000 });
    assert.deepEqual(kubectlEvicting(stdout).sort(), ours);
    assert.ok(ours.length >= 2, `something to evict: ${ours.join(', ')}`);
    assert.ok(plan.some((d) => d.action === 'skip' && d.pod.name.startsWith('agent-')), 'the DaemonSet pod stays');
    await cp.kubectl(['uncordon', 'kind-worker']);
  });

  it('drains a node for real: the pods kubectl would evict are gone and recreated elsewhere', async () => {
    const dry = await cp.kubectl(['drain', 'kind-worker2', '--ignore-daemonsets', '--force', '--delete-emptydir-data', '--dry-run=server']);
    const theirs = kubectlEvicting(dry.stdout).sort();
    await cp.kubectl(['uncordon', 'kind-worker2']);
    await cp.kubectl(['cordon', 'kind-worker2']);
    const report = await drainNode(kubeDrainCluster(kube), 'kind-worker2', opts({ force: true, deleteEmptyDirData: true }), systemClock);
    assert.deepEqual(report.evicted.sort(), theirs);
    const left = await cp.get<{ items: Pod[] }>(`/api/v1/pods?fieldSelector=spec.nodeName%3Dkind-worker2`);
    assert.deepEqual(left.items.map((p) => p.metadata.name.replace(/-[a-z0-9]+$/, '')), ['agent'], 'only the DaemonSet pod is left');
    await eventually('web and cache fully available again', async () => {
      const { stdout } = await cp.kubectl(['-n', ns, 'get', 'deploy', '-o', 'jsonpath={range .items[*]}{.metadata.name}={.status.availableReplicas}/{.spec.replicas} {end}']);
      return stdout.trim() === 'cache=4/4 web=6/6' ? true : undefined;
    }, 60_000);
    await cp.kubectl(['uncordon', 'kind-worker2']);
  });

  it('times out while a PodDisruptionBudget allows no disruption, naming the budget', async () => {
    await cp.kubectl(['-n', ns, 'create', 'poddisruptionbudget', 'web-strict', '--selector', 'app=web', '--max-unavailable', '0']);
    await eventually('web-strict observed', async () => {
      const pdb = await cp.get<{ metadata: { generation: number }; status?: { observedGeneration?: number; expectedPods?: number } }>(`/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets/web-strict`);
      return pdb.status?.observedGeneration === pdb.metadata.generation && pdb.status.expectedPods === 6 ? true : undefined;
    });
    try {
      const web = await cp.get<{ items: Pod[] }>(`/api/v1/namespaces/${ns}/pods?labelSelector=app%3Dweb`);
      const node = web.items[0]?.spec.nodeName;
      assert.ok(node, 'a web pod is scheduled');
      await assert.rejects(
        drainNode(kubeDrainCluster(kube), node, opts({ force: true, deleteEmptyDirData: true, timeoutMs: 8000, podSelector: 'app=web' }), systemClock),
        (err: unknown) => {
          assert.ok(err instanceof TimeoutError, String(err));
          assert.match(err.message, /mix\/web-[a-z0-9-]+: Cannot evict pod as it would violate the pod's disruption budget/);
          assert.match(err.message, /web-strict/);
          return true;
        },
      );
    } finally {
      await cp.kubectl(['-n', ns, 'delete', 'poddisruptionbudget', 'web-strict']);
    }
  });

  it('detects the pod that two PodDisruptionBudgets cover and leaves it in place', async () => {
    await cp.kubectl(['-n', ns, 'create', 'poddisruptionbudget', 'cache-a', '--selector', 'app=cache', '--max-unavailable', '1']);
    await cp.kubectl(['-n', ns, 'create', 'poddisruptionbudget', 'cache-b', '--selector', 'app=cache', '--max-unavailable', '1']);
    try {
      const pods = await cp.get<{ items: Pod[] }>(`/api/v1/namespaces/${ns}/pods?labelSelector=app%3Dcache`);
      const pod = pods.items[0]!;
      // The server refuses: 500 on current releases, 201 with a failure Status on older ones
      // (which client-node reads as success; test/unit/eviction.test.ts covers that answer).
      const raw = await rawRequest(kube, 'POST', `/api/v1/namespaces/${ns}/pods/${pod.metadata.name}/eviction`, {
        apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: pod.metadata.name, namespace: ns },
      });
      assert.ok(raw.status === 500 || raw.status === 201, `status ${raw.status}`);
      assert.equal((raw.body as { status?: string }).status, 'Failure');
      assert.match((raw.body as { message?: string }).message ?? '', /more than one PodDisruptionBudget/);
      const outcome = await evictPod(kube, { namespace: ns, name: pod.metadata.name, uid: pod.metadata.uid });
      assert.equal(outcome.kind, 'failed');
      assert.match(outcome.kind === 'failed' ? outcome.message : '', /more than one PodDisruptionBudget/);
      const still = await cp.get<Pod>(`/api/v1/namespaces/${ns}/pods/${pod.metadata.name}`);
      assert.equal(still.metadata.uid, pod.metadata.uid, 'the pod was not evicted');
    } finally {
      await cp.kubectl(['-n', ns, 'delete', 'poddisruptionbudget', 'cache-a', 'cache-b']);
    }
  });

  it('never evicts a recreated pod of the same name: the UID precondition answers 409', async () => {
    await cp.kubectl(['-n', ns, 'run', 'lonely-3', '--image', 'busybox', '--overrides', '{"spec":{"nodeName":"kind-worker3"}}']);
    const pod = await cp.get<Pod>(`/api/v1/namespaces/${ns}/pods/lonely-3`);
    const outcome = await evictPod(kube, { namespace: ns, name: 'lonely-3', uid: 'not-' + pod.metadata.uid });
    assert.equal(outcome.kind, 'replaced');
    const still = await cp.get<Pod>(`/api/v1/namespaces/${ns}/pods/lonely-3`);
    assert.equal(still.metadata.uid, pod.metadata.uid);
  });
});
