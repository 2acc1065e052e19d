// A cluster shaped like kubeadm with Calico, Cilium installed in its own namespace `cilium`: Calico's
// real CRDs (from the projectcalico/calico module), an IPPool 192.168.0.0/16 with IP-in-IP, calico-node
// as calico.yaml makes it (no IP_AUTODETECTION_METHOD), nginx pods with Calico addresses (kwok hands
// them out of the nodes' 192.168.x.0/24, as the control plane's cluster CIDR is Calico's pool), and
// CiliumNodes with 10.245.x.0/24. status counts the pods as legacy (they were "unknown" when only
// 10.244/16 and spec.podCIDR counted), finalize refuses while they exist, preflight names the
// autodetection fix (which works: applied, the warning goes), every command honours
// --cilium-namespace; with the Tigera operator's Installation, preflight's fix is the Installation
// patch and finalize deletes the Installation, not calico-node; without it finalize deletes exactly
// what calico.yaml created, after listing it, and only with --yes.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import type { FinalizeResult } from '../../cmd/finalize.js';
import type { ClusterStatus, PlannedNode } from '../../cmd/migration/cluster-view.js';
import type { Check } from '../../cmd/migration/preflight.js';
import { stateAnnotation } from '../../lib/node-state.js';
import { installCalicoCrds } from '../../lab/calico-crds.js';
import { createSimulatedNodes, installCiliumCrds, kindNodes } from '../../lab/cluster-objects.js';
import { startControlPlane, type ControlPlane } from '../../lab/control-plane.js';
import { ExitCode } from '../../lib/errors.js';
import { ciliumStandIn, createAgentDaemonSet, deploymentsAvailable } from '../harness/migration-cluster.js';
import { repoRoot, runPlugin } from '../harness/plugin.js';
import { progress } from '../harness/shared-cluster.js';
import { eventually } from '../harness/wait.js';

const execFileAsync = promisify(execFile);
const nodes = ['kind-control-plane', 'kind-worker', 'kind-worker2'];

/** calico.yaml's calico-node (projectcalico/calico manifests/), its account, RBAC and config, and calico-kube-controllers. */
const calicoManifest = `
apiVersion: v1
kind: ServiceAccount
metadata: {name: calico-node, namespace: kube-system}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: calico-kube-controllers, namespace: kube-system}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: calico-cni-plugin, namespace: kube-system}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: calico-config, namespace: kube-system}
data: {calico_backend: bird, veth_mtu: "0"}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: calico-node}
rules: [{apiGroups: [""], resources: [nodes, pods], verbs: [get, list, watch]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: calico-node}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: calico-node}
subjects: [{kind: ServiceAccount, name: calico-node, namespace: kube-system}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: calico-kube-controllers}
rules: [{apiGroups: [""], resources: [nodes], verbs: [watch, list, get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: calico-kube-controllers}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: calico-kube-controllers}
subjects: [{kind: ServiceAccount, name: calico-kube-controllers, namespace: kube-system}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: calico-node, namespace: kube-system, labels: {k8s-app: calico-node}}
spec:
  selector: {matchLabels: {k8s-app: calico-node}}
  template:
    metadata: {labels: {k8s-app: calico-node}}
    spec:
      hostNetwork: true
      serviceAccountName: calico-node
      tolerations: [{operator: Exists}]
      containers:
      - name: calico-node
        image: docker.io/calico/node:v3.28.5
        env:
        - {name: DATASTORE_TYPE, value: kubernetes}
        - {name: CALICO_NETWORKING_BACKEND, valueFrom: {configMapKeyRef: {name: calico-config, key: calico_backend}}}
        - {name: IP, value: autodetect}
        - {name: CALICO_IPV4POOL_IPIP, value: Always}
        - {name: CALICO_IPV4POOL_VXLAN, value: Never}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: calico-kube-controllers, namespace: kube-system, labels: {k8s-app: calico-kube-controllers}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: calico-kube-controllers}}
  template:
    metadata: {labels: {k8s-app: calico-kube-controllers}}
    spec:
      serviceAccountName: calico-kube-controllers
      tolerations: [{operator: Exists}]
      containers: [{name: calico-kube-controllers, image: docker.io/calico/kube-controllers:v3.28.5}]
---
apiVersion: crd.projectcalico.org/v1
kind: IPPool
metadata: {name: default-ipv4-ippool}
spec: {cidr: 192.168.0.0/16, ipipMode: Always, vxlanMode: Never, natOutgoing: true, blockSize: 26, nodeSelector: all()}
`;

/** Cilium installed by its chart into the namespace `cilium`, in migration mode. */
const ciliumInItsNamespace = `
apiVersion: v1
kind: Namespace
metadata: {name: cilium}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cilium-config, namespace: cilium}
data: {custom-cni-conf: "true", ipam: cluster-pool, cluster-pool-ipv4-cidr: 10.245.0.0/16, routing-mode: tunnel, tunnel-protocol: vxlan, tunnel-port: "8473"}
---${ciliumStandIn({ namespace: 'cilium' })}---
apiVersion: v1
kind: Namespace
metadata: {name: cilium-migrate}
`;

/** What the decoys must survive: things that merely mention a CNI by name. */
const decoys = `
apiVersion: v1
kind: Namespace
metadata: {name: monitoring}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: flannel-exporter, namespace: monitoring}
spec:
  selector: {matchLabels: {app: flannel-exporter}}
  template:
    metadata: {labels: {app: flannel-exporter}}
    spec: {hostNetwork: true, tolerations: [{operator: Exists}], containers: [{name: exporter, image: quay.io/prometheus/node-exporter:v1.8.0}]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: calico-node-viewers}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: calico-node}
subjects: [{kind: User, name: auditor}]
`;

describe('Calico with the Tigera operator or calico.yaml, Cilium in the namespace cilium', () => {
  let cp: ControlPlane;
  const env = () => ({ PATH: process.env.PATH ?? '', HOME: cp.rootDir });
  const plugin = (...args: string[]) => runPlugin([...args, '--kubeconfig', cp.kubeconfig], { env: env() });
  const inCilium = ['--cilium-namespace', 'cilium'];
  const checks = (stdout: string) => new Map((JSON.parse(stdout) as Check[]).map((c) => [c.name, c]));
  /** Runs a kubectl command line as the plugin prints it, against this control plane. */
  const runFix = async (command: string) => {
    assert.match(command, /^kubectl /);
    await execFileAsync('sh', ['-c', command.replace(/^kubectl /, `${join(cp.binDir, 'kubectl')} --kubeconfig=${cp.kubeconfig} `)]);
  };
  const markMigrated = async () => {
    const state = { v: 1, startedBy: 'r', lastRun: 'r', startedAt: '2026-01-01T00:00:00Z', wasUnschedulable: false, cordonedByUs: true, bootID: 'b', steps: {}, migratedAt: '2026-01-01T00:10:00Z' };
    for (const n of nodes) await cp.kubectl(['annotate', 'node', n, '--overwrite', `${stateAnnotation}=${JSON.stringify(state)}`, 'cilium-migrate.io/phase=migrated']);
  };
  const nginxPods = async () => (await cp.get<{ items: { metadata: { name: string }; spec: { nodeName?: string }; status: { podIP?: string } }[] }>('/api/v1/namespaces/default/pods?labelSelector=app%3Dnginx')).items;

  before(async () => {
    // Calico's default pool is the cluster CIDR: kwok hands pods addresses from it, as Calico would.
    cp = await startControlPlane({ progress, clusterCidr: '192.168.0.0/16' });
    try {
      await installCiliumCrds(cp);
      await installCalicoCrds(cp);
      await createSimulatedNodes(cp, kindNodes(2));
      await cp.kubectl(['apply', '-f', '-'], { input: calicoManifest });
      await cp.kubectl(['apply', '-f', '-'], { input: ciliumInItsNamespace });
      await cp.kubectl(['apply', '-f', '-'], { input: decoys });
      for (const [i, n] of nodes.entries()) {
        await cp.kubectl(['apply', '--server-side', '-f', '-'], { input: JSON.stringify({ apiVersion: 'cilium.io/v2', kind: 'CiliumNode', metadata: { name: n }, spec: { ipam: { podCIDRs: [`10.245.${i}.0/24`] } } }) });
      }
      const cnc = (await execFileAsync('sed', ['s/namespace: kube-system/namespace: cilium/', join(repoRoot, 'manifests', 'ciliumnodeconfig.yaml')])).stdout;
      await cp.kubectl(['apply', '--server-side', '-f', '-'], { input: cnc });
      await cp.kubectl(['create', 'deployment', 'nginx', '--image', 'nginx', '--replicas', '4']);
      await createAgentDaemonSet(cp, nodes.length);
      await eventually('nginx on Calico addresses', async () => ((await deploymentsAvailable(cp, 'default')) && (await nginxPods()).every((p) => p.status.podIP?.startsWith('192.168.')) ? true : undefined), 90_000);
    } catch (err) {
      await cp.stop();
      throw err;
    }
  });
  after(() => cp?.stop());

  it('preflight recognises Calico from calico-node and its IPPool, and names the autodetection fix, which works', async () => {
    const r = await plugin('preflight', ...inCilium, '-o', 'json');
    assert.ok(r.stdout, r.stderr);
    const c = checks(r.stdout);
    assert.equal(c.get('legacy CNI')!.result, 'pass', r.stdout);
    assert.equal(c.get('legacy CNI')!.detail, 'calico (DaemonSet kube-system/calico-node), pod CIDR 192.168.0.0/16 (IPPools (crd.projectcalico.org/v1)), IP-in-IP (IP protocol 4, no UDP port)');
    assert.equal(c.get('Calico node address')!.result, 'warn');
    assert.match(c.get('Calico node address')!.fix!, /^kubectl -n kube-system set env daemonset\/calico-node -c calico-node IP_AUTODETECTION_METHOD=kubernetes-internal-ip /);
    assert.equal(c.get('Cilium installed')!.detail, 'cilium-config found in cilium');
    assert.equal(c.get('Cilium version')!.detail, 'Cilium 1.18.0');
    assert.match(c.get('tunnel ports')!.detail, /Cilium VXLAN on UDP 8473; calico: IP-in-IP/);
    assert.equal(c.get('Cilium CIDR distinct')!.result, 'pass');
    // The exact command it names, run as printed, makes the warning go.
    await runFix(c.get('Calico node address')!.fix!.split('   (')[0]!);
    const again = checks((await plugin('preflight', ...inCilium, '-o', 'json')).stdout);
    assert.equal(again.get('Calico node address')!.result, 'pass', again.get('Calico node address')!.detail);
    assert.match(again.get('Calico node address')!.detail, /kubernetes-internal-ip, which cannot pick cilium_host/);
  });

  it('preflight without --cilium-namespace says where Cilium runs', async () => {
    const r = await plugin('preflight', '-o', 'json');
    assert.equal(r.code, ExitCode.precondition);
    const c = checks(r.stdout).get('Cilium installed')!;
    assert.equal(c.result, 'fail');
    assert.match(c.detail, /no cilium-config ConfigMap in kube-system; a Cilium DaemonSet runs in cilium/);
    assert.match(c.fix!, /--cilium-namespace cilium/);
  });

  it('status counts the Calico pods as legacy, none as other', async () => {
    const r = await plugin('status', ...inCilium, '-o', 'json');
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as ClusterStatus;
    const agents = nodes.length;
    assert.equal(s.summary.podsOnLegacy, 4 + agents + 1, 'the 4 nginx pods, the probe agents and calico-kube-controllers are on Calico');
    assert.equal(s.summary.podsOnCilium, 0);
    assert.equal(s.nodes.reduce((sum, n) => sum + n.pods.other, 0), 0);
    assert.deepEqual(s.nodes.map((n) => n.legacyCidrs), [['192.168.0.0/16'], ['192.168.0.0/16'], ['192.168.0.0/16']], 'Calico\'s pool, not the nodes\' spec.podCIDR');
    assert.deepEqual(s.notes, []);
    const plan = JSON.parse((await plugin('plan', ...inCilium, '-o', 'json')).stdout) as PlannedNode[];
    assert.deepEqual(plan.map((p) => p.node), ['kind-worker', 'kind-worker2', 'kind-control-plane']);
  });

  it('node and rollback work with Cilium in its namespace: its CiliumNodeConfig, agent pods, lock and host pods are there', async () => {
    const ciliumRange = (node: string, cidr: string) => cp.kubectl(['patch', 'ciliumnode', node, '--type=merge', '-p', JSON.stringify({ spec: { ipam: { podCIDRs: [cidr] } } })]);
    const agentPod = async () => (await cp.get<{ items: { metadata: { uid: string } }[] }>('/api/v1/namespaces/cilium/pods?labelSelector=k8s-app%3Dcilium&fieldSelector=spec.nodeName%3Dkind-worker')).items.map((p) => p.metadata.uid);
    const podCIDR = (await cp.get<{ spec: { podCIDR: string } }>('/api/v1/nodes/kind-worker')).spec.podCIDR;
    // kwok hands out addresses from spec.podCIDR whatever the CNI: after the switch that is the node's Cilium range.
    await ciliumRange('kind-worker', podCIDR);
    const before = await agentPod();
    const r = await plugin('node', 'kind-worker', ...inCilium, '--restart', 'none', '--gate', 'cluster-state', '--gate-rounds', '1', '--gate-interval', '1s');
    assert.equal(r.code, 0, r.stderr);
    const after = await agentPod();
    assert.equal(after.length, 1);
    assert.ok(!before.includes(after[0]!), 'the Cilium agent pod in the namespace cilium was replaced');
    await assert.rejects(cp.kubectl(['-n', 'kube-system', 'get', 'lease', 'cilium-migrate']), /NotFound/, 'no lock taken in kube-system');

    // Back to Calico: the node's Cilium range is its own again, so a new pod gets a legacy address.
    await ciliumRange('kind-worker', '10.245.1.0/24');
    const stop = new AbortController();
    const kubelet = (async () => {
      while (!stop.signal.aborted) {
        const pods = await cp.get<{ items: { metadata: { name: string }; status: { phase?: string } }[] }>('/api/v1/namespaces/cilium/pods?labelSelector=app.kubernetes.io/name%3Dcilium-migrate-host-command');
        for (const p of pods.items.filter((x) => x.status.phase === 'Running')) await cp.kubectl(['-n', 'cilium', 'patch', 'pod', p.metadata.name, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { phase: 'Succeeded' } })]);
        await new Promise((res) => setTimeout(res, 300));
      }
    })();
    try {
      const back = await plugin('rollback', 'kind-worker', ...inCilium, '--restart', 'none', '-o', 'json');
      assert.equal(back.code, 0, back.stderr);
      const steps = (JSON.parse(back.stdout) as { steps: { step: string; message: string }[] }).steps;
      assert.match(steps.find((x) => x.step === 'verify')!.message, /a new pod got 192\.168\.\d+\.\d+, inside the legacy/);
    } finally {
      stop.abort();
      await kubelet;
    }
    const s = JSON.parse((await plugin('status', ...inCilium, '-o', 'json')).stdout) as ClusterStatus;
    assert.equal(s.nodes.find((n) => n.node === 'kind-worker')!.phase, 'pending');
  });

  it('finalize refuses while pods are on Calico, naming them, even with every node migrated', async () => {
    await markMigrated();
    const r = await plugin('finalize', ...inCilium, '--yes');
    assert.equal(r.code, ExitCode.precondition, r.stderr);
    assert.match(r.stderr, /finalize refused: \d+ pods still on the legacy network: .*default\/nginx-[a-z0-9-]+ \(192\.168\.\d+\.\d+ on kind-worker2?\)/);
    assert.doesNotMatch(r.stderr, /not migrated/);
    assert.equal((await cp.kubectl(['-n', 'kube-system', 'get', 'daemonset', 'calico-node', '-o', 'name'])).stdout.trim(), 'daemonset.apps/calico-node');
  });

  describe('once every pod is on Cilium and Cilium has its final values', () => {
    before(async () => {
      // What the migration did to each node: its new pods have addresses from its CiliumNode.
      const all = await cp.get<{ items: { metadata: { name: string }; spec: { podCIDR: string } }[] }>('/api/v1/nodes');
      for (const n of all.items) await cp.kubectl(['patch', 'ciliumnode', n.metadata.name, '--type=merge', '-p', JSON.stringify({ spec: { ipam: { podCIDRs: [n.spec.podCIDR] } } })]);
      await cp.kubectl(['-n', 'cilium', 'patch', 'configmap', 'cilium-config', '--type=merge', '-p', JSON.stringify({ data: { 'custom-cni-conf': 'false' } })]);
    });

    it('with the Tigera operator: preflight\'s fix patches the Installation (accepted by its real CRD), finalize names and would delete only the Installation', async () => {
      const installation = { apiVersion: 'operator.tigera.io/v1', kind: 'Installation', metadata: { name: 'default' }, spec: { calicoNetwork: { ipPools: [{ name: 'default-ipv4-ippool', cidr: '192.168.0.0/16', encapsulation: 'VXLANCrossSubnet', blockSize: 26 }], nodeAddressAutodetectionV4: { firstFound: true } } } };
      await cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify(installation) });
      try {
        const c = checks((await plugin('preflight', ...inCilium, '-o', 'json')).stdout);
        assert.match(c.get('legacy CNI')!.detail, /^calico \(Tigera operator Installation default, DaemonSet kube-system\/calico-node\)/);
        const fix = c.get('Calico node address')!;
        assert.equal(fix.result, 'warn');
        assert.match(fix.fix!, /^kubectl patch installation default --type=merge -p '\{"spec":\{"calicoNetwork":\{"nodeAddressAutodetectionV4":\{"firstFound":null,"kubernetes":"NodeInternalIP"\}\}\}\}'/);
        await runFix(fix.fix!.split('   (')[0]!);
        const got = await cp.get<{ spec: { calicoNetwork: { nodeAddressAutodetectionV4: Record<string, unknown> } } }>('/apis/operator.tigera.io/v1/installations/default');
        assert.deepEqual(got.spec.calicoNetwork.nodeAddressAutodetectionV4, { kubernetes: 'NodeInternalIP' });
        assert.equal(checks((await plugin('preflight', ...inCilium, '-o', 'json')).stdout).get('Calico node address')!.result, 'pass');

        const dry = await plugin('finalize', ...inCilium, '--dry-run', '-o', 'json');
        assert.equal(dry.code, 0, dry.stderr);
        const planned = JSON.parse(dry.stdout) as FinalizeResult;
        assert.deepEqual(planned.legacyObjects, ['Installation default']);
        assert.match(planned.notes.join('\n'), /deleting Installation default makes the operator remove calico-node/);
        const table = await plugin('finalize', ...inCilium, '--dry-run');
        assert.match(table.stdout, /the legacy CNI's objects finalize would delete \(with --yes\):\n  Installation default\n/);
      } finally {
        await cp.kubectl(['delete', 'installation', 'default']);
      }
    });

    it('without the operator: finalize lists what calico.yaml created and deletes nothing without --yes', async () => {
      const r = await plugin('finalize', ...inCilium, '-o', 'json');
      assert.equal(r.code, 0, r.stderr);
      const result = JSON.parse(r.stdout) as FinalizeResult;
      assert.deepEqual(result.legacyObjects, [
        'DaemonSet kube-system/calico-node',
        'Deployment kube-system/calico-kube-controllers',
        'ConfigMap kube-system/calico-config',
        'ClusterRoleBinding calico-kube-controllers',
        'ClusterRoleBinding calico-node',
        'ClusterRole calico-kube-controllers',
        'ServiceAccount kube-system/calico-cni-plugin',
        'ServiceAccount kube-system/calico-kube-controllers',
        'ServiceAccount kube-system/calico-node',
      ]);
      assert.equal(result.steps.find((s) => s.step === 'remove-legacy-cni')!.outcome, 'skipped');
      assert.match(r.stderr, /finalize is not complete: the legacy CNI still runs; rerun with --yes/);
      await cp.kubectl(['-n', 'kube-system', 'get', 'daemonset', 'calico-node']);
      // The CiliumNodeConfig in Cilium's namespace went, and the record lives there.
      await assert.rejects(cp.kubectl(['-n', 'cilium', 'get', 'ciliumnodeconfig', 'cilium-default']), /NotFound/);
      await cp.kubectl(['-n', 'cilium', 'get', 'configmap', 'cilium-migrate-finalize']);
    });

    it('with --yes deletes exactly those, keeps the role another binding uses and every decoy, and suggests the second reboot', async () => {
      const r = await plugin('finalize', ...inCilium, '--yes', '-o', 'json');
      assert.equal(r.code, 0, r.stderr);
      const result = JSON.parse(r.stdout) as FinalizeResult;
      assert.equal(result.steps.find((s) => s.step === 'remove-legacy-cni')!.outcome, 'applied');
      assert.ok(result.cleanup.some((c) => /vxlan\.calico/.test(c)), 'the per-node cleanup is Calico\'s');
      assert.match(result.notes.join('\n'), /reboot every node once more/);
      for (const [ns, kind, name] of [['kube-system', 'daemonset', 'calico-node'], ['kube-system', 'deployment', 'calico-kube-controllers'], ['kube-system', 'configmap', 'calico-config'], ['kube-system', 'serviceaccount', 'calico-node'], ['', 'clusterrolebinding', 'calico-node']] as const) {
        await assert.rejects(cp.kubectl([...(ns ? ['-n', ns] : []), 'get', kind, name]), /NotFound/, `${kind} ${name} is deleted`);
      }
      // calico-node's ClusterRole stays: the auditors' binding uses it. The decoys stay.
      await cp.kubectl(['get', 'clusterrole', 'calico-node']);
      await cp.kubectl(['get', 'clusterrolebinding', 'calico-node-viewers']);
      await cp.kubectl(['-n', 'monitoring', 'get', 'daemonset', 'flannel-exporter']);
      await cp.kubectl(['-n', 'cilium', 'get', 'daemonset', 'cilium']);
      await cp.kubectl(['get', 'ippool', 'default-ipv4-ippool']);
      const status = JSON.parse((await plugin('status', ...inCilium, '-o', 'json')).stdout) as ClusterStatus;
      assert.deepEqual(status.nodes.map((n) => n.phase), ['migrated', 'migrated', 'migrated']);
      const again = await plugin('finalize', ...inCilium, '--yes', '-o', 'json');
      assert.equal(again.code, 0, again.stderr);
      assert.ok((JSON.parse(again.stdout) as FinalizeResult).steps.every((s) => s.outcome === 'done-before'), again.stdout);
    });
  });
});
