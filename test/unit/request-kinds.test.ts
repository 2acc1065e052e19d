import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { requestKind, requestKinds } from '../../bench/request-kinds.js';

describe('requestKind (bench-node\'s requests by kind)', () => {
  it('names the verb and resource, LIST and WATCH apart from GET, one object as NAME, subresources kept', () => {
    assert.equal(requestKind('GET /api/v1/nodes/n0-r0-1'), 'GET nodes/NAME');
    assert.equal(requestKind('GET /api/v1/namespaces/kube-system/pods?labelSelector=k8s-app%3Dcilium&fieldSelector=spec.nodeName%3Dn1'), 'LIST pods');
    assert.equal(requestKind('GET /api/v1/namespaces/default/pods?fieldSelector=x&watch=true&resourceVersion=5'), 'WATCH pods');
    assert.equal(requestKind('POST /api/v1/namespaces/default/pods/web-1/eviction'), 'POST pods/NAME/eviction');
    assert.equal(requestKind('PUT /apis/coordination.k8s.io/v1/namespaces/kube-system/leases/cilium-migrate'), 'PUT leases/NAME');
    assert.equal(requestKind('PATCH /api/v1/nodes/n1/status'), 'PATCH nodes/NAME/status');
    assert.equal(requestKind('GET /api/v1/namespaces/kube-system'), 'GET namespaces/NAME');
    assert.equal(requestKind('GET /version'), 'GET /version');
  });

  it('counts per node, largest first', () => {
    const lines = ['PATCH /api/v1/nodes/a', 'PATCH /api/v1/nodes/b', 'GET /api/v1/nodes/a', 'PATCH /api/v1/nodes/c', ''];
    assert.deepEqual(requestKinds(lines, 2), [['PATCH nodes/NAME', 1.5], ['GET nodes/NAME', 0.5]]);
  });
});
