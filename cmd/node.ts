// `node NODE...`: migrates the named nodes one after another through the step machine.
import { ciliumNamespace, defaultConnectivity, defaultGate, defaultTimeouts, hostCommandImage, limits, lockLeaseName, lockTtlSeconds, migrationLabel, verifyImage } from '../lib/defaults.js';
import { duration, flagCoercion, gracePeriod, lastOccurrence, imageReference, integer, labelKey, labelSelector, listCoercion, namespace, nodeName, requireCompanion, restartCommandTemplate } from '../lib/flag-values.js';
import { InterruptedError, UnreachableError, UsageError } from '../lib/errors.js';
import type { Kube } from '../lib/kube.js';
import { defineCommand, type CommandContext } from './context.js';
import type { EngineCluster, NodeView } from './cluster/cluster.js';
import { systemClock } from '../lib/clock.js';
import { defaultDrainOptions, type DrainOptions } from './engine/drain.js';
import { clusterStateGate, type Gate } from './engine/gate.js';
import { matrixGate } from './engine/matrix-gate.js';
import { matrixFlags, matrixSettings, type MatrixArgs } from './flags/matrix.js';
import { kubeEngineCluster, toNodeView } from './cluster/kube-cluster.js';
import { acquireLock, fencedCluster, systemLockClock, type Lock } from './engine/lock.js';
import { migrateNode, type BoundaryHook, type EngineOptions, type NodeResult } from './engine/migrate-node.js';
import { chooseRestartMethod, execRestarter, kindRestarter, noneRestarter, rebootRestarter, restartMethods, type NodeRestarter, type RestartMethod } from './engine/restart.js';
import { retryingUnreachable } from './engine/retry.js';
import type { HostPodCluster } from './engine/host-command.js';
import { readOverlayTunnels } from './migration/cilium-config.js';
import { render } from './output.js';
import { newRunId } from '../lib/run-id.js';
import { call, serverVersion } from '../lib/kube.js';

export const gateKinds = ['matrix', 'cluster-state'] as const;
export type GateKind = (typeof gateKinds)[number];

export interface NodeArgs extends MatrixArgs {
  nodes: string[];
  gate: GateKind;
  'label-key': string;
  'cilium-namespace': string;
  'ignore-daemonsets': boolean;
  'delete-emptydir-data': boolean;
  force: boolean;
  /** Seconds; -1 keeps each pod's own. */
  'grace-period': number;
  /** Milliseconds, as every duration flag once parsed. */
  'drain-timeout': number;
  /** Seconds, as kubectl takes it. */
  'skip-wait-for-delete-timeout': number;
  'pod-selector'?: string | undefined;
  'disable-eviction': boolean;
  parallelism: number;
  restart?: RestartMethod | undefined;
  'restart-command'?: string | undefined;
  'restart-timeout': number;
  'agent-restart-timeout': number;
  'restart-stragglers': boolean;
  'host-image': string;
  'verify-namespace': string;
  'verify-image': string;
  'verify-timeout': number;
  'gate-rounds': number;
  'gate-interval': number;
  'gate-timeout': number;
  'lock-ttl': number;
  'dry-run': boolean;
  yes: boolean;
}

/** The rules that tie flags together, checked before anything contacts the cluster. */
export function checkEngineFlags(args: Pick<NodeArgs, 'grace-period' | 'force' | 'restart' | 'restart-command' | 'yes' | 'dry-run'>): void {
  gracePeriod(args['grace-period'], args.force);
  requireCompanion(args.restart === 'exec' && !args['restart-command'], '--restart exec', '--restart-command', '--restart-command "ssh {node} sudo systemctl reboot"');
  requireCompanion(args['restart-command'] !== undefined && args.restart !== 'exec', '--restart-command', '--restart exec');
  requireCompanion(args.restart === 'reboot' && !args.yes && !args['dry-run'], '--restart reboot (it reboots the host through a privileged pod)', '--yes to confirm');
}

/** The drain the flags describe. */
export function drainOptions(args: Pick<NodeArgs, 'ignore-daemonsets' | 'delete-emptydir-data' | 'force' | 'skip-wait-for-delete-timeout' | 'pod-selector' | 'grace-period' | 'drain-timeout' | 'parallelism' | 'disable-eviction'>): DrainOptions {
  return {
    ...defaultDrainOptions,
    ignoreDaemonSets: args['ignore-daemonsets'],
    deleteEmptyDirData: args['delete-emptydir-data'],
    force: args.force,
    skipWaitForDeleteTimeoutSeconds: args['skip-wait-for-delete-timeout'],
    podSelector: args['pod-selector'],
    gracePeriodSeconds: gracePeriod(args['grace-period'], args.force),
    timeoutMs: args['drain-timeout'],
    parallelism: args.parallelism,
    disableEviction: args['disable-eviction'],
  };
}

/** The engine options the flags describe (restart method resolved per node later). */
export function engineOptions(args: NodeArgs, runId: string): Omit<EngineOptions, 'restarter'> {
  checkEngineFlags(args);
  return {
    runId,
    labelKey: args['label-key'],
    ciliumNamespace: args['cilium-namespace'],
    drain: drainOptions(args),
    restartStragglers: args['restart-stragglers'],
    verifyNamespace: args['verify-namespace'],
    verifyImage: args['verify-image'],
    timeoutsMs: {
      agentRestart: args['agent-restart-timeout'],
      nodeRestart: args['restart-timeout'],
      verify: args['verify-timeout'],
      gate: args['gate-timeout'],
    },
    gate: { rounds: args['gate-rounds'], intervalMs: args['gate-interval'] },
    pollMs: 1000,
    dryRun: args['dry-run'],
  };
}

export function restarterFor(args: Pick<NodeArgs, 'restart' | 'restart-command' | 'yes' | 'dry-run' | 'host-image'>, node: NodeView, cluster: HostPodCluster, namespace: string): NodeRestarter {
  const method = chooseRestartMethod(args.restart, node);
  switch (method) {
    case 'kind':
      return kindRestarter();
    case 'exec':
      if (!args['restart-command']) throw new UsageError('--restart exec needs --restart-command, e.g. --restart-command "ssh {node} sudo systemctl reboot"');
      return execRestarter(args['restart-command']);
    case 'reboot':
      if (!args.yes && !args['dry-run']) throw new UsageError('--restart reboot (it reboots the host through a privileged pod) needs --yes to confirm');
      return rebootRestarter(cluster, namespace, args['host-image']);
    case 'none':
      return noneRestarter();
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
 * Takes the migration lock for a run that changes the cluster, with every change of `cluster`
 * (and every restart) fenced by it: the run stops before its next side effect once the lock may
 * have lapsed, with a LockLostError (also when it was waiting at the time).
 */
export async function lockedCluster(kube: Kube, opts: LockRequest): Promise<{ lock: Lock; cluster: EngineCluster; signal: AbortSignal }> {
  const lock = await takeLock(kube, opts);
  const signal = AbortSignal.any([opts.signal, lock.lost]);
  return { lock, cluster: retryingUnreachable(fencedCluster(kubeEngineCluster(kube), lock), systemClock, 60_000, (what) => opts.log(`API server unreachable during ${what}; retrying`), signal), signal };
}

export interface LockRequest {
  /** Where the lock Lease lives: the Cilium namespace. */
  namespace: string;
  ttlMs: number;
  runId: string;
  log: (line: string) => void;
  signal: AbortSignal;
}

/** Takes the migration lock (every command that changes the cluster does; see cmd/engine/lock.ts). */
export function takeLock(kube: Kube, opts: LockRequest): Promise<Lock> {
  const leases = retryingUnreachable(kubeEngineCluster(kube), systemClock, 60_000, (what) => opts.log(`API server unreachable during ${what}; retrying`), opts.signal);
  return acquireLock(leases, { namespace: opts.namespace, name: lockLeaseName, ttlSeconds: opts.ttlMs / 1000, runId: opts.runId }, systemLockClock(systemClock), opts.log, opts.signal);
}

/** The error to report for a run that stopped: the lost lock, when that is what stopped it. */
export function stopCause(err: unknown, lock: Lock, userSignal: AbortSignal): unknown {
  if (lock.lost.aborted && !userSignal.aborted && (err instanceof InterruptedError || err instanceof UnreachableError)) return lock.lost.reason;
  return err;
}

/**
 * Test hook: CILIUM_MIGRATE_TEST_KILL_AT=[node/]step:intent|done kills the process at that
 * boundary (of that node, or of any). It does nothing unless set.
 */
export function killHook(): BoundaryHook {
  const at = process.env.CILIUM_MIGRATE_TEST_KILL_AT;
  if (!at) return () => {};
  return (node, step, when) => {
    if (`${step}:${when}` === at || `${node}/${step}:${when}` === at) process.kill(process.pid, 'SIGKILL');
  };
}

/**
 * Migrates the nodes wave by wave: the nodes of a wave at the same time, the next wave only when
 * every node of this one is migrated. Without waves, each node is a wave of its own. The first
 * failure stops the other nodes of its wave at their next safe point (their state recorded) and
 * no further wave starts.
 */
export async function runNodes(ctx: CommandContext, args: NodeArgs, waves?: string[][]): Promise<NodeResult[]> {
  const runId = newRunId();
  const base = engineOptions(args, runId);
  const kube = ctx.kube();
  const io = ctx.io;
  const log = (line: string) => io.err(`${line}\n`);
  // An unreachable cluster fails at once; only an outage in the middle of a run is ridden out.
  await serverVersion(kube);
  const cluster = retryingUnreachable(kubeEngineCluster(kube), systemClock, 60_000, (what) => log(`API server unreachable during ${what}; retrying`), ctx.signal);
  if (args['disable-eviction']) log('warning: --disable-eviction deletes pods directly: PodDisruptionBudgets are NOT respected');

  const order = (waves ?? [...new Set(args.nodes)].map((n) => [n])).filter((w) => w.length > 0);
  const concurrent = order.some((w) => w.length > 1);
  // Resolve every node (and its restart method) before touching any.
  const restarters = new Map<string, NodeRestarter>();
  for (const name of order.flat()) {
    const view = await cluster.getNode(name);
    restarters.set(name, restarterFor(args, view, kubeEngineCluster(kube), args['cilium-namespace']));
  }
  // A terminal running one node redraws its live status in place; otherwise (a log, or several
  // nodes at once) a node gets a line when its status changes in substance, not for every pod.
  const lastKey = new Map<string, string>();
  const inPlace = io.isTTY && !concurrent;
  const reporter = {
    line: (node: string, text: string) => {
      if (inPlace) io.err('\r\x1b[K');
      log(`[${node}] ${text}`);
    },
    status: (node: string, text: string, key = text) => {
      if (inPlace) return io.err(`\r\x1b[K[${node}] ${text}`);
      if (lastKey.get(node) === key) return;
      lastKey.set(node, key);
      log(`[${node}] ${text}`);
    },
  };
  let gate: Gate;
  if (args.gate === 'cluster-state') {
    gate = clusterStateGate(cluster, async () => (await call(kube, 'list nodes', () => kube.core.listNode())).items.map(toNodeView), args['cilium-namespace']);
  } else {
    const settings = matrixSettings(args);
    const source = settings.source(kube, args['label-key']);
    // Idle keep-alive sockets are unref'd by node's agent: they never hold the process open.
    const tunnels = await readOverlayTunnels(kube, args['cilium-namespace']);
    gate = matrixGate(source, { policy: settings.policy, concurrency: settings.concurrency, timeoutMs: settings.timeoutMs, lookbackMs: defaultConnectivity.lookbackSeconds * 1000, tunnels }, systemClock);
  }

  if (args['dry-run']) {
    const results: NodeResult[] = [];
    for (const name of order.flat()) results.push(await migrateNode(cluster, gate, name, { ...base, restarter: restarters.get(name)! }, systemClock, reporter, ctx.signal));
    return results;
  }

  const locked = await lockedCluster(kube, { namespace: args['cilium-namespace'], ttlMs: args['lock-ttl'], runId, log, signal: ctx.signal });
  const { lock, signal } = locked;
  const results: NodeResult[] = [];
  try {
    for (const [i, wave] of order.entries()) {
      if (concurrent) log(`wave ${i + 1} of ${order.length}: ${wave.join(', ')}`);
      const stopWave = new AbortController();
      const waveSignal = AbortSignal.any([signal, stopWave.signal]);
      // One baseline per wave, taken before any node of the wave is touched: a node's baseline
      // must not see another node of its own wave half way through its restart.
      let baseline: ReturnType<Gate['baseline']> | undefined;
      // A node's gate leaves the cells of the other nodes of its wave to their own gates.
      const waveGate: Gate = { name: gate.name, baseline: () => (baseline ??= gate.baseline()), check: (focus, since, record) => gate.check(focus, since, record, wave.filter((n) => n !== focus.name)) };
      const settled = await Promise.allSettled(
        wave.map(async (name) => {
          try {
            return await migrateNode(locked.cluster, waveGate, name, { ...base, restarter: fencedRestarter(restarters.get(name)!, lock) }, systemClock, reporter, waveSignal, killHook());
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
  } catch (err) {
    throw stopCause(err, lock, ctx.signal);
  } finally {
    await lock.release().catch(() => log('warning: could not release the migration lock; it expires by itself'));
  }
  return results;
}

export function stepTable(results: NodeResult[]): string {
  const lines: string[] = [];
  for (const r of results) {
    lines.push(`${r.node}: ${r.result === 'dry-run' ? 'dry run, nothing changed' : 'migrated'}`);
    const width = Math.max(...r.steps.map((s) => s.step.length));
    for (const s of r.steps) lines.push(`  ${s.step.padEnd(width)}  ${s.outcome.padEnd(11)}  ${s.message}`);
  }
  return lines.join('\n') + '\n';
}

const wait = (flag: string) => flagCoercion(flag, duration(1000, limits.longestWaitMs));

/** The flags of the node engine, shared by `node` and `run` (and in part `rollback`). Each is parsed by lib/flag-values. */
export const engineFlags = {
  'label-key': { type: 'string', default: migrationLabel, coerce: flagCoercion('label-key', labelKey), describe: 'Label the CiliumNodeConfig selects on' },
  'cilium-namespace': { type: 'string', default: ciliumNamespace, coerce: flagCoercion('cilium-namespace', namespace), describe: 'Namespace of Cilium, its CiliumNodeConfig and the lock' },
  'ignore-daemonsets': { type: 'boolean', default: true, describe: 'Leave DaemonSet pods on the node (as kubectl drain --ignore-daemonsets)' },
  'delete-emptydir-data': { type: 'boolean', default: false, describe: 'Evict pods with emptyDir volumes, losing that data' },
  'force': { type: 'boolean', default: false, describe: 'Evict pods that no controller manages (nothing recreates them); also allows --grace-period 0' },
  'grace-period': { type: 'string', default: '-1', coerce: flagCoercion('grace-period', integer(-1, limits.gracePeriodSeconds)), describe: 'Seconds each evicted pod gets to stop; -1 uses the pod\'s own; 0 (at once) only with --force, as kubectl delete' },
  'drain-timeout': { type: 'string', default: `${defaultTimeouts.drainSeconds}s`, coerce: wait('drain-timeout'), describe: 'Give up draining after this long, 1s to 24h (the node stays cordoned)' },
  'skip-wait-for-delete-timeout': { type: 'string', default: '0', coerce: flagCoercion('skip-wait-for-delete-timeout', integer(0, limits.gracePeriodSeconds)), describe: 'Seconds: stop waiting for a pod still terminating this long after its deletion (a stuck finalizer), as kubectl drain; 0 waits' },
  'pod-selector': { type: 'string', coerce: flagCoercion('pod-selector', labelSelector), describe: 'Only evict pods matching this label selector; refused when pods outside it would be stopped by the restart' },
  'disable-eviction': { type: 'boolean', default: false, describe: 'Delete pods instead of evicting them: BYPASSES PodDisruptionBudgets' },
  'parallelism': { type: 'string', default: String(defaultDrainOptions.parallelism), coerce: flagCoercion('parallelism', integer(1, limits.parallelism)), describe: `Evictions in flight at once (1-${limits.parallelism})` },
  'restart': { type: 'string', choices: restartMethods, coerce: lastOccurrence<RestartMethod | undefined>, describe: 'How to restart the node: kind (docker restart; default for kind nodes), reboot, exec, none' },
  'restart-command': { type: 'string', coerce: flagCoercion('restart-command', restartCommandTemplate), describe: 'With --restart exec: a command with {node}, e.g. "ssh {node} sudo systemctl reboot"' },
  'restart-timeout': { type: 'string', default: `${defaultTimeouts.nodeRestartSeconds}s`, coerce: wait('restart-timeout'), describe: 'How long the node may take to come back, 1s to 24h' },
  'agent-restart-timeout': { type: 'string', default: `${defaultTimeouts.agentRestartSeconds}s`, coerce: wait('agent-restart-timeout'), describe: 'How long the new Cilium agent pod may take to be Ready, 1s to 24h' },
  'restart-stragglers': { type: 'boolean', default: false, describe: 'After the restart, evict (PodDisruptionBudgets honoured) the pods still on the legacy network so their controllers recreate them on Cilium' },
  'host-image': { type: 'string', default: hostCommandImage, coerce: flagCoercion('host-image', imageReference), describe: 'Image of the privileged host-command pods (--restart reboot); needs sh and nsenter' },
  'verify-namespace': { type: 'string', default: 'default', coerce: flagCoercion('verify-namespace', namespace), describe: 'Namespace of the short-lived verify pod' },
  'verify-image': { type: 'string', default: verifyImage, coerce: flagCoercion('verify-image', imageReference), describe: 'Image of the verify pod' },
  'verify-timeout': { type: 'string', default: `${defaultTimeouts.verifySeconds}s`, coerce: wait('verify-timeout'), describe: 'How long the verify pod may take to get an IP, 1s to 24h' },
  'gate': { type: 'string', choices: gateKinds, default: 'matrix' as GateKind, coerce: lastOccurrence<GateKind>, describe: 'matrix: the probe agents\' reachability matrix (needs the agent DaemonSet); cluster-state: only Cilium agent readiness and new pod IPs (no probes)' },
  ...matrixFlags,
  'gate-rounds': { type: 'string', default: String(defaultGate.rounds), coerce: flagCoercion('gate-rounds', integer(1, limits.gateRounds)), describe: `Consecutive passing gate rounds needed (N, 1-${limits.gateRounds})` },
  'gate-interval': { type: 'string', default: `${defaultGate.intervalSeconds}s`, coerce: flagCoercion('gate-interval', duration(limits.readIntervalFloorMs, 3_600_000)), describe: 'Time between gate rounds, 1s to 1h' },
  'gate-timeout': { type: 'string', default: `${defaultTimeouts.gateSeconds}s`, coerce: wait('gate-timeout'), describe: 'Give up on the gate after this long, 1s to 24h' },
  'lock-ttl': { type: 'string', default: `${lockTtlSeconds}s`, coerce: flagCoercion('lock-ttl', duration(...limits.lockTtlMs)), describe: 'A run that stops renewing the lock loses it after this long, 5s to 1h; a run stops itself before that' },
  'dry-run': { type: 'boolean', default: false, describe: 'Print every step and why, change nothing' },
  'yes': { type: 'boolean', default: false, describe: 'Confirm actions that need it (--restart reboot)' },
} as const;

export const nodeCommand = defineCommand({
  command: 'node <nodes..>',
  describe: 'Migrate the named nodes to Cilium, one after another (cordon, drain, label, restart, verify, gate, uncordon)',
  builder: (y) =>
    y
      .positional('nodes', { type: 'string', array: true, demandOption: true, coerce: listCoercion('node', nodeName), describe: 'Node names, migrated in the order given' })
      .options(engineFlags)
      .example('$0 node kind-worker', 'migrate one kind node (restarted with docker restart)')
      .example('$0 node worker-1 worker-2 --restart exec --restart-command "ssh {node} sudo systemctl reboot"', 'two nodes, restarted over ssh')
      .example('$0 node worker-1 --dry-run', 'show what would happen'),
  run: async (ctx, args) => {
    const results = await runNodes(ctx, args as unknown as NodeArgs);
    ctx.io.out(render(results, ctx.options.output, (r) => stepTable(r)));
  },
});
