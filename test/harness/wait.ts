// Polling for test conditions against the real cluster: the lab's one waiting loop (lab/wait.ts),
// looking every 250 ms by default.
import { waitUntil } from '../../lab/wait.js';

/** Calls `check` until it returns a value other than undefined, or throws after `timeoutMs`. */
export const eventually = <T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000, intervalMs = 250): Promise<T> => waitUntil(what, check, timeoutMs, intervalMs);
