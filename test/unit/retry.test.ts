import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { retryingUnreachable } from '../../cmd/engine/retry.js';
import type { Clock } from '../../lib/clock.js';
import { NotFoundError, UnreachableError } from '../../lib/errors.js';

function clock(): Clock {
  let t = 0;
  return { now: () => t, sleep: async (ms) => void (t += ms) };
}

describe('retryingUnreachable', () => {
  it('retries while the server is unreachable, then returns the answer', async () => {
    let calls = 0;
    const api = { async get(x: number) { calls++; if (calls < 4) throw new UnreachableError('down'); return x * 2; } };
    const retries: string[] = [];
    assert.equal(await retryingUnreachable(api, clock(), 60_000, (what) => retries.push(what)).get(21), 42);
    assert.equal(calls, 4);
    assert.deepEqual(retries, ['get', 'get', 'get']);
  });

  it('gives up after the limit with the last error', async () => {
    const api = { async get() { throw new UnreachableError('still down'); } };
    await assert.rejects(retryingUnreachable(api, clock(), 5000).get(), /still down/);
  });

  it('does not retry other errors', async () => {
    let calls = 0;
    const api = { async get() { calls++; throw new NotFoundError('no such node'); } };
    await assert.rejects(retryingUnreachable(api, clock(), 60_000).get(), NotFoundError);
    assert.equal(calls, 1);
  });

  it('keeps `this` for methods that call each other', async () => {
    const api = { base: 5, async plus(x: number) { return this.base + x; } };
    assert.equal(await retryingUnreachable(api, clock(), 1000).plus(1), 6);
  });
});
