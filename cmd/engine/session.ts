// A run that changes the cluster: the migration lock taken (cmd/engine/lock.ts), every change of
// the cluster and every node restart fenced by it, a short API server outage ridden out, and the
// lock released however the run ends. `node`, `run`, `rollback`, `prepare` and `finalize` work so.
import { systemClock } from '../../lib/clock.js';
import { lockLeaseName } from '../../lib/defaults.js';
import { InterruptedError, UnreachableError } from '../../lib/errors.js';
import type { Kube } from '../../lib/kube.js';
import type { KubeCluster } from '../cluster/cluster.js';
import { kubeEngineCluster } from '../cluster/kube-cluster.js';
import { acquireLock, fencedCluster, systemLockClock, type Lock } from './lock.js';
import type { NodeRestarter } from './restart.js';
import { retryingUnreachable } from './retry.js';
import type { BoundaryHook } from './runner.js';

/** How long an API server outage is ridden out before the run stops. */
const outageLimitMs = 60_000;

export interface LockRequest {
  /** Where the lock Lease lives: the Cilium namespace. */
  namespace: string;
  ttlMs: number;
  runId: string;
  log: (line: string) => void;
  /** The person's Ctrl-C. */
  signal: AbortSignal;
}

/** The cluster with every call retried through a short API server outage (not fenced: for reads before the lock). */
export function patientCluster(kube: Kube, log: (line: string) => void, signal: AbortSignal): KubeCluster {
  return retryingUnreachable(kubeEngineCluster(kube), systemClock, outageLimitMs, (what) => log(`API server unreachable during ${what}; retrying`), signal);
}

/** Takes the migration lock (every command that changes the cluster does). */
export function takeLock(kube: Kube, req: LockRequest): Promise<Lock> {
  return acquireLock(patientCluster(kube, req.log, req.signal), { namespace: req.namespace, name: lockLeaseName, ttlSeconds: req.ttlMs / 1000, runId: req.runId }, systemLockClock(systemClock), req.log, req.signal);
}

/** What a locked run works with: the lock, the cluster fenced by it, and a signal that fires on Ctrl-C or when the lock is lost. */
export interface Session {
  lock: Lock;
  cluster: KubeCluster;
  signal: AbortSignal;
}

/**
 * Runs `work` holding the migration lock, with every change of the cluster fenced by it: the run
 * stops before its next side effect once the lock may have lapsed, with a LockLostError (also when
 * it was waiting at the time). The lock is released however `work` ends.
 */
export async function underLock<T>(kube: Kube, req: LockRequest, work: (session: Session) => Promise<T>): Promise<T> {
  const lock = await takeLock(kube, req);
  const signal = AbortSignal.any([req.signal, lock.lost]);
  const cluster = retryingUnreachable(fencedCluster(kubeEngineCluster(kube), lock), systemClock, outageLimitMs, (what) => req.log(`API server unreachable during ${what}; retrying`), signal);
  try {
    return await work({ lock, cluster, signal });
  } catch (err) {
    // The lost lock, when that is what stopped the run (not the person's Ctrl-C).
    if (lock.lost.aborted && !req.signal.aborted && (err instanceof InterruptedError || err instanceof UnreachableError)) throw lock.lost.reason;
    throw err;
  } finally {
    await lock.release().catch(() => req.log('warning: could not release the migration lock; it expires by itself'));
  }
}

/** `restarter` with its request fenced by the lock: no restart once the lock may have lapsed. */
export function fencedRestarter(restarter: NodeRestarter, lock: Pick<Lock, 'check'>): NodeRestarter {
  return {
    method: restarter.method,
    request: (node, id) => {
      lock.check(`the restart of ${node.name}`);
      return restarter.request(node, id);
    },
    ...(restarter.cleanup ? { cleanup: restarter.cleanup.bind(restarter) } : {}),
  };
}

/**
 * Test hook: CILIUM_MIGRATE_TEST_KILL_AT=[subject/]step:intent|done kills the process at that
 * boundary (of that node, or of any). It does nothing unless set.
 */
export function killHook(): BoundaryHook {
  const at = process.env.CILIUM_MIGRATE_TEST_KILL_AT;
  if (!at) return () => {};
  return (subject, step, when) => {
    if (`${step}:${when}` === at || `${subject}/${step}:${when}` === at) process.kill(process.pid, 'SIGKILL');
  };
}
