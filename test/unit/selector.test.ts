import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { selectorMatches, type LabelSelector } from '../../lib/selector.js';

const labels = { 'io.cilium.migration/cilium-default': 'true', 'kubernetes.io/hostname': 'kind-worker' };
const cases: [string, LabelSelector | undefined, boolean][] = [
  ['the seed selector matches a labelled node', { matchLabels: { 'io.cilium.migration/cilium-default': 'true' } }, true],
  ['a different value does not match', { matchLabels: { 'io.cilium.migration/cilium-default': 'false' } }, false],
  ['an empty selector matches every node', {}, true],
  ['no selector matches nothing', undefined, false],
  ['In', { matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: ['kind-worker', 'x'] }] }, true],
  ['In without the label', { matchExpressions: [{ key: 'missing', operator: 'In', values: ['a'] }] }, false],
  ['NotIn', { matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'NotIn', values: ['kind-worker'] }] }, false],
  ['NotIn without the label', { matchExpressions: [{ key: 'missing', operator: 'NotIn', values: ['a'] }] }, true],
  ['Exists', { matchExpressions: [{ key: 'io.cilium.migration/cilium-default', operator: 'Exists' }] }, true],
  ['DoesNotExist', { matchExpressions: [{ key: 'io.cilium.migration/cilium-default', operator: 'DoesNotExist' }] }, false],
  ['an unknown operator matches nothing', { matchExpressions: [{ key: 'a', operator: 'Gt', values: ['1'] }] }, false],
  ['labels and expressions must both hold', { matchLabels: { 'io.cilium.migration/cilium-default': 'true' }, matchExpressions: [{ key: 'missing', operator: 'Exists' }] }, false],
];

describe('selectorMatches', () => {
  for (const [name, selector, expected] of cases) it(name, () => assert.equal(selectorMatches(selector, labels), expected));
});
