// Riding out a short API server outage (a restart, a leader change): every call of the engine's
// cluster interface is retried while the server is unreachable, up to a limit. Evictions and
// deletions carry UID preconditions, so a retried request never hits the wrong pod.
import { UnreachableError } from '../../lib/errors.js';
import type { Clock } from '../../lib/clock.js';

/** Wraps every method of `target` so that UnreachableError is retried for up to `limitMs`. */
export function retryingUnreachable<T extends object>(target: T, clock: Clock, limitMs: number, onRetry: (what: string, err: Error) => void = () => {}, signal?: AbortSignal): T {
  return new Proxy(target, {
    get(obj, prop, receiver) {
      const value = Reflect.get(obj, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return async (...args: unknown[]) => {
        const deadline = clock.now() + limitMs;
        let delay = 250;
        for (;;) {
          try {
            return await (value as (...a: unknown[]) => Promise<unknown>).apply(receiver, args);
          } catch (err) {
            if (!(err instanceof UnreachableError) || clock.now() + delay > deadline || signal?.aborted) throw err;
            onRetry(String(prop), err);
            await clock.sleep(delay, signal);
            delay = Math.min(delay * 2, 2000);
          }
        }
      };
    },
  });
}
