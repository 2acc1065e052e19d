// Waiting in the lab, the tests and the benchmarks: until a look at a real system answers, in real
// time, with a message that says what never came and the last error on the way. It is the
// plugin's polling loop (lib/poll.ts) on the machine's clock, with the looks' errors kept.
import { systemClock } from '../lib/clock.js';
import { pollUntil } from '../lib/poll.js';

/** Calls `check` until it returns a value other than undefined (returned), `intervalMs` apart; an error thrown by `check` counts as "not yet". */
export async function waitUntil<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000, intervalMs = 500): Promise<T> {
  let last: unknown;
  return pollUntil(
    async () => {
      try {
        return await check();
      } catch (err) {
        last = err;
        return undefined;
      }
    },
    {
      clock: systemClock,
      deadline: systemClock.now() + timeoutMs,
      intervalMs,
      stopped: () => new Error(`stopped waiting for ${what}`),
      timedOut: () => new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}${last ? ` (last error: ${last instanceof Error ? last.message : String(last)})` : ''}`),
    },
  );
}
