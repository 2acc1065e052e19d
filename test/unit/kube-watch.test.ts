// The reflector's LIST: in pages, each page asked for with the previous one's continue token, the
// watch resumed from the version the last page names, and the LIST started over when a page's
// token has expired. The transport is a small in-memory LiteKube serving one collection.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LiteKube } from '../../lib/kube-lite.js';
import { reflect, type KubeObject } from '../../lib/kube-watch.js';

function pagedKube(total: number, opts: { expireOnce?: boolean } = {}) {
  const lists: URLSearchParams[] = [];
  const watches: URLSearchParams[] = [];
  let expire = opts.expireOnce ?? false;
  const kube: LiteKube = {
    server: 'https://fake',
    async request(_method, path) {
      const q = new URLSearchParams(path.split('?')[1] ?? '');
      lists.push(q);
      const limit = Number(q.get('limit') ?? total);
      const from = Number(q.get('continue') ?? 0);
      if (from > 0 && expire) {
        expire = false;
        return { status: 410, body: { kind: 'Status', code: 410, reason: 'Expired' } };
      }
      const items = Array.from({ length: Math.min(limit, total - from) }, (_, i) => ({ metadata: { name: `node-${from + i}`, resourceVersion: String(from + i) }, status: { big: 'x'.repeat(100) } }));
      const next = from + items.length;
      return { status: 200, body: { metadata: { resourceVersion: '777', ...(next < total ? { continue: String(next) } : {}) }, items } };
    },
    watch(path, _onObject, signal) {
      watches.push(new URLSearchParams(path.split('?')[1] ?? ''));
      return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    },
  };
  return { kube, lists, watches };
}

const synced = (kube: LiteKube, pageSize?: number) =>
  new Promise<{ items: Map<string, KubeObject>; stop: () => void }>((resolve) => {
    const r = reflect(kube, '/api/v1/nodes', { query: { labelSelector: 'a=b' }, ...(pageSize ? { pageSize } : {}), keep: (o) => ({ metadata: { name: o.metadata?.name } }), onChange: (items) => resolve({ items, stop: () => r.stop() }) });
  });

describe('reflect', () => {
  it('lists the collection in pages of 100 by default, following the continue tokens, and watches from the last page\'s version', async () => {
    const { kube, lists, watches } = pagedKube(250);
    const { items, stop } = await synced(kube);
    await new Promise((r) => setImmediate(r));
    stop();
    assert.deepEqual(lists.map((q) => [q.get('limit'), q.get('continue')]), [['100', null], ['100', '100'], ['100', '200']]);
    assert.ok(lists.every((q) => q.get('labelSelector') === 'a=b'), 'every page keeps the selector');
    assert.equal(items.size, 250);
    assert.deepEqual(items.get('/node-249'), { metadata: { name: 'node-249' } }, 'only the kept copy');
    assert.equal(watches[0]?.get('resourceVersion'), '777');
  });

  it('takes its page size from the options', async () => {
    const { kube, lists } = pagedKube(5);
    const { items, stop } = await synced(kube, 2);
    stop();
    assert.equal(lists.length, 3);
    assert.equal(items.size, 5);
  });

  it('lists again from the first page when a later page\'s continue token has expired', async () => {
    const { kube, lists } = pagedKube(150, { expireOnce: true });
    const errors: string[] = [];
    const items = await new Promise<Map<string, KubeObject>>((resolve) => {
      const r = reflect(kube, '/api/v1/nodes', { minBackoffMs: 1, onError: (m) => errors.push(m), onChange: (i) => (r.stop(), resolve(i)) });
    });
    assert.deepEqual(lists.map((q) => q.get('continue')), [null, '100', null, '100']);
    assert.equal(items.size, 150);
    assert.match(errors[0] ?? '', /continue token expired/);
  });
});
