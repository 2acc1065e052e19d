// The cluster-wide lock that keeps two runs from acting at once: a coordination.k8s.io Lease,
// renewed while the run works. As client-go's leader election does, another holder's lease counts
// as expired only once we have watched it go unrenewed for its whole duration on our own monotonic
// clock (never by comparing its renewTime with our wall clock, which may be skewed), unless its
// holder is a process of this very machine and boot that is gone. A run fences itself: once its last
// successful renewal is older than the TTL minus a margin it stops before its next side effect, since
// another run may take the lease at the TTL.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { inClusterRun, lockFenceMargin } from '../../lib/defaults.js';
import { CliError, ExitCode, InterruptedError } from '../../lib/errors.js';
import type { LeaseStore, LeaseView } from '../cluster/cluster.js';
import type { Clock } from '../../lib/clock.js';

/** Who holds the lock: the machine (a hash of its machine-id) and its boot, the process, the run. */
export interface Holder {
  host: string;
  machine: string;
  boot: string;
  pid: number;
  run: string;
}

export const formatHolder = (h: Holder) => `host=${h.host};machine=${h.machine};boot=${h.boot};pid=${h.pid};run=${h.run}`;

export function parseHolder(text: string): Holder | undefined {
  const fields = Object.fromEntries(text.split(';').map((kv) => kv.split('=', 2) as [string, string]));
  if (!fields.host || !fields.pid || !fields.run) return undefined;
  return { host: fields.host, machine: fields.machine ?? '', boot: fields.boot ?? '', pid: Number(fields.pid), run: fields.run };
}

const describeHolder = (h: Holder | undefined, raw: string) => (h ? `run ${h.run} (pid ${h.pid} on ${h.host})` : raw);

/** The lease as we last saw it, and when (monotonic ms) we first saw it that way. */
export interface Observation {
  key: string;
  sinceMs: number;
}

export type LockDecision =
  | { kind: 'free' }
  | { kind: 'mine' }
  | { kind: 'stale'; reason: string }
  | { kind: 'held'; holder: string; reason: string }
  /** Not judged yet: keep watching the lease for `leftMs`. */
  | { kind: 'watch'; holder: string; leftMs: number };

/**
 * Whether `me` may take the lock described by `lease`, given what we observed of it before and the
 * monotonic time now. Pure: the caller keeps the returned observation for the next call.
 */
export function decideLock(lease: LeaseView | undefined, me: Holder, seen: Observation | undefined, nowMs: number, pidAlive: (pid: number) => boolean): { decision: LockDecision; observation: Observation | undefined } {
  if (!lease || !lease.holder) return { decision: { kind: 'free' }, observation: undefined };
  if (lease.holder === formatHolder(me)) return { decision: { kind: 'mine' }, observation: undefined };
  const holder = parseHolder(lease.holder);
  const who = describeHolder(holder, lease.holder);
  // A process on this machine we can ask directly; a pid means nothing on another machine or boot.
  if (holder && holder.machine && holder.machine === me.machine) {
    if (holder.boot && holder.boot !== me.boot) return { decision: { kind: 'stale', reason: `its holder (${who}) ran on this machine before it rebooted` }, observation: undefined };
    if (holder.boot === me.boot && !pidAlive(holder.pid)) return { decision: { kind: 'stale', reason: `its holder (run ${holder.run}, pid ${holder.pid} on this machine) is no longer running` }, observation: undefined };
    if (holder.boot === me.boot) return { decision: { kind: 'held', holder: who, reason: 'that process is running on this machine' }, observation: undefined };
  }
  const key = `${lease.holder}|${lease.renewTime.toISOString()}|${lease.resourceVersion}`;
  const durationMs = Math.max(1, lease.durationSeconds) * 1000;
  if (!seen) return { decision: { kind: 'watch', holder: who, leftMs: durationMs }, observation: { key, sinceMs: nowMs } };
  if (seen.key !== key) return { decision: { kind: 'held', holder: who, reason: 'it renewed the lease while we watched' }, observation: { key, sinceMs: nowMs } };
  const watched = nowMs - seen.sinceMs;
  if (watched >= durationMs) return { decision: { kind: 'stale', reason: `its holder (${who}) did not renew it during the ${Math.round(watched / 1000)}s we watched (its TTL is ${lease.durationSeconds}s)` }, observation: seen };
  return { decision: { kind: 'watch', holder: who, leftMs: durationMs - watched }, observation: seen };
}

export class LockedError extends CliError {
  constructor(holder: string, reason: string, name: string, ttlSeconds: number) {
    super(`another migration run holds the lock (lease ${name}): ${holder}; ${reason}`, ExitCode.locked, `wait for it to finish; a run that dies loses the lock once it has gone ${ttlSeconds}s without renewing it`);
  }
}

/** The lock could not be renewed in time (or was taken over): the run stopped before acting again. */
export class LockLostError extends CliError {
  constructor(readonly detail: string) {
    super(`lost the migration lock: ${detail}; stopped before the next change, the state is recorded on the nodes`, ExitCode.locked, 'rerun the same command to resume once the API server answers again');
  }
}

export interface Lock {
  readonly holder: Holder;
  /** Fires (with a LockLostError as reason) when the lock is lost or can no longer be trusted. */
  readonly lost: AbortSignal;
  /** Throws LockLostError unless the lock is still ours for sure; call it before every side effect. */
  check(what: string): void;
  release(): Promise<void>;
}

export interface LockOptions {
  namespace: string;
  name: string;
  ttlSeconds: number;
  runId: string;
}

/** Time for the lock: the wall clock (for renewTime), a monotonic clock (for every judgement), sleeping. */
export interface LockClock extends Clock {
  /** Milliseconds that only ever grow, unaffected by changes of the wall clock. */
  monotonic(): number;
}

export const systemLockClock = (clock: Clock): LockClock => ({ ...clock, monotonic: () => performance.now() });

export const pidAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

const readTrimmed = (file: string) => {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return '';
  }
};

/**
 * This machine and boot, so that the same hostname on two machines is never taken for a dead local
 * process: a hash of /etc/machine-id (never the id itself, as machine-id(5) asks) and the kernel's
 * boot_id. Where they do not exist (macOS), a random id kept in the temporary directory stands in.
 */
export function machineIdentity(read: (file: string) => string = readTrimmed, env: NodeJS.ProcessEnv = process.env): { machine: string; boot: string } {
  const hash = (s: string) => createHash('sha256').update(`cilium-migrate:${s}`).digest('hex').slice(0, 16);
  // A run pod (run --in-cluster): its image's machine-id is every pod's, and pods on one node share
  // the kernel's boot_id, so neither tells two pods apart, and a pid means nothing across their PID
  // namespaces. The pod's UID does: a holder of another pod is judged by watching its lease.
  const pod = env[inClusterRun.env.podUid];
  if (pod) return { machine: hash(`pod:${pod}`), boot: '' };
  let machine = read('/etc/machine-id') || read('/var/lib/dbus/machine-id');
  if (!machine) {
    const file = join(tmpdir(), 'cilium-migrate', 'machine-id');
    machine = read(file);
    if (!machine) {
      machine = randomBytes(16).toString('hex');
      try {
        mkdirSync(join(tmpdir(), 'cilium-migrate'), { recursive: true, mode: 0o700 });
        writeFileSync(file, machine, { mode: 0o600 });
      } catch {
        // a per-process id: the pid check then never applies, and expiry is judged by watching
      }
    }
  }
  const boot = read('/proc/sys/kernel/random/boot_id');
  return { machine: hash(machine), boot: boot ? boot.replace(/-/g, '').slice(0, 12) : '' };
}

/** The share of the TTL after which an unrenewed lock can no longer be trusted. */
export const fenceMs = (ttlSeconds: number) => ttlSeconds * 1000 * (1 - lockFenceMargin);

/**
 * Takes the lock or throws LockedError; while the lease is held by a run not known to be alive or
 * dead, watches it for up to its duration (as client-go does) and reports that. Renews every TTL/3
 * until released.
 */
export async function acquireLock(
  cluster: LeaseStore,
  options: LockOptions,
  clock: LockClock,
  log: (line: string) => void,
  signal?: AbortSignal,
  identity: { machine: string; boot: string } = machineIdentity(),
  alive: (pid: number) => boolean = pidAlive,
): Promise<Lock> {
  const me: Holder = { host: hostname(), ...identity, pid: process.pid, run: options.runId };
  const where = `${options.namespace}/${options.name}`;
  let seen: Observation | undefined;
  let told = false;
  for (let conflicts = 0; ; ) {
    const lease = await cluster.getLease(options.namespace, options.name);
    const { decision, observation } = decideLock(lease, me, seen, clock.monotonic(), alive);
    seen = observation;
    if (decision.kind === 'held') throw new LockedError(decision.holder, decision.reason, where, lease?.durationSeconds ?? options.ttlSeconds);
    if (decision.kind === 'watch') {
      if (!told) log(`the migration lock (lease ${where}) is held by ${decision.holder}; watching for up to ${Math.ceil(decision.leftMs / 1000)}s whether it still renews it`);
      told = true;
      await clock.sleep(Math.min(1000, decision.leftMs), signal);
      if (signal?.aborted) throw new InterruptedError(`stopped while watching the lease of ${decision.holder}; nothing was changed`);
      continue;
    }
    if (decision.kind === 'stale') log(`taking over the migration lock: ${decision.reason}`);
    const started = clock.monotonic();
    if (await cluster.writeLease(options.namespace, options.name, formatHolder(me), options.ttlSeconds, new Date(clock.now()), lease?.resourceVersion)) {
      return holdLock(cluster, options, clock, me, started, log);
    }
    seen = undefined;
    if (++conflicts > 3) throw new CliError('could not take the migration lock: it kept changing under us', ExitCode.locked, 'another run is starting; retry in a moment');
  }
}

function holdLock(cluster: LeaseStore, options: LockOptions, clock: LockClock, me: Holder, acquiredAt: number, log: (line: string) => void): Lock {
  const lost = new AbortController();
  const limitMs = fenceMs(options.ttlSeconds);
  const renewEveryMs = Math.max(1000, (options.ttlSeconds * 1000) / 3);
  // From the start of the request that renewed it: the lease is good for a TTL from then at the latest.
  let renewedAt = acquiredAt;
  let lastAttempt = acquiredAt;
  let pending: Promise<void> | undefined;
  let stopped = false;
  const lose = (detail: string) => {
    if (!lost.signal.aborted) lost.abort(new LockLostError(detail));
  };
  const expired = () => {
    const age = clock.monotonic() - renewedAt;
    if (age > limitMs) lose(`it was last renewed ${Math.round(age / 1000)}s ago and another run may take it after ${options.ttlSeconds}s (the API server did not answer in time)`);
  };
  const renew = async () => {
    const started = clock.monotonic();
    lastAttempt = started;
    const lease = await cluster.getLease(options.namespace, options.name);
    if (!lease || lease.holder !== formatHolder(me)) {
      lose(lease?.holder ? `it is now held by ${describeHolder(parseHolder(lease.holder), lease.holder)}` : 'its lease was deleted');
      return;
    }
    if (await cluster.writeLease(options.namespace, options.name, formatHolder(me), options.ttlSeconds, new Date(clock.now()), lease.resourceVersion)) {
      renewedAt = Math.max(renewedAt, started);
      const took = clock.monotonic() - started;
      if (took > renewEveryMs / 2) log(`renewing the migration lock took ${Math.round(took / 1000)}s: the API server is slow to answer (the run stops if no renewal succeeds for ${Math.round(limitMs / 1000)}s)`);
    }
  };
  const timer = setInterval(() => {
    if (stopped) return;
    expired();
    if (lost.signal.aborted || clock.monotonic() - lastAttempt < renewEveryMs) return;
    // A renewal still unanswered after a whole period does not hold up the next one: a request that
    // never returns (no answer, no error) would otherwise stop every renewal after it.
    if (pending) log(`the migration lock's renewal sent ${Math.round((clock.monotonic() - lastAttempt) / 1000)}s ago has no answer yet; sending another`);
    const attempt: Promise<void> = renew()
      // A failed renewal is retried at the next turn; the fence stops the run if none succeeds in time.
      .catch((err: unknown) => {
        if (!stopped) log(`renewing the migration lock failed: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}; retrying in ${Math.round(renewEveryMs / 1000)}s`);
      })
      .finally(() => {
        if (pending === attempt) pending = undefined;
      });
    pending = attempt;
  }, Math.min(1000, renewEveryMs));
  timer.unref();
  return {
    holder: me,
    lost: lost.signal,
    check(what) {
      expired();
      if (lost.signal.aborted) {
        throw new LockLostError(`${(lost.signal.reason as LockLostError).detail} (before ${what})`);
      }
    },
    async release() {
      stopped = true;
      clearInterval(timer);
      if (lost.signal.aborted) log('the migration lock was lost; removing it if it is still ours');
      await cluster.deleteLease(options.namespace, options.name, formatHolder(me));
    },
  };
}

/** Methods of the engine's cluster that change something: each waits for the lock's say-so. */
const mutating = new Set<string>(['patchNode', 'evictPod', 'deletePod', 'deletePodByUid', 'createProbePod', 'createHostCommandPod', 'recordEvent']);

/** `cluster` with every mutating call fenced by `lock`: a run whose lock may have lapsed changes nothing. */
export function fencedCluster<T extends object>(cluster: T, lock: Pick<Lock, 'check'>): T {
  return new Proxy(cluster, {
    get(obj, prop, receiver) {
      const value = Reflect.get(obj, prop, receiver) as unknown;
      if (typeof value !== 'function' || !mutating.has(String(prop))) return value;
      // Every mutating method is async: the refusal is a rejected promise like any other failure.
      return async (...args: unknown[]) => {
        lock.check(String(prop));
        return (value as (...a: unknown[]) => unknown).apply(receiver, args);
      };
    },
  });
}
