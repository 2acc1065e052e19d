// The tunnel-port rules (lib/tunnel.ts): two overlays may not bind one UDP port; Calico IP-in-IP and
// AWS-CNI bind none; Calico VXLAN binds 4789 unless Felix says otherwise; Cilium binds tunnel-port.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { blockedTunnelText, ciliumTunnel, describeTunnel, tunnelClashes, type Tunnel } from '../../lib/tunnel.js';

describe('ciliumTunnel', () => {
  const table: [Record<string, string>, Tunnel][] = [
    [{ 'routing-mode': 'tunnel', 'tunnel-protocol': 'vxlan', 'tunnel-port': '8473' }, { protocol: 'vxlan', port: 8473 }],
    [{ 'routing-mode': 'tunnel', 'tunnel-protocol': 'vxlan' }, { protocol: 'vxlan', port: 8472 }],
    [{ 'tunnel-protocol': 'geneve' }, { protocol: 'geneve', port: 6081 }],
    [{ tunnel: 'vxlan' }, { protocol: 'vxlan', port: 8472 }],
    [{ 'routing-mode': 'native' }, { protocol: 'none' }],
    [{ tunnel: 'disabled' }, { protocol: 'none' }],
  ];
  for (const [config, want] of table) it(`${JSON.stringify(config)} -> ${describeTunnel(want)}`, () => assert.deepEqual(ciliumTunnel(config), want));
});

describe('tunnelClashes', () => {
  const cilium8472: Tunnel = { protocol: 'vxlan', port: 8472 };
  const cilium4789: Tunnel = { protocol: 'vxlan', port: 4789 };
  const cilium8473: Tunnel = { protocol: 'vxlan', port: 8473 };
  const table: [string, Tunnel[], Tunnel, number][] = [
    ['Flannel VXLAN 8472 and Cilium\'s default 8472', [{ protocol: 'vxlan', port: 8472 }], cilium8472, 1],
    ['Flannel VXLAN 8472 and Cilium on 8473 (the seed)', [{ protocol: 'vxlan', port: 8472 }], cilium8473, 0],
    ['Calico VXLAN 4789 and Cilium\'s default 8472', [{ protocol: 'vxlan', port: 4789 }], cilium8472, 0],
    ['Calico VXLAN 4789 and Cilium on 4789', [{ protocol: 'vxlan', port: 4789 }], cilium4789, 1],
    ['Calico IP-in-IP (no UDP port) and Cilium on 4789', [{ protocol: 'ipip' }], cilium4789, 0],
    ['Calico VXLAN on Felix\'s 8473 and Cilium on 8473', [{ protocol: 'vxlan', port: 8473 }], cilium8473, 1],
    ['AWS-CNI (no tunnel) and Cilium on any port', [{ protocol: 'none' }], cilium8472, 0],
    ['Flannel\'s udp backend on 8285 and Cilium Geneve on 8285', [{ protocol: 'udp', port: 8285 }], { protocol: 'geneve', port: 8285 }, 1],
    ['Cilium in native routing', [{ protocol: 'vxlan', port: 8472 }], { protocol: 'none' }, 0],
  ];
  for (const [name, legacy, cilium, clashes] of table) it(`${clashes ? 'clash' : 'no clash'}: ${name}`, () => assert.equal(tunnelClashes(legacy, cilium).length, clashes));
});

describe('blockedTunnelText', () => {
  it('names the UDP port, IP-in-IP, or the routes of an overlay without a tunnel', () => {
    assert.equal(blockedTunnelText('cilium', [{ protocol: 'vxlan', port: 8473 }]).what, 'the cilium tunnel port UDP 8473');
    assert.deepEqual(blockedTunnelText('legacy', [{ protocol: 'ipip' }]), { what: 'the legacy overlay\'s IP protocol 4 (IP-in-IP)', allow: 'IP protocol 4 (IP-in-IP)' });
    assert.match(blockedTunnelText('legacy', [{ protocol: 'none' }]).what, /routed traffic \(it has no tunnel\)/);
  });
});
