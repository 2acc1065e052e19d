// status, plan and finalize LIST the pods in pages; the next page is asked for as soon as the head
// of an answer names its continue token, one page ahead at most, so that the API server encodes a
// page while the plugin parses the one before. The transport is an in-memory PageFetch whose answers
// the test releases one by one.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { continueInHead, pagedItems, type PageFetch } from '../../cmd/migration/cluster-view.js';
import type { RawResponse } from '../../lib/kube.js';

const head = (token?: string) => `{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"5"${token ? `,"continue":"${token}","remainingItemCount":40` : ''}},"items":[{"metadata":{"name":"a","namespace":"default","labels":{"app":"x"}}}`;
const answer = (items: string[], token?: string): RawResponse => ({ status: 200, headers: {}, body: { metadata: token ? { continue: token } : {}, items: items.map((name) => ({ name })) } });

function pages() {
  const asked: (string | undefined)[] = [];
  const open = new Map<string, { onHead: (h: string) => void; resolve: (r: RawResponse) => void; reject: (e: Error) => void }>();
  const fetch: PageFetch = (token, onHead) => {
    asked.push(token);
    return new Promise((resolve, reject) => open.set(token ?? '', { onHead, resolve, reject }));
  };
  const tick = () => new Promise((r) => setImmediate(r));
  return { asked, open: (t: string) => open.get(t)!, fetch, tick };
}

const fail = (res: RawResponse) => new Error(`HTTP ${res.status}`);

describe('pagedItems', () => {
  it('asks for the next page as soon as a page\'s head names it, never more than one page ahead, and keeps every item in order', async () => {
    const p = pages();
    const all = pagedItems(p.fetch, (i) => (i as { name: string }).name, fail);
    await p.tick();
    p.open('').onHead(head('t1'));
    assert.deepEqual(p.asked, [undefined, 't1'], 'page 2 asked for while page 1 still arrives');
    p.open('t1').onHead(head('t2'));
    assert.deepEqual(p.asked, [undefined, 't1'], 'not page 3 while page 1 is not read yet');
    p.open('').resolve(answer(['a', 'b'], 't1'));
    await p.tick();
    assert.deepEqual(p.asked, [undefined, 't1', 't2'], 'page 3 once page 1 is read');
    p.open('t1').resolve(answer(['c', 'd'], 't2'));
    p.open('t2').onHead(head());
    p.open('t2').resolve(answer(['e']));
    assert.deepEqual(await all, ['a', 'b', 'c', 'd', 'e']);
    assert.deepEqual(p.asked, [undefined, 't1', 't2']);
  });

  it('asks for the token the whole answer names when the head named another, and waits for it when the head names none', async () => {
    const p = pages();
    const all = pagedItems(p.fetch, (i) => (i as { name: string }).name, fail);
    await p.tick();
    p.open('').onHead(head('stale'));
    p.open('').resolve(answer(['a'], 't1'));
    await p.tick();
    // A custom resource's list: metadata after the items, so the head names no token.
    p.open('t1').onHead('{"apiVersion":"cilium.io/v2","items":[{"metadata":{"name":"n1"}}');
    p.open('t1').resolve(answer(['b'], 't2'));
    await p.tick();
    p.open('t2').resolve(answer(['c']));
    assert.deepEqual(await all, ['a', 'b', 'c']);
    assert.deepEqual(p.asked, [undefined, 'stale', 't1', 't2']);
  });

  it('fails with the page that failed, and a page asked for ahead that fails too is no unhandled rejection', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      const p = pages();
      const all = pagedItems(p.fetch, (i) => i, fail);
      await p.tick();
      p.open('').onHead(head('t1'));
      p.open('').resolve({ status: 500, headers: {}, body: { message: 'etcd is away' } });
      p.open('t1').reject(new Error('connection reset'));
      await assert.rejects(all, /HTTP 500/);
      await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('answers a collection not served with `missing`', async () => {
    const p = pages();
    const all = pagedItems(p.fetch, (i) => i, fail, []);
    await p.tick();
    p.open('').resolve({ status: 404, headers: {}, body: {} });
    assert.deepEqual(await all, []);
  });
});

describe('continueInHead', () => {
  it('reads the token of a built-in kind\'s list head, and nothing from an item\'s metadata', () => {
    assert.equal(continueInHead(head('eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTIzfQ')), 'eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTIzfQ');
    assert.equal(continueInHead(head()), undefined);
    assert.equal(continueInHead('{"apiVersion":"v1","items":[{"metadata":{"continue":"x"}}],"kind":"List","metadata":{"continue":"y"}}'), undefined);
  });
});
