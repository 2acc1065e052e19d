// What finalize runs on each node to remove the legacy CNI's leftovers, and rollback's verdict on a
// node's new pod (cmd/engine/host-command.ts, cmd/engine/rollback-node.ts).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { legacyCleanupHints, legacyCleanupScript } from '../../cmd/engine/host-command.js';
import { rollbackVerdict } from '../../cmd/engine/rollback-node.js';

describe('legacyCleanupScript', () => {
  for (const kind of ['flannel', 'calico', 'aws-cni'] as const) {
    it(`is a valid sh script for ${kind}`, () => {
      const r = spawnSync('sh', ['-n'], { input: legacyCleanupScript(kind) });
      assert.equal(r.status, 0, r.stderr.toString());
    });
  }

  it('cleans Flannel in iptables and in nftables mode (its tables flannel-ipv4 and flannel-ipv6)', () => {
    const s = legacyCleanupScript('flannel');
    assert.match(s, /nft delete table ip flannel-ipv4/);
    assert.match(s, /nft delete table ip6 flannel-ipv6/);
    assert.match(s, /for ipt in iptables ip6tables/);
    assert.match(s, /FLANNEL-/);
    assert.match(s, /ip link delete flannel\.1/);
  });

  it('cleans Calico\'s links, cali- chains and CNI files', () => {
    const s = legacyCleanupScript('calico');
    assert.match(s, /ip link delete vxlan\.calico/);
    assert.match(s, /cali-/);
    assert.match(s, /10-calico\.conflist/);
  });

  it('cleans Calico in iptables and in nftables mode (felix\'s tables ip calico and ip6 calico)', () => {
    const s = legacyCleanupScript('calico');
    assert.match(s, /nft delete table ip calico/);
    assert.match(s, /nft delete table ip6 calico/);
    assert.match(s, /for ipt in iptables ip6tables/);
  });

  it('tells a person the nftables commands when felix ran with NFTablesMode Enabled', () => {
    assert.match(legacyCleanupHints('calico', true).join('\n'), /nft delete table ip calico; nft delete table ip6 calico/);
    assert.match(legacyCleanupHints('calico', false).join('\n'), /iptables-save \| grep -v -- "-j cali-/);
  });

  it('tells a person the nftables commands when Flannel ran with EnableNFTables', () => {
    assert.match(legacyCleanupHints('flannel', true).join('\n'), /nft delete table ip flannel-ipv4; nft delete table ip6 flannel-ipv6/);
    assert.match(legacyCleanupHints('flannel', false).join('\n'), /iptables-save \| grep -v FLANNEL/);
  });
});

describe('rollbackVerdict', () => {
  const nets = { ciliumNodeCidrs: ['10.245.1.0/24'], ciliumClusterCidrs: ['10.245.0.0/16'], nodePodCidrs: ['10.244.1.0/24'] };
  it('passes a Flannel address inside the node\'s spec.podCIDR', () => {
    assert.deepEqual(rollbackVerdict('10.244.1.9', 'w1', nets), { ok: true, message: 'a new pod got 10.244.1.9, inside the legacy 10.244.1.0/24' });
  });
  it('passes a Calico address outside the node\'s spec.podCIDR: legacy is anything outside Cilium\'s CIDRs', () => {
    const v = rollbackVerdict('192.168.77.3', 'w1', nets);
    assert.equal(v.ok, true);
    assert.match((v as { message: string }).message, /192\.168\.77\.3, on the legacy network \(outside the Cilium pod CIDRs 10\.245\.1\.0\/24\)/);
  });
  it('passes an AWS-CNI VPC address on a node without spec.podCIDR', () => {
    assert.equal(rollbackVerdict('172.31.20.9', 'w1', { ...nets, nodePodCidrs: [] }).ok, true);
  });
  it('fails an address inside the node\'s Cilium CIDRs', () => {
    const v = rollbackVerdict('10.245.1.4', 'w1', nets);
    assert.equal(v.ok, false);
    assert.match((v as { reason: string }).reason, /inside its Cilium pod CIDRs 10\.245\.1\.0\/24: is 05-cilium\.conflist still on the host/);
  });
  it('fails an address in the Cilium pool when the node has no CiliumNode CIDR', () => {
    assert.equal(rollbackVerdict('10.245.9.4', 'w1', { ...nets, ciliumNodeCidrs: [] }).ok, false);
  });
});
