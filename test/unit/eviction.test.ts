// How eviction answers are read, including the 201 that carries a failure.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Readable } from 'node:stream';
import { readLimited, ResponseTooLargeError } from '../../lib/kube.js';
import { interpretEviction } from '../../lib/kube-objects.js';

const status = (code: number, message: string, extra: Record<string, unknown> = {}) => ({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, message, ...extra });

describe('interpretEviction', () => {
  it('reads a 201 with an Eviction body as evicted', () => {
    assert.deepEqual(interpretEviction({ status: 201, headers: {}, body: { kind: 'Eviction', apiVersion: 'policy/v1' } }), { kind: 'evicted' });
  });

  it('reads a 201 whose body is a failure Status (a pod under several PDBs, older servers) as failed', () => {
    const outcome = interpretEviction({ status: 201, headers: {}, body: status(500, 'This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.') });
    assert.equal(outcome?.kind, 'failed');
    assert.match(outcome?.kind === 'failed' ? outcome.message : '', /more than one PodDisruptionBudget/);
  });

  it('reads the same refusal as a 500 from newer servers', () => {
    assert.equal(interpretEviction({ status: 500, headers: {}, body: status(500, 'This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.') })?.kind, 'failed');
  });

  it('leaves another 500 to the caller as an error', () => {
    assert.equal(interpretEviction({ status: 500, headers: {}, body: status(500, 'etcdserver: request timed out') }), undefined);
  });

  it('reads 429 with Retry-After and the PDB named in the causes', () => {
    const outcome = interpretEviction({
      status: 429,
      headers: { 'retry-after': '7' },
      body: status(429, "Cannot evict pod as it would violate the pod's disruption budget.", { details: { causes: [{ reason: 'DisruptionBudget', message: 'The disruption budget web needs 2 healthy pods and has 2 currently' }] } }),
    });
    assert.deepEqual(outcome, { kind: 'blocked', retryAfterSeconds: 7, message: "Cannot evict pod as it would violate the pod's disruption budget.: The disruption budget web needs 2 healthy pods and has 2 currently" });
  });

  it('tells a failed UID precondition (the pod was replaced) from another conflict', () => {
    assert.equal(interpretEviction({ status: 409, headers: {}, body: status(409, 'Precondition failed: UID in precondition: a, UID in object meta: b') })?.kind, 'replaced');
    assert.equal(interpretEviction({ status: 409, headers: {}, body: status(409, 'Operation cannot be fulfilled on poddisruptionbudgets "web": the object has been modified') })?.kind, 'conflict');
  });

  it('reads a 403 caused by the namespace being deleted as namespace-terminating, and another 403 as an error', () => {
    const terminating = status(403, 'pods "a" is forbidden: unable to create new content in namespace app because it is being terminated', { details: { causes: [{ type: 'NamespaceTerminating', message: 'namespace app is being terminated', field: 'metadata.namespace' }] } });
    assert.deepEqual(interpretEviction({ status: 403, headers: {}, body: terminating }), { kind: 'namespace-terminating', message: 'pods "a" is forbidden: unable to create new content in namespace app because it is being terminated: namespace app is being terminated' });
    assert.equal(interpretEviction({ status: 403, headers: {}, body: status(403, 'pods "a" is forbidden: User "x" cannot create resource "pods/eviction"') }), undefined);
  });

  it('reads 404 as gone', () => {
    assert.deepEqual(interpretEviction({ status: 404, headers: {}, body: status(404, 'pods "x" not found') }), { kind: 'gone' });
  });
});

describe('readLimited (answers read whole, such as agent rows through the pod proxy)', () => {
  it('reads an answer within the limit', async () => {
    assert.equal(await readLimited(Readable.from([Buffer.from('{"a":'), Buffer.from('1}')]), 1024), '{"a":1}');
  });
  it('stops reading and fails once an answer exceeds the limit', async () => {
    let produced = 0;
    const endless = new Readable({
      read() {
        produced += 64 * 1024;
        this.push(Buffer.alloc(64 * 1024, 'x'));
      },
    });
    await assert.rejects(readLimited(endless, 1024 * 1024), (e: unknown) => e instanceof ResponseTooLargeError && e.limit === 1024 * 1024);
    endless.destroy();
    assert.ok(produced < 4 * 1024 * 1024, `read ${produced} bytes of an endless answer`);
  });
});
