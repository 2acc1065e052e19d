import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { listMetadata } from '../../bench/list-metadata.js';

describe('listMetadata (the watch-load client\'s paging)', () => {
  it('reads a built-in kind\'s list metadata from its head, not an item\'s', () => {
    const body = '{"kind":"PartialObjectMetadataList","apiVersion":"meta.k8s.io/v1","metadata":{"resourceVersion":"900","continue":"tok1"},"items":[{"metadata":{"name":"n1","resourceVersion":"12"}}]}';
    assert.deepEqual(listMetadata(body.slice(0, 4096), body.slice(-4096)), { resourceVersion: '900', continue: 'tok1' });
  });

  it('reads a custom resource\'s list metadata from its tail (after the items)', () => {
    const items = Array.from({ length: 50 }, (_, i) => `{"apiVersion":"cilium.io/v2","kind":"CiliumNode","metadata":{"name":"n${i}","resourceVersion":"${i + 10}"},"spec":{"ipam":{"podCIDRs":["10.0.${i}.0/24"]}}}`).join(',');
    const body = `{"apiVersion":"cilium.io/v2","items":[${items}],"kind":"CiliumNodeList","metadata":{"continue":"tok2","resourceVersion":"901"}}`;
    assert.deepEqual(listMetadata(body.slice(0, 4096), body.slice(-4096)), { resourceVersion: '901', continue: 'tok2' });
  });

  it('no continue on the last page', () => {
    const body = '{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"902"},"items":[]}';
    assert.deepEqual(listMetadata(body, body), { resourceVersion: '902', continue: undefined });
  });
});
