// The pure parts of prepare, plan waves and finalize: the node config (and its manifest), the
// served-version choice, manifest parsing, wave assignment, and what blocks finalize.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import type { NodeView } from '../../cmd/cluster/cluster.js';
import { stateAnnotation } from '../../lib/node-state.js';
import { finalizeSteps, finalOverlay, helmUpgradeArgs, requestDaemonSetRestart } from '../../cmd/engine/finalize.js';
import { k8s, type Kube } from '../../lib/kube.js';
import { clusterStatus, migrationPlan, planWaves, type ClusterSnapshot, type ViewPod } from '../../cmd/migration/cluster-view.js';
import { ciliumVersionFromImage, finalizeBlockers, stillInMigrationMode } from '../../cmd/migration/finalize.js';
import { ciliumNodeConfig, parseManifests, preferredNodeConfigVersion } from '../../cmd/migration/node-config.js';
import { defaultDrainFlags } from '../../cmd/cluster/drain-filter.js';
import { ExitCode, type CliError } from '../../lib/errors.js';

const node = (name: string, extra: Partial<NodeView> = {}): NodeView => ({
  name, uid: `uid-${name}`, unschedulable: false, labels: {}, annotations: {}, providerID: '', bootID: 'b', ready: true, podCIDRs: ['10.244.1.0/24'], controlPlane: false, ...extra,
});
const pod = (name: string, nodeName: string, ip: string, labels: Record<string, string> = { app: 'web' }, hostNetwork = false): ViewPod => ({
  namespace: 'default', name, node: nodeName, ip, hostNetwork, labels,
  raw: { metadata: { name, namespace: 'default', uid: `uid-${name}`, labels, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web', uid: 'rs', controller: true }] }, spec: { nodeName, containers: [] }, status: { phase: 'Running', podIP: ip } },
});
const snapshot = (nodes: NodeView[], pods: ViewPod[] = [], pdbs: ClusterSnapshot['pdbs'] = [], ciliumCidrs: Record<string, string[]> = {}): ClusterSnapshot => ({
  nodes, pods, pdbs, ciliumCidrs, daemonSets: new Set(), agents: {}, legacyCidrs: ['10.244.0.0/16'], ciliumClusterCidrs: ['10.245.0.0/16'],
});
const migrated = { [stateAnnotation]: JSON.stringify({ v: 1, startedBy: 'r', lastRun: 'r', startedAt: 't', wasUnschedulable: false, cordonedByUs: true, bootID: 'b', steps: {}, migratedAt: 't' }) };

describe('prepare', () => {
  it('builds the CiliumNodeConfig that manifests/ciliumnodeconfig.yaml holds', () => {
    const file = parse(readFileSync(join(import.meta.dirname, '..', '..', 'manifests', 'ciliumnodeconfig.yaml'), 'utf8')) as unknown;
    assert.deepEqual(ciliumNodeConfig({ version: 'v2' }), file);
  });

  it('selects on the label key it is given, in the version it is given', () => {
    const o = ciliumNodeConfig({ version: 'v2alpha1', labelKey: 'example.com/cilium', namespace: 'cilium' }) as unknown as { apiVersion: string; metadata: { namespace: string }; spec: { nodeSelector: { matchLabels: Record<string, string> } } };
    assert.equal(o.apiVersion, 'cilium.io/v2alpha1');
    assert.equal(o.metadata.namespace, 'cilium');
    assert.deepEqual(o.spec.nodeSelector.matchLabels, { 'example.com/cilium': 'true' });
  });

  const versions: [string[], string | undefined][] = [
    [['v2', 'v2alpha1'], 'v2'],
    [['v2alpha1'], 'v2alpha1'],
    [['v2'], 'v2'],
    [[], undefined],
  ];
  for (const [served, want] of versions) {
    it(`uses ${want ?? 'nothing'} when [${served.join(', ')}] are served`, () => assert.equal(preferredNodeConfigVersion(served), want));
  }

  it('parses multi-document manifests and Lists, and refuses a document that is not an object', () => {
    const objs = parseManifests('apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ServiceAccount, metadata: {name: b, namespace: a}}\n', 'f.yaml');
    assert.deepEqual(objs.map((o) => `${o.kind}/${o.metadata.name}`), ['Namespace/a', 'ServiceAccount/b']);
    assert.throws(() => parseManifests('just: text\n', 'f.yaml'), (e: CliError) => e.exitCode === ExitCode.precondition && /f\.yaml: a document without apiVersion/.test(e.message));
    assert.throws(() => parseManifests('a: [\n', 'f.yaml'), (e: CliError) => /not valid YAML/.test(e.message));
  });
});

describe('plan waves', () => {
  const workers = ['w1', 'w2', 'w3', 'w4', 'w5'].map((n) => node(n));
  const cp = node('cp', { controlPlane: true });

  it('groups nodes in plan order into waves of max-unavailable, control-plane nodes in waves of their own', () => {
    const plan = migrationPlan(snapshot([cp, ...workers]), defaultDrainFlags, 2, new Date());
    assert.deepEqual(planWaves(plan), [['w1', 'w2'], ['w3', 'w4'], ['w5'], ['cp']]);
  });

  it('never puts more pods of a budget in one wave than the budget may disrupt', () => {
    const pods = [pod('a', 'w1', '10.244.1.2'), pod('b', 'w2', '10.244.2.2'), pod('c', 'w3', '10.244.3.2'), pod('x', 'w4', '10.244.4.2', { app: 'other' })];
    const pdbs = [{ namespace: 'default', name: 'web', selector: { matchLabels: { app: 'web' } }, disruptionsAllowed: 2 }];
    const plan = migrationPlan(snapshot(workers, pods, pdbs), defaultDrainFlags, 5, new Date());
    assert.deepEqual(planWaves(plan), [['w1', 'w2'], ['w3', 'w4', 'w5']]);
    assert.deepEqual(plan.map((p) => p.blockers), [[], [], [], [], []]);
  });

  it('names a budget that allows no disruption as a blocker and keeps its nodes apart', () => {
    const pods = [pod('a', 'w1', '10.244.1.2'), pod('b', 'w2', '10.244.2.2')];
    const pdbs = [{ namespace: 'default', name: 'web', selector: { matchLabels: { app: 'web' } }, disruptionsAllowed: 0 }];
    const plan = migrationPlan(snapshot(workers.slice(0, 2), pods, pdbs), defaultDrainFlags, 5, new Date());
    assert.deepEqual(planWaves(plan), [['w1'], ['w2']]);
    assert.match(plan[0]!.blockers.join(), /PodDisruptionBudget default\/web allows no disruption now \(1 pod on the node\)/);
  });

  it('leaves migrated nodes out', () => {
    const plan = migrationPlan(snapshot([node('w1', { annotations: migrated }), node('w2')]), defaultDrainFlags, 5, new Date());
    assert.deepEqual(plan.map((p) => p.node), ['w2']);
  });
});

describe('status', () => {
  it('counts Calico pods as legacy (they were "other" while only 10.244/16 and spec.podCIDR counted)', () => {
    const pods = [pod('c1', 'w1', '192.168.3.7'), pod('c2', 'w1', '192.168.9.1'), pod('n', 'w1', '10.245.1.9'), pod('h', 'w1', '172.18.0.2', {}, true)];
    const snap = { ...snapshot([node('w1')], pods, [], { w1: ['10.245.1.0/24'] }), legacyCidrs: ['192.168.0.0/16'] };
    const st = clusterStatus(snap, 'io.cilium.migration/cilium-default');
    assert.deepEqual(st.nodes[0]!.pods, { legacy: 2, cilium: 1, other: 0 });
    assert.equal(st.summary.podsOnLegacy, 2);
    assert.deepEqual(st.notes, []);
  });

  it('shows Calico\'s pools as a node\'s legacy CIDRs, and Flannel\'s per-node spec.podCIDR', () => {
    const calico = { ...snapshot([node('w1')]), legacyCidrs: ['192.168.0.0/16'], legacy: { kind: 'calico' as const, pools: ['192.168.0.0/16'], tunnels: [] } };
    assert.deepEqual(clusterStatus(calico, 'k').nodes[0]!.legacyCidrs, ['192.168.0.0/16']);
    const flannel = { ...snapshot([node('w1')]), legacy: { kind: 'flannel' as const, pools: ['10.244.0.0/16'], tunnels: [] } };
    assert.deepEqual(clusterStatus(flannel, 'k').nodes[0]!.legacyCidrs, ['10.244.1.0/24']);
  });
});

describe('finalize', () => {
  it('refuses while a node is not migrated', () => {
    assert.deepEqual(finalizeBlockers(snapshot([node('w1', { annotations: migrated }), node('w2')])), ['not migrated: w2 (pending)']);
  });

  it('refuses while a pod is on the legacy network, not for host-network pods or pods on Cilium', () => {
    const pods = [pod('old', 'w1', '10.244.1.7'), pod('host', 'w1', '172.18.0.2', {}, true), pod('new', 'w1', '10.245.1.9'), pod('pending', 'w1', '')];
    assert.deepEqual(finalizeBlockers(snapshot([node('w1', { annotations: migrated })], pods)), ['1 pod still on the legacy network: default/old (10.244.1.7 on w1)']);
  });

  it('refuses while a Calico pod (192.168.0.0/16, outside node.spec.podCIDR) is left, naming it', () => {
    const pods = [pod('calico', 'w1', '192.168.3.7'), pod('new', 'w1', '10.245.1.9')];
    const snap = { ...snapshot([node('w1', { annotations: migrated })], pods, [], { w1: ['10.245.1.0/24'] }), legacyCidrs: ['192.168.0.0/16'] };
    assert.deepEqual(finalizeBlockers(snap), ['1 pod still on the legacy network: default/calico (192.168.3.7 on w1)']);
  });

  it('refuses while an AWS-CNI pod (a VPC address, no legacy CIDR known) is left', () => {
    const pods = [pod('vpc', 'w1', '172.31.20.9')];
    const snap = { ...snapshot([node('w1', { annotations: migrated })], pods, [], { w1: ['10.245.1.0/24'] }), legacyCidrs: [] };
    assert.deepEqual(finalizeBlockers(snap), ['1 pod still on the legacy network: default/vpc (172.31.20.9 on w1)']);
  });

  it('says when a pod it counts as legacy lies outside the legacy CNI\'s CIDRs (Cilium\'s CIDRs not found?)', () => {
    const pods = [pod('stray', 'w1', '10.0.3.4')];
    const blockers = finalizeBlockers(snapshot([node('w1', { annotations: migrated })], pods));
    assert.equal(blockers.length, 2);
    assert.match(blockers[1]!, /1 pod counted on the legacy network is outside the legacy CNI's pod CIDRs \(10\.244\.0\.0\/16\): default\/stray 10\.0\.3\.4; .*check --cilium-namespace/);
  });

  it('counts a pod inside its node\'s CiliumNode CIDRs as on Cilium', () => {
    const pods = [pod('p', 'w1', '10.244.1.7')];
    assert.deepEqual(finalizeBlockers(snapshot([node('w1', { annotations: migrated })], pods, [], { w1: ['10.244.1.0/24'] })), []);
  });

  it('knows Cilium is still in migration mode from custom-cni-conf', () => {
    assert.equal(stillInMigrationMode({ 'custom-cni-conf': 'true' }), true);
    assert.equal(stillInMigrationMode({ 'custom-cni-conf': 'false' }), false);
    assert.equal(stillInMigrationMode({}), false);
    assert.equal(stillInMigrationMode(undefined), false);
  });

  const images: [string, string | undefined][] = [
    ['quay.io/cilium/cilium:v1.16.3', '1.16.3'],
    ['quay.io/cilium/cilium:v1.18.0@sha256:abc', '1.18.0'],
    ['localhost:5000/cilium:1.15', '1.15'],
    ['quay.io/cilium/cilium@sha256:abc', undefined],
    ['quay.io/cilium/cilium:latest', undefined],
  ];
  for (const [image, want] of images) {
    it(`reads Cilium ${want ?? 'no version'} from ${image}`, () => assert.equal(ciliumVersionFromImage(image), want));
  }
});

describe('finalize --apply: the cluster pool and tunnel port of the final values', () => {
  // The upgrade reuses the release's values and these override them: the seed's defaults would move
  // a cluster installed with others (10.200.0.0/16, UDP 8666, as make demo can) to 10.245.0.0/16 and 8473.
  const cases: [string, { ciliumCidr?: string; tunnelPort?: number }, Record<string, string> | undefined, { ciliumCidr: string; tunnelPort: number }][] = [
    ['cilium-config\'s, without flags', {}, { 'cluster-pool-ipv4-cidr': '10.200.0.0/16', 'tunnel-port': '8666', 'tunnel-protocol': 'vxlan' }, { ciliumCidr: '10.200.0.0/16', tunnelPort: 8666 }],
    ['the first IPv4 pool of a dual-stack cilium-config', {}, { 'cluster-pool-ipv4-cidr': '10.200.0.0/16 10.201.0.0/16', 'cluster-pool-ipv6-cidr': 'fd00::/104' }, { ciliumCidr: '10.200.0.0/16', tunnelPort: 8472 }],
    ['the flags over cilium-config', { ciliumCidr: '10.210.0.0/16', tunnelPort: 8777 }, { 'cluster-pool-ipv4-cidr': '10.200.0.0/16', 'tunnel-port': '8666' }, { ciliumCidr: '10.210.0.0/16', tunnelPort: 8777 }],
    ['the seed\'s without cilium-config', {}, undefined, { ciliumCidr: '10.245.0.0/16', tunnelPort: 8473 }],
    ['the seed\'s port in native routing', {}, { 'routing-mode': 'native', 'cluster-pool-ipv4-cidr': '10.200.0.0/16' }, { ciliumCidr: '10.200.0.0/16', tunnelPort: 8473 }],
  ];
  for (const [what, opts, config, want] of cases) it(what, () => assert.deepEqual(finalOverlay(opts, config), want));
});

describe('finalize as a list of steps', () => {
  it('checks first without recording anything, and cleans the nodes only when asked and the legacy CNI is known', () => {
    const names = (cleanupNodes: boolean, kind?: 'flannel') => finalizeSteps({ cleanupNodes }, kind).map((s) => s.name);
    assert.deepEqual(names(false, 'flannel'), ['check', 'final-values', 'delete-node-config', 'unlabel-nodes', 'remove-legacy-cni']);
    assert.deepEqual(names(true, 'flannel'), ['check', 'final-values', 'delete-node-config', 'unlabel-nodes', 'remove-legacy-cni', 'cleanup-nodes']);
    assert.deepEqual(names(true), ['check', 'final-values', 'delete-node-config', 'unlabel-nodes', 'remove-legacy-cni']);
    assert.equal(finalizeSteps({ cleanupNodes: false }, undefined)[0]!.readOnly, true);
  });

  it('--apply restarts the agents with a merge patch of the pod template (a JSON patch body is refused with 400)', async () => {
    const calls: { req: unknown; options: k8s.ConfigurationOptions | undefined }[] = [];
    const apps = { patchNamespacedDaemonSet: async (req: unknown, options?: k8s.ConfigurationOptions) => (calls.push({ req, options }), {}) } as unknown as Kube['apps'];
    await requestDaemonSetRestart({ apps, server: 'https://lab' }, 'kube-system', 'cilium', new Date('2026-11-25T22:00:00Z'));
    assert.equal(calls.length, 1);
    assert.deepEqual(calls[0]!.req, { namespace: 'kube-system', name: 'cilium', body: { spec: { template: { metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': '2026-11-25T22:00:00.000Z' } } } } } });
    // The request as client-node sends it: its middleware sets the Content-Type.
    const ctx = new k8s.RequestContext('https://lab/apis/apps/v1/namespaces/kube-system/daemonsets/cilium', k8s.HttpMethod.PATCH);
    for (const m of calls[0]!.options?.middleware ?? []) await m.pre(ctx).toPromise();
    assert.equal(ctx.getHeaders()['Content-Type'], 'application/merge-patch+json');
  });

  it('--apply upgrades the cluster the plugin works on: helm gets its --kubeconfig and --context', () => {
    const opts = { ciliumNamespace: 'kube-system', helmRelease: 'cilium', helmChart: '/charts/cilium' };
    const argv = helmUpgradeArgs({ ...opts, helmTarget: { kubeconfig: '/lab/kubeconfig', context: 'kind-kind' } }, '1.18.3', '/tmp/v/values-final.yaml');
    assert.deepEqual(argv, ['upgrade', '--namespace', 'kube-system', 'cilium', '/charts/cilium', '--version', '1.18.3', '--reuse-values', '--values', '/tmp/v/values-final.yaml', '--wait', '--kubeconfig', '/lab/kubeconfig', '--kube-context', 'kind-kind']);
    // Without them helm finds the cluster as kubectl does (KUBECONFIG, ~/.kube/config), as the plugin did.
    assert.deepEqual(helmUpgradeArgs({ ...opts, helmTarget: {} }, '1.18.3', 'f.yaml').filter((a) => a.startsWith('--kube')), []);
  });
});
