// `node` and `run`: nodes migrated wave by wave under the migration lock. The nodes of a wave go at
// the same time, the next wave only when every node of this one is migrated; without waves each
// node is a wave of its own. The first failure stops the other nodes of its wave at their next
// safe point (their state recorded) and no further wave starts.
import { defaultMaxListeners, setMaxListeners } from 'node:events';
import { systemClock } from '../../lib/clock.js';
import { defaultConnectivity } from '../../lib/defaults.js';
import { InterruptedError } from '../../lib/errors.js';
import { call, serverVersion, type Kube } from '../../lib/kube.js';
import { newRunId } from '../../lib/run-id.js';
import type { EngineCluster } from '../cluster/cluster.js';
import { toNodeView } from '../cluster/kube-cluster.js';
import type { Io } from '../context.js';
import type { MatrixSettings } from '../matrix/read.js';
import { readOverlayTunnels } from '../migration/cilium-config.js';
import { migrationPlan, planWaves, readCluster, type ClusterSnapshot, type PlannedNode } from '../migration/cluster-view.js';
import { clusterStateGate, type Gate } from './gate.js';
import { matrixGate } from './matrix-gate.js';
import { migrateNode, type EngineOptions, type EngineReporter, type NodeResult } from './migrate-node.js';
import { restarterFor, type NodeRestarter, type RestartChoice } from './restart.js';
import { fencedRestarter, killHook, patientCluster, underLock } from './session.js';

/** Which gate judges each node: the probe agents' matrix, or only Cilium's readiness and new pod IPs. */
export type GateChoice = { kind: 'matrix'; matrix: MatrixSettings } | { kind: 'cluster-state' };

/** A migration run as the flags describe it. */
export interface NodeRunOptions {
  /** The steps' options; the run id and each node's restarter are the run's own. */
  steps: Omit<EngineOptions, 'runId' | 'restarter'>;
  restart: RestartChoice;
  gate: GateChoice;
  lockTtlMs: number;
}

/** What the person sees: a terminal running one node redraws its live status in place; otherwise (a log, or several nodes at once) a node gets a line when its status changes in substance, not for every pod. */
export function terminalReporter(io: Pick<Io, 'err' | 'isTTY'>, concurrent: boolean): EngineReporter {
  const lastKey = new Map<string, string>();
  const inPlace = io.isTTY && !concurrent;
  const log = (line: string) => io.err(`${line}\n`);
  return {
    line: (node, text) => {
      if (inPlace) io.err('\r\x1b[K');
      log(`[${node}] ${text}`);
    },
    status: (node, text, key = text) => {
      if (inPlace) return io.err(`\r\x1b[K[${node}] ${text}`);
      if (lastKey.get(node) === key) return;
      lastKey.set(node, key);
      log(`[${node}] ${text}`);
    },
  };
}

async function gateFor(kube: Kube, cluster: EngineCluster, choice: GateChoice, steps: NodeRunOptions['steps']): Promise<Gate> {
  if (choice.kind === 'cluster-state') {
    return clusterStateGate(cluster, async () => (await call(kube, 'list nodes', () => kube.core.listNode())).items.map(toNodeView), steps.ciliumNamespace);
  }
  // Idle keep-alive sockets are unref'd by node's agent: they never hold the process open.
  const source = choice.matrix.source(kube, steps.labelKey);
  const tunnels = await readOverlayTunnels(kube, steps.ciliumNamespace);
  return matrixGate(source, { policy: choice.matrix.policy, concurrency: choice.matrix.concurrency, timeoutMs: choice.matrix.timeoutMs, lookbackMs: defaultConnectivity.lookbackSeconds * 1000, tunnels, roundMs: steps.gate.intervalMs }, systemClock);
}

/** Migrates `waves` of nodes (a dry run describes every step of each instead); returns each node's steps. */
export async function migrateNodes(kube: Kube, opts: NodeRunOptions, waves: string[][], io: Io, userSignal: AbortSignal): Promise<NodeResult[]> {
  const runId = newRunId();
  const log = (line: string) => io.err(`${line}\n`);
  // An unreachable cluster fails at once; only an outage in the middle of a run is ridden out.
  await serverVersion(kube);
  const cluster = patientCluster(kube, log, userSignal);
  if (opts.steps.drain.disableEviction) log('warning: --disable-eviction deletes pods directly: PodDisruptionBudgets are NOT respected');

  const order = waves.filter((w) => w.length > 0);
  const concurrent = order.some((w) => w.length > 1);
  // Every node (and its restart method) resolved before any is touched.
  const restarters = new Map<string, NodeRestarter>();
  for (const name of order.flat()) restarters.set(name, restarterFor(opts.restart, await cluster.getNode(name), cluster, opts.steps.ciliumNamespace));
  const reporter = terminalReporter(io, concurrent);
  const gate = await gateFor(kube, cluster, opts.gate, opts.steps);
  const nodeOptions = (name: string, restarter = restarters.get(name)!): EngineOptions => ({ ...opts.steps, runId, restarter });

  if (opts.steps.dryRun) {
    const results: NodeResult[] = [];
    for (const name of order.flat()) results.push(await migrateNode(cluster, gate, name, nodeOptions(name), systemClock, reporter, userSignal));
    return results;
  }

  return underLock(kube, { namespace: opts.steps.ciliumNamespace, ttlMs: opts.lockTtlMs, runId, log, signal: userSignal }, async ({ lock, cluster: locked, signal }) => {
    const results: NodeResult[] = [];
    for (const [i, wave] of order.entries()) {
      if (concurrent) log(`wave ${i + 1} of ${order.length}: ${wave.join(', ')}`);
      const stopWave = new AbortController();
      const waveSignal = waveSignalOf(signal, stopWave.signal, wave.length);
      // One baseline per wave, taken before any node of the wave is touched: a node's baseline
      // must not see another node of its own wave half way through its restart.
      let baseline: ReturnType<Gate['baseline']> | undefined;
      // A node's gate leaves the cells of the other nodes of its wave to their own gates; the
      // wave's gates share their reads of the matrix where the gate can (one read per round).
      const perWave = gate.forWave?.(wave) ?? gate;
      const waveGate: Gate = { name: gate.name, baseline: () => (baseline ??= perWave.baseline()), check: (focus, since, record) => perWave.check(focus, since, record, wave.filter((n) => n !== focus.name)) };
      const settled = await Promise.allSettled(
        wave.map(async (name) => {
          try {
            return await migrateNode(locked, waveGate, name, nodeOptions(name, fencedRestarter(restarters.get(name)!, lock)), systemClock, reporter, waveSignal, killHook());
          } catch (err) {
            if (!stopWave.signal.aborted && wave.length > 1) log(`[${name}] failed; stopping the other nodes of wave ${i + 1} at their next safe point`);
            stopWave.abort();
            throw err;
          }
        }),
      );
      for (const s of settled) if (s.status === 'fulfilled') results.push(s.value);
      const failures = settled.flatMap((s) => (s.status === 'rejected' ? [s.reason as unknown] : []));
      // The cause, not the stops it caused in the other nodes of the wave.
      if (failures.length > 0) throw failures.find((f) => !(f instanceof InterruptedError)) ?? failures[0];
    }
    return results;
  });
}

/**
 * The signal every node of a wave stops on. Each node waits on it (a sleep, a poll, a request) at
 * the same time as the others: 50 nodes are 50 listeners or more, not a leak, so Node's warning at
 * 11 listeners ("MaxListenersExceededWarning", printed in every 50-node wave) is raised to a bound
 * that a real leak would still cross.
 */
export function waveSignalOf(run: AbortSignal, stopWave: AbortSignal, nodes: number): AbortSignal {
  const signal = AbortSignal.any([run, stopWave]);
  setMaxListeners(Math.max(defaultMaxListeners, nodes * listenersPerNode), signal);
  return signal;
}

/** How many waits one node may have on its wave's signal at once (a step's poll, its request, the lock). */
const listenersPerNode = 8;

/** The nodes `run` would migrate now, in plan order, and their waves of up to `maxUnavailable`. */
export async function remainingWaves(kube: Kube, opts: Pick<NodeRunOptions, 'steps'>, maxUnavailable: number): Promise<{ plan: PlannedNode[]; waves: string[][]; snap: ClusterSnapshot }> {
  const snap = await readCluster(kube, { ciliumNamespace: opts.steps.ciliumNamespace });
  const plan = migrationPlan(snap, opts.steps.drain, maxUnavailable, new Date());
  return { plan, waves: planWaves(plan), snap };
}

/**
 * `run`: every node not migrated yet, in plan order (nodes under way, workers, then the control
 * plane), in waves of up to `maxUnavailable`; a rerun resumes with the nodes left. `check` may
 * refuse the waves before anything is done (a run pod checks it can hand over in each).
 */
export async function migrateRemaining(kube: Kube, opts: NodeRunOptions, maxUnavailable: number, io: Io, signal: AbortSignal, check?: (waves: string[][], snap: ClusterSnapshot) => void): Promise<NodeResult[]> {
  const { plan, waves, snap } = await remainingWaves(kube, opts, maxUnavailable);
  if (plan.length === 0) {
    io.err('every node is migrated: nothing to do (next: kubectl cilium-migrate finalize)\n');
    return [];
  }
  check?.(waves, snap);
  io.err(`migrating ${plan.length} node${plan.length === 1 ? '' : 's'} in this order: ${plan.map((p) => p.node).join(', ')}` + (maxUnavailable > 1 ? ` (${waves.length} waves of up to ${maxUnavailable})` : '') + '\n');
  return migrateNodes(kube, opts, waves, io, signal);
}
