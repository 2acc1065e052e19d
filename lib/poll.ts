// Waiting for the cluster to show something (a new pod Ready, a node back, a script's pod done):
// the plugin's one polling loop, on a Clock passed in so that waits and deadlines are tested with
// time that passes at once.
import type { Clock } from './clock.js';

export interface PollOptions {
  clock: Clock;
  /** Give up once the next look would come after this time (clock milliseconds). */
  deadline: number;
  /** Between looks. */
  intervalMs: number;
  signal?: AbortSignal | undefined;
  /** The error to throw when `signal` fires (a look in progress is finished first). */
  stopped: () => Error;
  /** The error to throw when time is up. */
  timedOut: () => Error;
}

/**
 * Calls `look` until it returns a value other than undefined and returns that value; `look` may
 * throw to give up at once (a pod that failed). Looks `intervalMs` apart, the first at once.
 */
export async function pollUntil<T>(look: () => Promise<T | undefined>, opts: PollOptions): Promise<T> {
  for (;;) {
    const value = await look();
    if (value !== undefined) return value;
    if (opts.signal?.aborted) throw opts.stopped();
    if (opts.clock.now() + opts.intervalMs > opts.deadline) throw opts.timedOut();
    await opts.clock.sleep(opts.intervalMs, opts.signal);
    if (opts.signal?.aborted) throw opts.stopped();
  }
}
