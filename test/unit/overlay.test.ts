// The one definition of "legacy" (lib/overlay.ts): an address is legacy when it is neither a node's
// own nor inside Cilium's pod CIDRs (the node's CiliumNode, else the configured cluster pool),
// whatever the legacy CNI's range: Flannel's 10.244/16, k3s' 10.42/16, Calico's 192.168/16, AWS VPC
// addresses. Before, a pod outside 10.244/16 or node.spec.podCIDR counted as "unknown".
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ciliumCidrsFor, classifyAddress, classifyPod, legacyNote, type Overlay, type OverlayNetworks } from '../../lib/overlay.js';

const nets: OverlayNetworks = {
  ciliumNodeCidrs: { w1: ['10.245.1.0/24'], w2: ['10.0.2.0/24'], w3: [] },
  ciliumCidrs: ['10.245.0.0/16'],
  nodeAddresses: ['172.18.0.3', '172.31.5.10'],
  legacyCidrs: ['10.244.0.0/16'],
};

describe('classifyAddress', () => {
  const table: [string, string, string | undefined, Overlay][] = [
    ['a Flannel pod (10.244/16)', '10.244.1.5', 'w1', 'legacy'],
    ['a Calico pod from its 192.168.0.0/16 pool', '192.168.3.7', 'w1', 'legacy'],
    ['a k3s Flannel pod (10.42/16)', '10.42.1.9', 'w1', 'legacy'],
    ['an AWS-CNI pod with a VPC address', '172.31.20.9', 'w1', 'legacy'],
    ['an AWS-CNI pod on a node whose spec.podCIDR means nothing to it', '172.31.44.2', undefined, 'legacy'],
    ['a pod inside its node\'s CiliumNode CIDR', '10.245.1.9', 'w1', 'cilium'],
    ['a pod inside its node\'s CiliumNode CIDR outside the configured pool (the CiliumNode decides)', '10.0.2.4', 'w2', 'cilium'],
    ['a pod inside the pool but outside its own node\'s CiliumNode CIDR', '10.245.9.9', 'w1', 'legacy'],
    ['a pod on a node whose CiliumNode has no CIDR yet: the configured pool decides', '10.245.7.7', 'w3', 'cilium'],
    ['a pod on a node without CiliumNode: the configured pool decides', '10.245.8.8', 'w9', 'cilium'],
    ['a node\'s own address', '172.18.0.3', 'w1', 'host'],
    ['an IPv6 pod address (legacy dual stack)', 'fd00:10:244::5', 'w1', 'legacy'],
    ['no address', '', 'w1', 'unknown'],
    ['something that is no address', 'pending', 'w1', 'unknown'],
  ];
  for (const [name, ip, node, want] of table) {
    it(`${want}: ${name} (${ip || 'empty'})`, () => assert.equal(classifyAddress(ip, node, nets), want));
  }

  it('takes the node addresses as a Set too (the agents classify many peers)', () => {
    assert.equal(classifyAddress('172.31.5.10', 'w1', { ...nets, nodeAddresses: new Set(['172.31.5.10']) }), 'host');
  });

  it('counts a host-network pod as host whatever its address', () => {
    assert.equal(classifyPod({ ip: '10.245.1.9', node: 'w1', hostNetwork: true }, nets), 'host');
    assert.equal(classifyPod({ ip: '192.168.3.7', node: 'w1', hostNetwork: false }, nets), 'legacy');
  });

  it('never needs the legacy CIDRs: without them a Calico pod is still legacy', () => {
    assert.equal(classifyAddress('192.168.3.7', 'w1', { ...nets, legacyCidrs: undefined }), 'legacy');
  });
});

describe('ciliumCidrsFor', () => {
  it('is the node\'s CiliumNode CIDRs when it has any, else the configured pool', () => {
    assert.deepEqual(ciliumCidrsFor('w1', nets), ['10.245.1.0/24']);
    assert.deepEqual(ciliumCidrsFor('w3', nets), ['10.245.0.0/16']);
    assert.deepEqual(ciliumCidrsFor(undefined, nets), ['10.245.0.0/16']);
  });
});

describe('legacyNote', () => {
  it('says when a legacy address lies outside every known legacy CIDR, and only then', () => {
    assert.match(legacyNote('10.246.0.5', ['10.244.0.0/16']) ?? '', /10\.246\.0\.5 is outside the legacy CNI's known pod CIDRs \(10\.244\.0\.0\/16\)/);
    assert.equal(legacyNote('10.244.3.5', ['10.244.0.0/16']), undefined);
    assert.equal(legacyNote('172.31.3.5', []), undefined, 'AWS-CNI: no range known, nothing to say');
    assert.equal(legacyNote('172.31.3.5', undefined), undefined);
  });
});
