// The plugin's one polling loop (lib/poll.ts), on a clock whose sleeps pass at once.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Clock } from '../../lib/clock.js';
import { pollUntil } from '../../lib/poll.js';

function clock(): Clock & { slept: number[] } {
  let t = 0;
  const slept: number[] = [];
  return { slept, now: () => t, sleep: async (ms) => void (slept.push(ms), (t += ms)) };
}
class Stopped extends Error {}
class TimedOut extends Error {}
const errors = { stopped: () => new Stopped(), timedOut: () => new TimedOut() };

describe('pollUntil', () => {
  it('returns the first value, looking intervalMs apart', async () => {
    const c = clock();
    let looks = 0;
    assert.equal(await pollUntil(async () => (++looks === 3 ? 'ready' : undefined), { clock: c, deadline: 10_000, intervalMs: 1000, ...errors }), 'ready');
    assert.deepEqual(c.slept, [1000, 1000]);
  });

  it('gives up when the next look would come after the deadline, having looked at most at it', async () => {
    const c = clock();
    const at: number[] = [];
    await assert.rejects(pollUntil(async () => void at.push(c.now()), { clock: c, deadline: 3000, intervalMs: 1000, ...errors }), TimedOut);
    assert.deepEqual(at, [0, 1000, 2000, 3000]);
  });

  it('stops when the signal fires, before the next look', async () => {
    const c = clock();
    const stop = new AbortController();
    let looks = 0;
    await assert.rejects(pollUntil(async () => (++looks === 2 ? stop.abort() : undefined), { clock: c, deadline: 60_000, intervalMs: 1000, signal: stop.signal, ...errors }), Stopped);
    assert.equal(looks, 2);
  });

  it('gives up at once when a look throws', async () => {
    await assert.rejects(pollUntil(async () => { throw new Error('the pod failed'); }, { clock: clock(), deadline: 60_000, intervalMs: 1000, ...errors }), /the pod failed/);
  });
});
