// The real control plane the other tests stand on: kubectl sees the simulated nodes, a Deployment
// gets Running pods with IPs from their nodes' CIDRs, PDBs block evictions, both CiliumNodeConfig
// versions are served.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { cidrContains } from '../../lib/cidr.js';
import { connect, statusCode } from '../../lib/kube.js';
import { getText } from '../../lab/netns-gateway.js';
import { eventually } from '../harness/wait.js';
import { repoRoot } from '../harness/plugin.js';
import { sharedControlPlane } from '../harness/shared-cluster.js';

interface Pod {
  metadata: { name: string; uid: string };
  spec: { nodeName?: string };
  status: { phase?: string; podIP?: string };
}
interface Node {
  metadata: { name: string };
  spec: { podCIDR?: string };
}

describe('real control plane', () => {
  it('lists the simulated kind nodes through real kubectl and the test kubeconfig', async () => {
    const cp = await sharedControlPlane();
    const { stdout } = await cp.kubectl(['get', 'nodes']);
    // NAME STATUS ROLES AGE VERSION, as in the seed's `kubectl get nodes`
    const [header, ...lines] = stdout.trim().split('\n').map((l) => l.trim().split(/\s+/));
    assert.deepEqual(header?.slice(0, 3), ['NAME', 'STATUS', 'ROLES']);
    const rows = new Map(lines.map((r) => [r[0], r]));
    assert.deepEqual([...rows.keys()].sort(), ['kind-control-plane', 'kind-worker', 'kind-worker2']);
    for (const [name, row] of rows) assert.equal(row[1], 'Ready', `${name} Ready`);
    assert.equal(rows.get('kind-control-plane')?.[2], 'control-plane');
    assert.equal(rows.get('kind-worker')?.[2], '<none>');
  });

  it('gives every node a pod CIDR from 10.244.0.0/16 like kind', async () => {
    const cp = await sharedControlPlane();
    const nodes = await cp.get<{ items: Node[] }>('/api/v1/nodes');
    for (const node of nodes.items) {
      assert.ok(node.spec.podCIDR, `${node.metadata.name} has a pod CIDR`);
      assert.ok(cidrContains('10.244.0.0/16', node.spec.podCIDR.split('/')[0]!), `${node.spec.podCIDR} inside 10.244.0.0/16`);
    }
    assert.equal(new Set(nodes.items.map((n) => n.spec.podCIDR)).size, nodes.items.length, 'pod CIDRs are distinct');
  });

  it('runs a 10-replica Deployment as 10 Running pods with IPs inside their nodes\' pod CIDRs', async () => {
    const cp = await sharedControlPlane();
    await cp.kubectl(['create', 'namespace', 'cp-deploy']);
    await cp.kubectl(['-n', 'cp-deploy', 'create', 'deployment', 'nginx', '--image', 'nginx', '--port', '80', '--replicas', '10']);
    const pods = await eventually('10 Running nginx pods with IPs', async () => {
      const list = await cp.get<{ items: Pod[] }>('/api/v1/namespaces/cp-deploy/pods?labelSelector=app%3Dnginx');
      const running = list.items.filter((p) => p.status.phase === 'Running' && p.status.podIP);
      return running.length === 10 ? running : undefined;
    }, 90_000);
    const nodes = await cp.get<{ items: Node[] }>('/api/v1/nodes');
    const cidrOf = new Map(nodes.items.map((n) => [n.metadata.name, n.spec.podCIDR ?? '']));
    for (const pod of pods) {
      const cidr = cidrOf.get(pod.spec.nodeName ?? '');
      assert.ok(cidr, `${pod.metadata.name} is bound to a known node`);
      assert.ok(cidrContains(cidr, pod.status.podIP!), `${pod.metadata.name} IP ${pod.status.podIP} inside ${pod.spec.nodeName}'s ${cidr}`);
    }
    assert.ok(!pods.some((p) => p.spec.nodeName === 'kind-control-plane'), 'the control-plane taint keeps pods off kind-control-plane');
    assert.equal(new Set(pods.map((p) => p.status.podIP)).size, 10, 'pod IPs are distinct');
  });

  it('answers 429 to an eviction that a PodDisruptionBudget allowing no disruption forbids', async () => {
    const cp = await sharedControlPlane();
    const ns = 'cp-pdb';
    await cp.kubectl(['create', 'namespace', ns]);
    await cp.kubectl(['-n', ns, 'create', 'deployment', 'web', '--image', 'nginx', '--replicas', '2']);
    await cp.kubectl(['-n', ns, 'create', 'poddisruptionbudget', 'web', '--selector', 'app=web', '--max-unavailable', '0']);
    const pods = await eventually('2 Running web pods', async () => {
      const list = await cp.get<{ items: Pod[] }>(`/api/v1/namespaces/${ns}/pods?labelSelector=app%3Dweb`);
      const running = list.items.filter((p) => p.status.phase === 'Running');
      return running.length === 2 ? running : undefined;
    }, 90_000);
    // The disruption controller must have processed the PDB, or every eviction gets 429 anyway.
    await eventually('the PDB observed by the disruption controller', async () => {
      const pdb = await cp.get<{ metadata: { generation: number }; status?: { observedGeneration?: number; currentHealthy?: number; disruptionsAllowed?: number } }>(
        `/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets/web`,
      );
      return pdb.status?.observedGeneration === pdb.metadata.generation && pdb.status.currentHealthy === 2 ? pdb : undefined;
    });

    const kube = connect({ kubeconfig: cp.kubeconfig });
    const pod = pods[0]!;
    const evict = () =>
      kube.core.createNamespacedPodEviction({
        name: pod.metadata.name,
        namespace: ns,
        body: { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: pod.metadata.name, namespace: ns }, deleteOptions: { preconditions: { uid: pod.metadata.uid } } },
      });
    await assert.rejects(evict, (err: unknown) => {
      assert.equal(statusCode(err), 429);
      return true;
    });
    const still = await cp.get<Pod>(`/api/v1/namespaces/${ns}/pods/${pod.metadata.name}`);
    assert.equal(still.metadata.uid, pod.metadata.uid, 'the pod was not evicted');
  });

  it('serves CiliumNodeConfig as cilium.io/v2 and cilium.io/v2alpha1: create, read and list in both', async () => {
    const cp = await sharedControlPlane();
    for (const version of ['v2', 'v2alpha1']) {
      const name = `cnc-${version}`;
      const manifest = {
        apiVersion: `cilium.io/${version}`,
        kind: 'CiliumNodeConfig',
        metadata: { namespace: 'kube-system', name },
        spec: {
          nodeSelector: { matchLabels: { 'io.cilium.migration/cilium-default': 'true' } },
          defaults: { 'write-cni-conf-when-ready': '/host/etc/cni/net.d/05-cilium.conflist', 'custom-cni-conf': 'false', 'cni-chaining-mode': 'none', 'cni-exclusive': 'true' },
        },
      };
      await cp.kubectl(['apply', '--server-side', '-f', '-'], { input: JSON.stringify(manifest) });
      const read = await cp.get<{ apiVersion: string; spec: { defaults: Record<string, string> } }>(`/apis/cilium.io/${version}/namespaces/kube-system/ciliumnodeconfigs/${name}`);
      assert.equal(read.apiVersion, `cilium.io/${version}`);
      assert.equal(read.spec.defaults['cni-exclusive'], 'true');
    }
    for (const version of ['v2', 'v2alpha1']) {
      const list = await cp.get<{ items: { metadata: { name: string } }[] }>(`/apis/cilium.io/${version}/namespaces/kube-system/ciliumnodeconfigs`);
      assert.deepEqual(list.items.map((i) => i.metadata.name).sort(), ['cnc-v2', 'cnc-v2alpha1'], `both objects listed through ${version}`);
    }
    const { stdout } = await cp.kubectl(['-n', 'kube-system', 'get', 'ciliumnodeconfigs.v2alpha1.cilium.io', '-o', 'name']);
    assert.match(stdout, /cnc-v2\n/);
  });

  it('accepts the shipped manifests/ciliumnodeconfig.yaml (server-side dry run)', async () => {
    const cp = await sharedControlPlane();
    const { stdout } = await cp.kubectl(['apply', '--server-side', '--dry-run=server', '-f', join(repoRoot, 'manifests', 'ciliumnodeconfig.yaml')]);
    assert.match(stdout, /ciliumnodeconfig.cilium.io\/cilium-default serverside-applied \(server dry run\)/);
  });

  it('rejects a CiliumNodeConfig without a nodeSelector, as Cilium\'s CRD does', async () => {
    const cp = await sharedControlPlane();
    const bad = { apiVersion: 'cilium.io/v2', kind: 'CiliumNodeConfig', metadata: { namespace: 'kube-system', name: 'no-selector' }, spec: { defaults: { a: 'b' } } };
    await assert.rejects(cp.kubectl(['apply', '--server-side', '-f', '-'], { input: JSON.stringify(bad) }), /nodeSelector: Required value/);
  });
  it('serves etcd only to a client with a certificate from etcd\'s own CA (the API server\'s), not over plain HTTP nor to a Kubernetes client certificate', async () => {
    const cp = await sharedControlPlane();
    const url = `https://127.0.0.1:${cp.ports.etcdClient}/health`;
    const pki = (f: string) => readFileSync(join(cp.rootDir, 'pki', f));
    const ca = pki('etcd-ca.crt');
    const admin = readFileSync(cp.kubeconfig, 'utf8');
    const adminCert = readFileSync(/client-certificate: (.+)/.exec(admin)![1]!.trim());
    const adminKey = readFileSync(/client-key: (.+)/.exec(admin)![1]!.trim());
    await assert.rejects(getText(url.replace('https:', 'http:')), 'plain HTTP is not served');
    await assert.rejects(getText(url, { ca }), 'no client certificate: refused');
    await assert.rejects(getText(url, { ca, cert: adminCert, key: adminKey }), 'a Kubernetes (system:masters) certificate: refused');
    const ok = await getText(url, { ca, cert: pki('etcd-client.crt'), key: pki('etcd-client.key') });
    assert.equal(ok.status, 200);
    assert.match(ok.body, /"health":"true"/);
  });
});
