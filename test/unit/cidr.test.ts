import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cidrContains, cidrsOverlap, parseCidr } from '../../lib/cidr.js';

describe('cidrContains', () => {
  const cases: [string, string, boolean][] = [
    ['10.244.1.0/24', '10.244.1.7', true],
    ['10.244.1.0/24', '10.244.2.7', false],
    ['10.245.0.0/16', '10.245.255.255', true],
    ['10.245.0.0/16', '10.244.0.1', false],
    ['10.245.0.0/16', 'not-an-ip', false],
    ['garbage', '10.245.0.1', false],
    ['fd00::/64', '10.245.0.1', false],
    ['fd00::/64', 'fd00::1', true],
  ];
  for (const [cidr, ip, expected] of cases) {
    it(`${ip} in ${cidr} is ${expected}`, () => assert.equal(cidrContains(cidr, ip), expected));
  }
});

describe('cidrsOverlap', () => {
  const cases: [string, string, boolean][] = [
    ['10.244.0.0/16', '10.245.0.0/16', false],
    ['10.244.0.0/16', '10.244.3.0/24', true],
    ['10.244.3.0/24', '10.244.0.0/16', true],
    ['10.0.0.0/8', '10.245.0.0/16', true],
    ['10.96.0.0/12', '10.245.0.0/16', false],
    ['10.96.0.0/12', '10.100.0.0/16', true],
  ];
  for (const [a, b, expected] of cases) {
    it(`${a} and ${b}: ${expected ? 'overlap' : 'distinct'}`, () => assert.equal(cidrsOverlap(a, b), expected));
  }
});

describe('parseCidr', () => {
  it('names the bad value', () => assert.throws(() => parseCidr('10.0.0.0/33'), /"10.0.0.0\/33" is not a CIDR/));
});
