// The cluster-wide lock that keeps two runs from acting at once: a coordination.k8s.io Lease,
// renewed while the run works, taken over when its holder stopped renewing (after the TTL) or, on
// the same machine, when the holder's process is gone.
import { hostname } from 'node:os';
import { CliError, ExitCode } from '../../lib/errors.js';
import type { EngineCluster, LeaseView } from './cluster.js';
import type { Clock } from './drain.js';

export interface Holder {
  host: string;
  pid: number;
  run: string;
}

export const formatHolder = (h: Holder) => `host=${h.host};pid=${h.pid};run=${h.run}`;

export function parseHolder(text: string): Holder | undefined {
  const fields = Object.fromEntries(text.split(';').map((kv) => kv.split('=', 2) as [string, string]));
  if (!fields.host || !fields.pid || !fields.run) return undefined;
  return { host: fields.host, pid: Number(fields.pid), run: fields.run };
}

export type LockDecision =
  | { kind: 'free' }
  | { kind: 'mine' }
  | { kind: 'stale'; reason: string }
  | { kind: 'held'; holder: string; secondsLeft: number };

/** Whether `me` may take the lock described by `lease` at `now`. */
export function decideLock(lease: LeaseView | undefined, me: Holder, now: Date, pidAlive: (pid: number) => boolean): LockDecision {
  if (!lease || !lease.holder) return { kind: 'free' };
  if (lease.holder === formatHolder(me)) return { kind: 'mine' };
  const holder = parseHolder(lease.holder);
  if (holder && holder.host === me.host && !pidAlive(holder.pid)) {
    return { kind: 'stale', reason: `its holder (run ${holder.run}, pid ${holder.pid} on this machine) is no longer running` };
  }
  const expires = lease.renewTime.getTime() + lease.durationSeconds * 1000;
  if (now.getTime() >= expires) {
    return { kind: 'stale', reason: `its holder (${holder ? `run ${holder.run} on ${holder.host}` : lease.holder}) stopped renewing it ${Math.round((now.getTime() - lease.renewTime.getTime()) / 1000)}s ago` };
  }
  return { kind: 'held', holder: holder ? `run ${holder.run} (pid ${holder.pid} on ${holder.host})` : lease.holder, secondsLeft: Math.ceil((expires - now.getTime()) / 1000) };
}

export class LockedError extends CliError {
  constructor(holder: string, secondsLeft: number, name: string) {
    super(
      `another migration run holds the lock (lease ${name}): ${holder}`,
      ExitCode.locked,
      `wait for it to finish; if it died, its lock expires in ${secondsLeft}s and the next run takes over`,
    );
  }
}

export interface Lock {
  readonly holder: Holder;
  /** Fires when the lock was lost (someone else took it); the run must stop. */
  readonly lost: AbortSignal;
  release(): Promise<void>;
}

export interface LockOptions {
  namespace: string;
  name: string;
  ttlSeconds: number;
  runId: string;
}

const pidAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/** Takes the lock or throws LockedError; renews it every TTL/3 until released. */
export async function acquireLock(cluster: EngineCluster, options: LockOptions, clock: Clock, log: (line: string) => void): Promise<Lock> {
  const me: Holder = { host: hostname(), pid: process.pid, run: options.runId };
  for (let attempt = 0; ; attempt++) {
    const lease = await cluster.getLease(options.namespace, options.name);
    const decision = decideLock(lease, me, new Date(clock.now()), pidAlive);
    if (decision.kind === 'held') throw new LockedError(decision.holder, decision.secondsLeft, `${options.namespace}/${options.name}`);
    if (decision.kind === 'stale') log(`taking over the migration lock: ${decision.reason}`);
    const won = await cluster.writeLease(options.namespace, options.name, formatHolder(me), options.ttlSeconds, new Date(clock.now()), lease?.resourceVersion);
    if (won) break;
    if (attempt >= 3) throw new CliError('could not take the migration lock: it kept changing under us', ExitCode.locked, 'another run is starting; retry in a moment');
  }

  const lost = new AbortController();
  let stopped = false;
  const renew = async () => {
    const lease = await cluster.getLease(options.namespace, options.name);
    if (!lease || lease.holder !== formatHolder(me)) {
      lost.abort(new Error('lock lost'));
      return;
    }
    await cluster.writeLease(options.namespace, options.name, formatHolder(me), options.ttlSeconds, new Date(clock.now()), lease.resourceVersion);
  };
  const timer = setInterval(() => {
    if (stopped) return;
    // A failed renewal is retried at the next tick; the TTL leaves room for two misses.
    renew().catch(() => {});
  }, Math.max(1000, (options.ttlSeconds * 1000) / 3));
  timer.unref();
  return {
    holder: me,
    lost: lost.signal,
    async release() {
      stopped = true;
      clearInterval(timer);
      await cluster.deleteLease(options.namespace, options.name, formatHolder(me));
    },
  };
}
