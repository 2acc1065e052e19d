import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { podsOffCilium } from '../../cmd/engine/gate.js';

describe('podsOffCilium', () => {
  const pod = (name: string, podIP: string, hostNetwork = false) => ({ name, podIP, hostNetwork });
  it('lists pods outside every Cilium CIDR, ignoring host-network pods and pods without an IP', () => {
    const pods = [pod('on-cilium', '10.245.1.7'), pod('legacy', '10.244.1.7'), pod('host', '172.18.0.3', true), pod('pending', ''), pod('second-cidr', '10.245.9.1')];
    assert.deepEqual(podsOffCilium(pods, ['10.245.1.0/24', '10.245.9.0/24']).map((p) => p.name), ['legacy']);
  });
});
