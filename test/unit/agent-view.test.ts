// The agent's identity and peers from a discovered cluster view.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ClusterView } from '../../agent/discovery.js';
import { identityOf, peersOf, type ViewConfig } from '../../agent/view.js';

const cfg: ViewConfig = { legacyCidrs: ['10.244.0.0/16'], ciliumCidrs: ['10.245.0.0/16'], labelKey: 'io.cilium.migration/cilium-default', protocols: ['icmp', 'http'], fullMeshMax: 50, ringSize: 3 };
const view = (labelled: boolean, phase?: string): ClusterView => ({
  agents: [
    { node: 'kind-worker', pod: 'a1', ip: '10.244.1.5' },
    { node: 'kind-worker2', pod: 'a2', ip: '10.245.2.5' },
    { node: 'kind-control-plane', pod: 'a0', ip: '172.18.0.2' },
  ],
  nodes: [
    { name: 'kind-worker', addresses: ['172.18.0.3'], labels: labelled ? { 'io.cilium.migration/cilium-default': 'true' } : {} },
    { name: 'kind-worker2', addresses: ['172.18.0.4'], labels: { 'io.cilium.migration/cilium-default': 'true' }, phase },
    { name: 'kind-control-plane', addresses: ['172.18.0.2'], labels: {} },
  ],
  ciliumNodeCidrs: { 'kind-worker2': ['10.245.2.0/24'] },
});
const self = { node: 'kind-worker', pod: 'a1', namespace: 'ns', ip: '10.244.1.5', version: 't' };

describe('identityOf', () => {
  it('classifies its own IP and finds no mismatch on an unlabelled legacy node', () => {
    const id = identityOf(self, view(false), cfg);
    assert.equal(id.overlay, 'legacy');
    assert.equal(id.expectedOverlay, 'legacy');
    assert.equal(id.overlayMismatch, undefined);
  });

  it('says when a legacy address is outside the known legacy CIDRs (is Cilium\'s CIDR configured right?)', () => {
    const stray = { ...self, ip: '10.99.1.5' };
    const id = identityOf(stray, view(true), cfg);
    assert.equal(id.overlay, 'legacy');
    assert.match(id.overlayMismatch ?? '', /10\.99\.1\.5 is outside the legacy CNI's known pod CIDRs \(10\.244\.0\.0\/16\): check --cilium-cidrs/);
  });

  it('says so when its node is labelled for Cilium but it still has a legacy IP', () => {
    const id = identityOf(self, view(true), cfg);
    assert.equal(id.expectedOverlay, 'cilium');
    assert.match(id.overlayMismatch ?? '', /10\.244\.1\.5 is on legacy but node kind-worker should be on cilium/);
  });
});

describe('peersOf', () => {
  it('classifies every peer (legacy, cilium, host) and never includes itself', () => {
    const peers = peersOf(self, identityOf(self, view(false), cfg), view(false), cfg);
    assert.deepEqual(peers.map((p) => [p.ref.pod, p.ref.overlay]).sort(), [['a0', 'host'], ['a2', 'cilium']]);
  });

  it('classifies a Calico peer (192.168.0.0/16, outside LEGACY_CIDRS) as legacy, not unknown', () => {
    const v = view(false);
    const calico: ClusterView = { ...v, agents: [...v.agents, { node: 'kind-worker3', pod: 'a3', ip: '192.168.7.9' }], nodes: [...v.nodes, { name: 'kind-worker3', addresses: ['172.18.0.5'], labels: {} }] };
    const peers = peersOf(self, identityOf(self, calico, cfg), calico, cfg);
    assert.equal(peers.find((p) => p.ref.pod === 'a3')?.ref.overlay, 'legacy');
  });

  it('judges a peer by its own node\'s CiliumNode, not by another node\'s', () => {
    const v = view(false);
    // kind-worker's CiliumNode has no CIDR: the configured pool decides for its pods.
    const peers = peersOf({ ...self, pod: 'x', node: 'kind-control-plane' }, identityOf(self, v, cfg), { ...v, ciliumNodeCidrs: { 'kind-worker2': ['10.245.2.0/24'], 'kind-worker': ['10.1.1.0/24'] } }, cfg);
    assert.equal(peers.find((p) => p.ref.pod === 'a1')?.ref.overlay, 'legacy', '10.244.1.5 is outside kind-worker\'s 10.1.1.0/24');
    assert.equal(peers.find((p) => p.ref.pod === 'a2')?.ref.overlay, 'cilium');
  });

  it('marks peers on nodes being migrated as focus', () => {
    const peers = peersOf(self, identityOf(self, view(false), cfg), view(false, 'restart-node'), cfg);
    assert.equal(peers.find((p) => p.ref.pod === 'a2')?.focus, true);
    const idle = peersOf(self, identityOf(self, view(false), cfg), view(false, 'migrated'), cfg);
    assert.equal(idle.find((p) => p.ref.pod === 'a2')?.focus, false);
  });

  it('marks every peer as focus while its own node is being migrated', () => {
    const self2 = { ...self, node: 'kind-worker2', pod: 'a2', ip: '10.245.2.5' };
    const peers = peersOf(self2, identityOf(self2, view(false, 'gate'), cfg), view(false, 'gate'), cfg);
    assert.deepEqual(peers.map((p) => [p.ref.pod, p.focus]).sort(), [['a0', true], ['a1', true]]);
  });
});

describe('after finalize', () => {
  it('expects a node whose label is gone but whose phase is finalized on Cilium, and does not count it in focus', () => {
    const v: ClusterView = { ...view(false), nodes: view(false).nodes.map((n) => ({ ...n, labels: {}, phase: 'finalized' })) };
    const self2 = { ...self, node: 'kind-worker2', pod: 'a2', ip: '10.245.2.5' };
    const id = identityOf(self2, v, cfg);
    assert.equal(id.expectedOverlay, 'cilium');
    assert.equal(id.overlayMismatch, undefined);
    assert.ok(peersOf(self2, id, v, cfg).every((p) => !p.focus));
  });
});
