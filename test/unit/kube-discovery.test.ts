// What the agent's discovery asks the API server for and keeps: nodes as metadata only, a few
// fields of every object, a node's address from its agent pod. The transport is a small in-memory
// LiteKube that answers one LIST per collection and then holds every watch open.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ClusterView } from '../../agent/discovery.js';
import { kubeDiscovery } from '../../agent/kube-discovery.js';
import type { LiteKube } from '../../lib/kube-lite.js';
import { metadataOnlyAccept } from '../../lib/kube-watch.js';

const bigStatus = { images: Array.from({ length: 50 }, (_, i) => ({ names: [`registry.example/image-${i}:v1`], sizeBytes: 1e8 })), conditions: [{ type: 'Ready', status: 'True' }] };

function fakeKube(lists: Record<string, unknown[]>) {
  const requests: { kind: 'list' | 'watch'; path: string; accept: string | undefined }[] = [];
  const kube: LiteKube = {
    server: 'https://fake',
    async request(_method, path, opts = {}) {
      requests.push({ kind: 'list', path, accept: opts.accept });
      const base = path.split('?')[0]!;
      return { status: 200, body: { metadata: { resourceVersion: '1' }, items: lists[base] ?? [] } };
    },
    watch(path, _onObject, signal, opts = {}) {
      requests.push({ kind: 'watch', path, accept: opts.accept });
      return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    },
  };
  return { kube, requests };
}

describe('kubeDiscovery', () => {
  it('watches nodes as metadata only, pods and CiliumNodes in full, and keeps only what the view needs', async () => {
    const { kube, requests } = fakeKube({
      '/api/v1/namespaces/cm/pods': [{
        metadata: { name: 'agent-a', namespace: 'cm', labels: { app: 'x' }, managedFields: [{ manager: 'kubelet' }] },
        spec: { nodeName: 'node-a', containers: [{ name: 'agent', image: 'agent:1', env: [{ name: 'X', value: 'y'.repeat(1000) }] }] },
        status: { phase: 'Running', podIP: '10.244.0.5', hostIP: '192.168.0.10', hostIPs: [{ ip: '192.168.0.10' }], conditions: [{ type: 'Ready', status: 'True' }] },
      }],
      '/api/v1/nodes': [{ metadata: { name: 'node-a', labels: { 'io.cilium.migration/cilium-default': 'true' }, annotations: { 'cilium-migrate.io/phase': 'gate', 'cilium-migrate.io/state': 'z'.repeat(2000) } }, status: bigStatus }],
      '/apis/cilium.io/v2/ciliumnodes': [{ metadata: { name: 'node-a', labels: { a: 'b' } }, spec: { ipam: { podCIDRs: ['10.245.0.0/24'] }, health: { ipv4: '10.245.0.9' } } }],
    });
    const discovery = kubeDiscovery(kube, 'cm', 'app=x', 'cilium-migrate.io/phase', () => {});
    const view = await new Promise<ClusterView>((resolve) => discovery.start(resolve));
    await new Promise((r) => setImmediate(r));
    discovery.stop();

    const accept = (kind: 'list' | 'watch', prefix: string) => requests.find((r) => r.kind === kind && r.path.startsWith(prefix))?.accept;
    assert.equal(accept('list', '/api/v1/nodes'), metadataOnlyAccept.list);
    assert.equal(accept('watch', '/api/v1/nodes'), metadataOnlyAccept.watch);
    assert.equal(accept('list', '/api/v1/namespaces/cm/pods'), undefined, 'pods in full: the pod IP is in status');
    assert.equal(accept('list', '/apis/cilium.io/v2/ciliumnodes'), undefined, 'CiliumNodes in full: the CIDRs are in spec');
    assert.match(requests.find((r) => r.kind === 'watch' && r.path.startsWith('/api/v1/namespaces/cm/pods'))!.path, /labelSelector=app%3Dx/);

    assert.deepEqual(view.agents, [{ node: 'node-a', pod: 'agent-a', ip: '10.244.0.5' }]);
    assert.deepEqual(view.nodes, [{ name: 'node-a', addresses: ['192.168.0.10'], labels: { 'io.cilium.migration/cilium-default': 'true' }, phase: 'gate' }]);
    assert.deepEqual(view.ciliumNodeCidrs, { 'node-a': ['10.245.0.0/24'] });
  });

  it('recomputes the view once for a burst of watch events, not once per event', async () => {
    let push: ((event: unknown) => void) | undefined;
    const kube: LiteKube = {
      server: 'https://fake',
      async request(_method, path) {
        const base = path.split('?')[0]!;
        const items = base === '/api/v1/nodes' ? Array.from({ length: 20 }, (_, i) => ({ metadata: { name: `node-${i}`, resourceVersion: '1' } })) : [];
        return { status: 200, body: { metadata: { resourceVersion: '1' }, items } };
      },
      watch(path, onObject, signal) {
        if (path.startsWith('/api/v1/nodes')) push = onObject;
        return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      },
    };
    const views: ClusterView[] = [];
    const discovery = kubeDiscovery(kube, 'cm', 'app=x', 'cilium-migrate.io/phase', () => {}, 50);
    discovery.start((v) => views.push(v));
    while (!push || views.length === 0) await new Promise((r) => setImmediate(r));
    assert.equal(views.length, 1, 'the first view at once');
    // A wave's writes: one event per node, each arriving on its own (a chunk of the watch stream each).
    for (let i = 0; i < 20; i++) {
      push({ type: 'MODIFIED', object: { metadata: { name: `node-${i}`, resourceVersion: String(2 + i), annotations: { 'cilium-migrate.io/phase': 'cordon' } } } });
      await new Promise((r) => setImmediate(r));
    }
    await new Promise((r) => setTimeout(r, 120));
    discovery.stop();
    assert.equal(views.length, 2, `one recomputation for the burst, got ${views.length - 1}`);
    assert.ok(views[1]!.nodes.every((n) => n.phase === 'cordon'), 'the recomputed view has every event of the burst');
  });
});
