// The whole lifecycle on a cluster shaped like the seed's (Flannel DaemonSet and kube-flannel-cfg on
// 10.244.0.0/16, a cilium DaemonSet, CiliumNodes, probe agents): preflight, prepare, plan, run
// (killed half way and resumed without redoing finished nodes), status, rollback of one node,
// finalize refusing until it may, then removing the CiliumNodeConfig and Flannel. Every command
// runs as a user bound to nothing but the plugin's RBAC (manifests/rbac), who may not read a
// Secret, change other ConfigMaps or start pods anywhere else.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Agent as HttpsAgent } from 'node:https';
import { continueInHead, listPaged, type PlannedNode, type ClusterStatus } from '../../cmd/migration/cluster-view.js';
import { connect, rawRequest } from '../../lib/kube.js';
import type { ControlPlane } from '../../lab/control-plane.js';
import { createAgentDaemonSet, legacyAndCiliumConfig, startMigrationCluster } from '../harness/migration-cluster.js';
import { repoRoot, runPlugin } from '../harness/plugin.js';
import { progress } from '../harness/shared-cluster.js';

describe('preflight, prepare, plan, run, status, rollback and finalize', () => {
  let cp: ControlPlane;
  /** A user in the group the plugin's RBAC binds, and in no other. */
  let operator: string;
  const env = () => ({ PATH: process.env.PATH ?? '', HOME: cp.rootDir });
  const plugin = (...args: string[]) => runPlugin([...args, '--kubeconfig', operator], { env: env() });
  const asOperator = (args: string[]) => cp.kubectl([...args, `--kubeconfig=${operator}`]);
  // kwok nodes run no probe agents: the gate that needs none (the matrix gate has its own tests).
  const runArgs = ['run', '--restart', 'none', '--gate', 'cluster-state', '--gate-rounds', '1', '--gate-interval', '1s'];

  before(async () => {
    cp = await startMigrationCluster(progress, 2, { nodeConfig: false });
    await cp.kubectl(['apply', '-f', '-'], { input: legacyAndCiliumConfig });
    await createAgentDaemonSet(cp, 3);
    for (const file of ['plugin.yaml', 'legacy/flannel.yaml']) await cp.kubectl(['apply', '--server-side', '-f', join(repoRoot, 'manifests', 'rbac', file)]);
    operator = await cp.userKubeconfig('operator', ['cilium-migrate']);
  });
  after(() => cp?.stop());

  it('the plugin\'s RBAC grants no Secret, no other ConfigMap, no pod outside the Cilium and verify namespaces', async () => {
    await cp.kubectl(['-n', 'kube-system', 'create', 'secret', 'generic', 'precious', '--from-literal=k=v']);
    // On EKS this ConfigMap maps IAM identities to cluster groups: changing it is cluster-admin.
    await cp.kubectl(['-n', 'kube-system', 'create', 'configmap', 'aws-auth', '--from-literal=mapRoles=[]']);
    await cp.kubectl(['create', 'namespace', 'workloads']);
    const forbidden = async (what: string, args: string[]) => assert.rejects(asOperator(args), /Forbidden|forbidden/, what);
    await forbidden('read a Secret', ['-n', 'kube-system', 'get', 'secret', 'precious']);
    await forbidden('list Secrets', ['get', 'secrets', '-A']);
    await forbidden('update aws-auth', ['-n', 'kube-system', 'patch', 'configmap', 'aws-auth', '--type=merge', '-p', '{"data":{"mapRoles":"- groups: [system:masters]"}}']);
    await forbidden('replace aws-auth', ['-n', 'kube-system', 'delete', 'configmap', 'aws-auth']);
    await forbidden('create another ConfigMap in kube-system', ['-n', 'kube-system', 'create', 'configmap', 'sneaky', '--from-literal=a=b']);
    await forbidden('create a pod in another namespace', ['-n', 'workloads', 'run', 'escape', '--image', 'alpine', '--restart=Never']);
    await forbidden('create a pod in the agents\' namespace', ['-n', 'cilium-migrate', 'run', 'escape', '--image', 'alpine', '--restart=Never']);
    await forbidden('delete a pod in another namespace', ['-n', 'cilium-migrate', 'delete', 'pods', '--all']);
    await forbidden('create a Deployment', ['-n', 'kube-system', 'create', 'deployment', 'x', '--image', 'alpine']);
    await forbidden('read pods/proxy outside the agents\' namespace', ['get', '--raw', '/api/v1/namespaces/default/pods/web:80/proxy/']);
    // What it needs, it may: in the Cilium and verify namespaces, pods; evictions anywhere.
    for (const [ns, verb] of [['kube-system', 'create'], ['default', 'create'], ['kube-system', 'delete'], ['workloads', 'list']] as const) {
      assert.equal((await asOperator(['auth', 'can-i', verb, 'pods', '-n', ns])).stdout.trim(), 'yes', `${verb} pods in ${ns}`);
    }
    assert.equal((await asOperator(['auth', 'can-i', 'create', 'pods', '--subresource=eviction', '-n', 'workloads'])).stdout.trim(), 'yes');
    await cp.kubectl(['delete', 'namespace', 'workloads', '--wait=false']);
  });

  it('preflight passes on the seed-shaped cluster, permissions included', async () => {
    const r = await plugin('preflight', '-o', 'json');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const permissions = (JSON.parse(r.stdout) as { name: string; result: string; detail: string }[]).find((c) => c.name === 'permissions')!;
    assert.equal(permissions.result, 'pass');
    assert.match(permissions.detail, /^all \d+ permissions the plugin uses$/);
  });

  it('prepare applies the CiliumNodeConfig in the served version, and again changes nothing', async () => {
    const first = await plugin('prepare', '-o', 'json');
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(JSON.parse(first.stdout), [{ kind: 'CiliumNodeConfig', name: 'kube-system/cilium-default', apiVersion: 'cilium.io/v2', outcome: 'created' }]);
    const cnc = await cp.get<{ spec: { nodeSelector: { matchLabels: Record<string, string> }; defaults: Record<string, string> }; metadata: { managedFields: { manager: string; operation: string }[] } }>(
      '/apis/cilium.io/v2/namespaces/kube-system/ciliumnodeconfigs/cilium-default',
    );
    assert.deepEqual(cnc.spec.nodeSelector.matchLabels, { 'io.cilium.migration/cilium-default': 'true' });
    assert.equal(cnc.spec.defaults['write-cni-conf-when-ready'], '/host/etc/cni/net.d/05-cilium.conflist');
    assert.ok(cnc.metadata.managedFields.some((f) => f.manager === 'kubectl-cilium-migrate' && f.operation === 'Apply'), 'server-side applied by the plugin');
    const again = await plugin('prepare', '-o', 'json');
    assert.equal(JSON.parse(again.stdout)[0].outcome, 'unchanged');
    const dry = await plugin('prepare', '--dry-run', '--label-key', 'example.com/other', '-o', 'json');
    assert.equal(dry.code, 0, dry.stderr);
    assert.equal(JSON.parse(dry.stdout)[0].outcome, 'configured (dry run)');
    const still = await cp.get<{ spec: { nodeSelector: { matchLabels: Record<string, string> } } }>('/apis/cilium.io/v2/namespaces/kube-system/ciliumnodeconfigs/cilium-default');
    assert.deepEqual(still.spec.nodeSelector.matchLabels, { 'io.cilium.migration/cilium-default': 'true' }, 'a dry run changes nothing');
  });

  it('status shows every node pending before the migration', async () => {
    const r = await plugin('status');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^NODE\s+ROLE\s+PHASE\s+OVERLAY\s+PODS LEGACY\s+PODS CILIUM\s+AGENT$/m);
    assert.match(r.stdout, /^kind-control-plane\s+control-plane\s+pending\s+legacy\s/m);
    assert.match(r.stdout, /^0 of 3 nodes migrated, /m);
    const json = JSON.parse((await plugin('status', '-o', 'json')).stdout) as ClusterStatus;
    assert.deepEqual(json.nodes.map((n) => [n.node, n.phase, n.agent]), [['kind-control-plane', 'pending', 'ready'], ['kind-worker', 'pending', 'ready'], ['kind-worker2', 'pending', 'ready']]);
    assert.equal(json.nodes.reduce((s, n) => s + n.pods.legacy + n.pods.cilium, 0), 13, 'the 10 nginx pods and the 3 probe agents are counted');
  });

  it('status and plan read pods and nodes in pages (limit and continue), keeping only the fields they use', async () => {
    const kube = connect({ kubeconfig: cp.kubeconfig });
    const agent = new HttpsAgent({ keepAlive: true });
    try {
      const all = JSON.parse((await cp.kubectl(['get', 'pods', '-A', '-o', 'json'])).stdout) as { items: unknown[] };
      assert.ok(all.items.length > 4);
      const pods = await listPaged(kube, 'list pods', '/api/v1/pods', (p) => p, agent, undefined, 2);
      assert.equal(pods.length, all.items.length, 'every pod, over several pages of 2');
      // The next page is asked for from the head of the answer: the API server's own answer names the token there.
      let head = '';
      const page = await rawRequest(kube, 'GET', '/api/v1/pods?limit=2', undefined, 30_000, 'application/json', agent, undefined, (h) => (head = h));
      const token = (page.body as { metadata: { continue?: string } }).metadata.continue;
      assert.ok(token, 'a first page of 2 has a continue token');
      assert.equal(continueInHead(head), token);
      const nodes = await listPaged(kube, 'list nodes', '/api/v1/nodes', (n) => n, agent, undefined, 1);
      assert.equal(nodes.length, 3);
      assert.deepEqual(await listPaged(kube, 'list nothing', '/apis/example.com/v1/nothings', (n) => n, agent, []), [], 'a collection not served is empty');
    } finally {
      agent.destroy();
    }
  });

  it('plan orders the workers first and the control plane last, with what each drain evicts', async () => {
    const r = await plugin('plan', '-o', 'json');
    assert.equal(r.code, 0, r.stderr);
    const plan = JSON.parse(r.stdout) as PlannedNode[];
    assert.deepEqual(plan.map((p) => p.node), ['kind-worker', 'kind-worker2', 'kind-control-plane']);
    assert.equal(plan[0]!.evicts.length + plan[1]!.evicts.length, 10, 'the workers hold the 10 nginx pods');
    assert.deepEqual(plan[2]!.evicts, [], 'nothing to evict on the tainted control plane');
    assert.deepEqual(plan.map((p) => p.blockers.length), [0, 0, 0]);
    const waves = JSON.parse((await plugin('plan', '--max-unavailable', '2', '-o', 'json')).stdout) as PlannedNode[];
    assert.deepEqual(waves.map((p) => p.wave), [1, 1, 2]);
  });

  it('plan names a PodDisruptionBudget that blocks a drain now', async () => {
    await cp.kubectl(['create', 'poddisruptionbudget', 'strict', '--selector', 'app=nginx', '--max-unavailable', '0']);
    try {
      // The budget blocks once the disruption controller has computed its status.
      let plan: PlannedNode[] = [];
      for (let i = 0; i < 40; i++) {
        plan = JSON.parse((await plugin('plan', '-o', 'json')).stdout) as PlannedNode[];
        if (plan[0]!.blockers.length) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      assert.match(plan[0]!.blockers.join(), /PodDisruptionBudget default\/strict allows no disruption now/);
      const table = await plugin('plan');
      assert.match(table.stdout, /would stop on a blocker now/);
    } finally {
      await cp.kubectl(['delete', 'pdb', 'strict']);
    }
  });

  it('run, killed on the second node, resumes with the nodes left and never redoes the first', async () => {
    const killed = await runPlugin([...runArgs, '--kubeconfig', operator], { env: { ...env(), CILIUM_MIGRATE_TEST_KILL_AT: 'kind-worker2/drain:done' } });
    assert.equal(killed.signal, 'SIGKILL', killed.stderr);
    assert.match(killed.stderr, /migrating 3 nodes in this order: kind-worker, kind-worker2, kind-control-plane/);
    const resumed = await plugin(...runArgs, '-o', 'json');
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, /migrating 2 nodes in this order: kind-worker2, kind-control-plane/);
    assert.doesNotMatch(resumed.stderr, /\[kind-worker\]/, 'kind-worker is not touched again');
    const results = JSON.parse(resumed.stdout) as { node: string; steps: { step: string; outcome: string }[] }[];
    assert.deepEqual(results.map((r) => r.node), ['kind-worker2', 'kind-control-plane']);
    assert.equal(results[0]!.steps.find((s) => s.step === 'drain')?.outcome, 'done-before');
  });

  it('status reports every node migrated, and run has nothing left to do', async () => {
    const r = await plugin('status', '-o', 'wide');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^3 of 3 nodes migrated, /m);
    assert.match(r.stdout, /LEGACY CIDR\s+CILIUM CIDR\s+CORDONED/);
    assert.match(r.stdout, /^kind-worker\s+worker\s+migrated\s+cilium\s/m);
    const again = await plugin(...runArgs);
    assert.equal(again.code, 0);
    assert.match(again.stderr, /every node is migrated: nothing to do/);
  });

  /**
   * Runs the plugin's rollback while playing the kubelet's part for its privileged restore pod,
   * which kwok would leave Running forever: checks what it would run, then reports it Succeeded.
   */
  async function rollbackWithKubelet(node: string, extraEnv: NodeJS.ProcessEnv = {}) {
    const stop = new AbortController();
    const kubelet = (async () => {
      while (!stop.signal.aborted) {
        const pods = await cp.get<{ items: { metadata: { name: string }; spec: { nodeName: string; containers: { command: string[] }[] }; status: { phase?: string } }[] }>('/api/v1/namespaces/kube-system/pods?labelSelector=app.kubernetes.io/name%3Dcilium-migrate-host-command');
        for (const p of pods.items.filter((x) => x.status.phase === 'Running')) {
          assert.equal(p.spec.nodeName, node);
          assert.match(p.spec.containers[0]!.command.join(' '), /rm -f 05-cilium\.conflist.*mv -f "\$f" "\$\{f%\.cilium_bak\}"/s);
          await cp.kubectl(['-n', 'kube-system', 'patch', 'pod', p.metadata.name, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { phase: 'Succeeded' } })]);
        }
        await new Promise((r) => setTimeout(r, 300));
      }
    })();
    try {
      return await runPlugin(['rollback', node, '--restart', 'none', '-o', 'json', '--kubeconfig', operator], { env: { ...env(), ...extraEnv } });
    } finally {
      stop.abort();
      await kubelet;
    }
  }

  // kwok gives pods addresses from the node's podCIDR whatever its CNI, so for a rollback the
  // CiliumNode gets a range of its own, as it has on a real cluster: verify must see a legacy IP.
  const ciliumRange = (node: string, cidr: string) => cp.kubectl(['patch', 'ciliumnode', node, '--type=merge', '-p', JSON.stringify({ spec: { ipam: { podCIDRs: [cidr] } } })]);
  const nodeObject = (name: string) => cp.get<{ metadata: { labels: Record<string, string>; annotations: Record<string, string> }; spec: { unschedulable?: boolean; podCIDR: string } }>(`/api/v1/nodes/${name}`);

  it('rollback --dry-run prints each of its steps and why, and changes nothing', async () => {
    const before = JSON.stringify(await nodeObject('kind-worker'), ['metadata', 'labels', 'annotations', 'spec', 'unschedulable']);
    const r = await plugin('rollback', 'kind-worker', '--restart', 'none', '--dry-run', '-o', 'json');
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout) as { result: string; steps: { step: string; outcome: string; message: string }[] };
    assert.equal(result.result, 'dry-run');
    const steps = ['cordon', 'drain', 'unlabel', 'restart-agent', 'restore-cni', 'restart-node', 'verify', 'uncordon'];
    assert.deepEqual(result.steps.map((s) => s.step), steps);
    const why = new Map(result.steps.map((s) => [s.step, s.message]));
    assert.match(why.get('cordon')!, /cordon kind-worker/);
    assert.match(why.get('unlabel')!, /remove io\.cilium\.migration\/cilium-default/);
    assert.match(why.get('restore-cni')!, /privileged pod .* on kind-worker/);
    assert.match(why.get('verify')!, /legacy network/);
    for (const s of steps) assert.match(r.stderr, new RegExp(`\\[kind-worker\\] ${s}: `), `the log names ${s}`);
    assert.equal(JSON.stringify(await nodeObject('kind-worker'), ['metadata', 'labels', 'annotations', 'spec', 'unschedulable']), before, 'the node is unchanged');
    const hostPods = await cp.get<{ items: unknown[] }>('/api/v1/namespaces/kube-system/pods?labelSelector=app.kubernetes.io/name%3Dcilium-migrate-host-command');
    assert.deepEqual(hostPods.items, [], 'no privileged pod was started');
  });

  it('rollback returns a migrated node to the legacy CNI', async () => {
    await ciliumRange('kind-worker', '10.245.1.0/24');
    const r = await rollbackWithKubelet('kind-worker');
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout) as { steps: { step: string; outcome: string; message: string }[] };
    assert.deepEqual(result.steps.map((s) => s.step), ['cordon', 'drain', 'unlabel', 'restart-agent', 'restore-cni', 'restart-node', 'verify', 'uncordon']);
    assert.match(result.steps.find((s) => s.step === 'verify')!.message, /a new pod got 10\.244\.\d+\.\d+, inside the legacy 10\.244\./);
    const node = await nodeObject('kind-worker');
    assert.equal(node.metadata.labels['io.cilium.migration/cilium-default'], undefined);
    assert.deepEqual(Object.keys(node.metadata.annotations).filter((k) => k.startsWith('cilium-migrate.io/')), []);
    assert.equal(node.spec.unschedulable, undefined, 'uncordoned: the rollback had cordoned it');
    const status = JSON.parse((await plugin('status', '-o', 'json')).stdout) as ClusterStatus;
    assert.deepEqual(status.nodes.map((n) => [n.node, n.phase, n.overlay]), [['kind-control-plane', 'migrated', 'cilium'], ['kind-worker', 'pending', 'legacy'], ['kind-worker2', 'migrated', 'cilium']]);
  });

  it('rollback, SIGKILLed after restoring the CNI config, resumes there; a node cordoned by hand stays cordoned', async () => {
    await ciliumRange('kind-worker2', '10.245.2.0/24');
    await cp.kubectl(['cordon', 'kind-worker2']);
    const killed = await rollbackWithKubelet('kind-worker2', { CILIUM_MIGRATE_TEST_KILL_AT: 'kind-worker2/rollback-restore-cni:done' });
    assert.equal(killed.signal, 'SIGKILL', killed.stderr);
    assert.match((await nodeObject('kind-worker2')).metadata.annotations['cilium-migrate.io/phase'] ?? '', /^rollback-restart-node$/);
    const resumed = await rollbackWithKubelet('kind-worker2');
    assert.equal(resumed.code, 0, resumed.stderr);
    const steps = (JSON.parse(resumed.stdout) as { steps: { step: string; outcome: string; message: string }[] }).steps;
    assert.deepEqual(steps.filter((s) => s.outcome === 'done-before').map((s) => s.step), ['cordon', 'drain', 'unlabel', 'restart-agent', 'restore-cni']);
    assert.equal(steps.find((s) => s.step === 'uncordon')!.outcome, 'not-needed');
    assert.equal((await nodeObject('kind-worker2')).spec.unschedulable, true, 'still cordoned, as its operator left it');
    await cp.kubectl(['uncordon', 'kind-worker2']);
  });

  it('finalize refuses while a node is not migrated', async () => {
    const r = await plugin('finalize', '--yes');
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, /finalize refused: not migrated: kind-worker \(pending\), kind-worker2 \(pending\)/);
    assert.equal((await cp.kubectl(['-n', 'kube-system', 'get', 'ciliumnodeconfig', 'cilium-default', '-o', 'name'])).stdout.trim(), 'ciliumnodeconfig.cilium.io/cilium-default');
  });

  it('finalize refuses while Cilium has the migration values, then removes the CiliumNodeConfig, the labels and Flannel', async () => {
    for (const n of ['kind-worker', 'kind-worker2']) await ciliumRange(n, (await nodeObject(n)).spec.podCIDR);
    const again = await plugin(...runArgs);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /migrating 2 nodes in this order: kind-worker, kind-worker2/, 'rolled-back nodes are pending again');

    const early = await plugin('finalize', '--yes');
    assert.equal(early.code, 6, early.stderr);
    assert.match(early.stderr, /still runs with the migration's values/);
    assert.match(early.stdout, /customConf: false/, 'the final values are printed');

    // What `helm upgrade` with the final values does to cilium-config.
    await cp.kubectl(['-n', 'kube-system', 'patch', 'configmap', 'cilium-config', '--type=merge', '-p', JSON.stringify({ data: { 'custom-cni-conf': 'false' } })]);
    const dry = await plugin('finalize', '--yes', '--dry-run', '-o', 'json');
    assert.equal(dry.code, 0, dry.stderr);
    const planned = JSON.parse(dry.stdout) as { steps: { step: string; outcome: string; message: string }[]; legacyObjects: string[] };
    assert.deepEqual(planned.steps.map((s) => [s.step, s.outcome]), [['check', 'applied'], ['final-values', 'done-before'], ['delete-node-config', 'would-apply'], ['unlabel-nodes', 'would-apply'], ['remove-legacy-cni', 'would-apply']]);
    assert.match(planned.steps.find((s) => s.step === 'delete-node-config')!.message, /delete CiliumNodeConfig kube-system\/cilium-default/);
    assert.match(planned.steps.find((s) => s.step === 'remove-legacy-cni')!.message, /delete 3 objects of flannel/);
    for (const s of planned.steps) assert.match(dry.stderr, new RegExp(`^${s.step}: `, 'm'), `the log names ${s.step}`);
    assert.equal((await cp.kubectl(['-n', 'kube-system', 'get', 'ciliumnodeconfig', 'cilium-default', '-o', 'name'])).stdout.trim(), 'ciliumnodeconfig.cilium.io/cilium-default', 'a dry run deletes nothing');
    assert.equal((await cp.kubectl(['-n', 'kube-flannel', 'get', 'daemonset', 'kube-flannel-ds', '-o', 'name'])).stdout.trim(), 'daemonset.apps/kube-flannel-ds');
    assert.equal((await nodeObject('kind-worker')).metadata.labels['io.cilium.migration/cilium-default'], 'true', 'the nodes keep their label');
    await assert.rejects(cp.kubectl(['-n', 'kube-system', 'get', 'configmap', 'cilium-migrate-finalize']), /NotFound/, 'finalize recorded nothing');

    const r = await plugin('finalize', '--yes', '-o', 'json');
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout) as { steps: { step: string; outcome: string }[]; cleanup: string[]; legacyObjects: string[] };
    assert.deepEqual(result.steps.map((s) => [s.step, s.outcome]), [['check', 'applied'], ['final-values', 'done-before'], ['delete-node-config', 'applied'], ['unlabel-nodes', 'applied'], ['remove-legacy-cni', 'applied']]);
    // What this cluster's Flannel is made of (a DaemonSet and its net-conf.json, alone in kube-flannel), no more.
    assert.deepEqual(result.legacyObjects, ['DaemonSet kube-flannel/kube-flannel-ds', 'ConfigMap kube-flannel/kube-flannel-cfg', 'Namespace kube-flannel']);
    assert.ok(result.cleanup.some((c) => /flannel\.1/.test(c)), 'the per-node cleanup is named');
    await assert.rejects(cp.kubectl(['-n', 'kube-system', 'get', 'ciliumnodeconfig', 'cilium-default']), /NotFound/);
    await assert.rejects(cp.kubectl(['-n', 'kube-flannel', 'get', 'daemonset', 'kube-flannel-ds']), /NotFound/);
    const nodes = await cp.get<{ items: { metadata: { labels: Record<string, string>; annotations: Record<string, string> } }[] }>('/api/v1/nodes');
    for (const n of nodes.items) {
      assert.equal(n.metadata.labels['io.cilium.migration/cilium-default'], undefined);
      assert.deepEqual(Object.entries(n.metadata.annotations).filter(([k]) => k.startsWith('cilium-migrate.io/')), [['cilium-migrate.io/phase', 'finalized']]);
    }
    // Without the label, the phase is what says the nodes are on Cilium for good.
    const status = await plugin('status', '-o', 'json');
    assert.deepEqual((JSON.parse(status.stdout) as ClusterStatus).nodes.map((n) => [n.phase, n.overlay]), [['migrated', 'cilium'], ['migrated', 'cilium'], ['migrated', 'cilium']]);
    assert.match((await plugin('status')).stdout, /^3 of 3 nodes migrated, /m);
    assert.match((await plugin(...runArgs)).stderr, /every node is migrated: nothing to do/);
  });

  it('finalize again changes nothing, and rollback is refused after finalize', async () => {
    const again = await plugin('finalize', '--yes', '-o', 'json');
    assert.equal(again.code, 0, again.stderr);
    assert.ok((JSON.parse(again.stdout) as { steps: { outcome: string }[] }).steps.every((s) => s.outcome === 'done-before'), again.stdout);
    const r = await plugin('rollback', 'kind-worker2', '--restart', 'none');
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, /the migration was finalized/);
  });
});
