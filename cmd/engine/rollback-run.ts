// `rollback NODE`: one node back to the legacy CNI under the migration lock (or, with --dry-run, every
// step it would take and why). Refused once finalize has begun: the CiliumNodeConfig or the legacy
// CNI may be gone by then.
import { systemClock } from '../../lib/clock.js';
import { PreconditionError } from '../../lib/errors.js';
import { serverVersion, type Kube } from '../../lib/kube.js';
import { newRunId } from '../../lib/run-id.js';
import type { Io } from '../context.js';
import { ciliumClusterCidrs, readCiliumConfig } from '../migration/cilium-config.js';
import { readFinalizeRecord } from '../migration/finalize.js';
import { restarterFor, type RestartChoice } from './restart.js';
import { rollbackNode, type RollbackOptions, type RollbackResult } from './rollback-node.js';
import { fencedRestarter, killHook, patientCluster, underLock } from './session.js';

export interface RollbackRunOptions {
  node: string;
  /** The steps' options; the run id, the restarter and Cilium's cluster CIDRs are the run's own. */
  steps: Omit<RollbackOptions, 'runId' | 'restarter' | 'ciliumClusterCidrs'>;
  restart: RestartChoice;
  lockTtlMs: number;
}

/** Rolls `opts.node` back (or describes how); returns its steps. */
export async function rollbackRun(kube: Kube, opts: RollbackRunOptions, io: Io, userSignal: AbortSignal): Promise<RollbackResult> {
  const runId = newRunId();
  const log = (line: string) => io.err(`${line}\n`);
  const ns = opts.steps.ciliumNamespace;
  await serverVersion(kube);
  const record = await readFinalizeRecord(kube, ns);
  if (record) {
    throw new PreconditionError(`the migration was finalized (${record.phase} since ${record.startedAt}): the CiliumNodeConfig and the legacy CNI may be gone, so a node cannot return to it`, 'to go back now, reinstall the legacy CNI and plan a new migration');
  }
  const clusterCidrs = ciliumClusterCidrs(await readCiliumConfig(kube, ns));
  const cluster = patientCluster(kube, log, userSignal);
  const restarter = restarterFor(opts.restart, await cluster.getNode(opts.node), cluster, ns);
  const reporter = { line: (node: string, text: string) => log(`[${node}] ${text}`), status: (node: string, text: string) => log(`[${node}] ${text}`) };
  const options: RollbackOptions = { ...opts.steps, runId, restarter, ciliumClusterCidrs: clusterCidrs };
  if (opts.steps.dryRun) return rollbackNode(cluster, opts.node, options, systemClock, reporter, userSignal);
  return underLock(kube, { namespace: ns, ttlMs: opts.lockTtlMs, runId, log, signal: userSignal }, ({ lock, cluster: locked, signal }) =>
    rollbackNode(locked, opts.node, { ...options, restarter: fencedRestarter(restarter, lock) }, systemClock, reporter, signal, killHook()),
  );
}
