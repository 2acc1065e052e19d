// `node NODE...`: migrates the named nodes one after another through the step machine.
import { randomBytes } from 'node:crypto';
import { ciliumNamespace, defaultConnectivity, defaultGate, defaultTimeouts, hostCommandImage, lockLeaseName, lockTtlSeconds, migrationLabel, verifyImage } from '../lib/defaults.js';
import { parseDuration } from '../lib/duration.js';
import { InterruptedError, UsageError } from '../lib/errors.js';
import { defineCommand, type CommandContext } from './context.js';
import type { NodeView } from './engine/cluster.js';
import { defaultDrainOptions, systemClock, type DrainOptions } from './engine/drain.js';
import { clusterStateGate, type Gate } from './engine/gate.js';
import { matrixGate } from './engine/matrix-gate.js';
import { matrixFlags, matrixSettings, type MatrixArgs } from './connectivity/options.js';
import { kubeEngineCluster, toNodeView } from './engine/kube-cluster.js';
import { acquireLock } from './engine/lock.js';
import { migrateNode, type BoundaryHook, type EngineOptions, type NodeResult } from './engine/migrate-node.js';
import { chooseRestartMethod, execRestarter, kindRestarter, noneRestarter, rebootRestarter, restartMethods, type NodeRestarter } from './engine/restart.js';
import { retryingUnreachable } from './engine/retry.js';
import { readOverlayTunnels } from './migration/cilium-config.js';
import { render } from './output.js';
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
  'grace-period': number;
  'drain-timeout': string;
  'pod-selector'?: string | undefined;
  'disable-eviction': boolean;
  parallelism: number;
  restart?: string | undefined;
  'restart-command'?: string | undefined;
  'restart-timeout': string;
  'agent-restart-timeout': string;
  'restart-stragglers': boolean;
  'verify-namespace': string;
  'verify-image': string;
  'verify-timeout': string;
  'gate-rounds': number;
  'gate-interval': string;
  'gate-timeout': string;
  'lock-ttl': string;
  'dry-run': boolean;
  yes: boolean;
}

export const durationOf = (flag: string, value: string) => {
  try {
    return parseDuration(value);
  } catch (err) {
    throw new UsageError(`--${flag}: ${(err as Error).message}`);
  }
};

/** The engine options the flags describe (restart method resolved per node later). */
export function engineOptions(args: NodeArgs, runId: string): Omit<EngineOptions, 'restarter'> {
  if (args['gate-rounds'] < 1) throw new UsageError('--gate-rounds must be at least 1');
  if (args.parallelism < 1) throw new UsageError('--parallelism must be at least 1');
  const drain: DrainOptions = {
    ...defaultDrainOptions,
    ignoreDaemonSets: args['ignore-daemonsets'],
    deleteEmptyDirData: args['delete-emptydir-data'],
    force: args.force,
    skipWaitForDeleteTimeoutSeconds: 0,
    podSelector: args['pod-selector'],
    gracePeriodSeconds: args['grace-period'] >= 0 ? args['grace-period'] : undefined,
    timeoutMs: durationOf('drain-timeout', args['drain-timeout']),
    parallelism: args.parallelism,
    disableEviction: args['disable-eviction'],
  };
  return {
    runId,
    labelKey: args['label-key'],
    ciliumNamespace: args['cilium-namespace'],
    drain,
    restartStragglers: args['restart-stragglers'],
    verifyNamespace: args['verify-namespace'],
    verifyImage: args['verify-image'],
    timeoutsMs: {
      agentRestart: durationOf('agent-restart-timeout', args['agent-restart-timeout']),
      nodeRestart: durationOf('restart-timeout', args['restart-timeout']),
      verify: durationOf('verify-timeout', args['verify-timeout']),
      gate: durationOf('gate-timeout', args['gate-timeout']),
    },
    gate: { rounds: args['gate-rounds'], intervalMs: durationOf('gate-interval', args['gate-interval']) },
    pollMs: 1000,
    dryRun: args['dry-run'],
  };
}

export function restarterFor(args: NodeArgs, node: NodeView, cluster: ReturnType<typeof kubeEngineCluster>, namespace: string): NodeRestarter {
  const method = chooseRestartMethod(args.restart, node);
  switch (method) {
    case 'kind':
      return kindRestarter();
    case 'exec':
      if (!args['restart-command']) throw new UsageError('--restart exec needs --restart-command', 'for example: --restart-command "ssh {node} sudo systemctl reboot"');
      return execRestarter(args['restart-command']);
    case 'reboot':
      if (!args.yes && !args['dry-run']) throw new UsageError('--restart reboot reboots the host through a privileged pod; confirm with --yes');
      return rebootRestarter(cluster, namespace, hostCommandImage);
    case 'none':
      return noneRestarter();
  }
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
  const runId = `${new Date().toISOString().replace(/[-:]/g, '').slice(0, 15)}-${randomBytes(3).toString('hex')}`;
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
    restarters.set(name, restarterFor(args, view, cluster, args['cilium-namespace']));
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
    gate = matrixGate(source, { policy: settings.policy, concurrency: settings.concurrency, timeoutMs: settings.timeoutMs, lookbackMs: defaultConnectivity.lookbackSeconds * 1000, tunnels, roundMs: base.gate.intervalMs }, systemClock);
  }

  if (args['dry-run']) {
    const results: NodeResult[] = [];
    for (const name of order.flat()) results.push(await migrateNode(cluster, gate, name, { ...base, restarter: restarters.get(name)! }, systemClock, reporter, ctx.signal));
    return results;
  }

  const lock = await acquireLock(cluster, { namespace: args['cilium-namespace'], name: lockLeaseName, ttlSeconds: durationOf('lock-ttl', args['lock-ttl']) / 1000, runId }, systemClock, log);
  const signal = AbortSignal.any([ctx.signal, lock.lost]);
  const results: NodeResult[] = [];
  try {
    for (const [i, wave] of order.entries()) {
      if (concurrent) log(`wave ${i + 1} of ${order.length}: ${wave.join(', ')}`);
      const stopWave = new AbortController();
      const waveSignal = AbortSignal.any([signal, stopWave.signal]);
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
            return await migrateNode(cluster, waveGate, name, { ...base, restarter: restarters.get(name)! }, systemClock, reporter, waveSignal, killHook());
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

/** The flags of the node engine, shared by `node` and `run`. */
export const engineFlags = {
  'label-key': { type: 'string', default: migrationLabel, describe: 'Label the CiliumNodeConfig selects on' },
  'cilium-namespace': { type: 'string', default: ciliumNamespace, describe: 'Namespace of Cilium, its CiliumNodeConfig and the lock' },
  'ignore-daemonsets': { type: 'boolean', default: true, describe: 'Leave DaemonSet pods on the node (as kubectl drain --ignore-daemonsets)' },
  'delete-emptydir-data': { type: 'boolean', default: false, describe: 'Evict pods with emptyDir volumes, losing that data' },
  'force': { type: 'boolean', default: false, describe: 'Evict pods that no controller manages (nothing recreates them)' },
  'grace-period': { type: 'number', default: -1, describe: 'Seconds each evicted pod gets to stop; -1 uses the pod\'s own' },
  'drain-timeout': { type: 'string', default: `${defaultTimeouts.drainSeconds}s`, describe: 'Give up draining after this long (the node stays cordoned)' },
  'pod-selector': { type: 'string', describe: 'Only evict pods matching this label selector' },
  'disable-eviction': { type: 'boolean', default: false, describe: 'Delete pods instead of evicting them: BYPASSES PodDisruptionBudgets' },
  'parallelism': { type: 'number', default: defaultDrainOptions.parallelism, describe: 'Evictions in flight at once' },
  'restart': { type: 'string', choices: restartMethods, describe: 'How to restart the node: kind (docker restart; default for kind nodes), reboot, exec, none' },
  'restart-command': { type: 'string', describe: 'With --restart exec: a command with {node}, e.g. "ssh {node} sudo systemctl reboot"' },
  'restart-timeout': { type: 'string', default: `${defaultTimeouts.nodeRestartSeconds}s`, describe: 'How long the node may take to come back' },
  'agent-restart-timeout': { type: 'string', default: `${defaultTimeouts.agentRestartSeconds}s`, describe: 'How long the new Cilium agent pod may take to be Ready' },
  'restart-stragglers': { type: 'boolean', default: false, describe: 'After the restart, delete pods still on the legacy network so they come back on Cilium' },
  'verify-namespace': { type: 'string', default: 'default', describe: 'Namespace of the short-lived verify pod' },
  'verify-image': { type: 'string', default: verifyImage, describe: 'Image of the verify pod' },
  'verify-timeout': { type: 'string', default: `${defaultTimeouts.verifySeconds}s`, describe: 'How long the verify pod may take to get an IP' },
  'gate': { type: 'string', choices: gateKinds, default: 'matrix' as GateKind, describe: 'matrix: the probe agents\' reachability matrix (needs the agent DaemonSet); cluster-state: only Cilium agent readiness and new pod IPs (no probes)' },
  ...matrixFlags,
  'gate-rounds': { type: 'number', default: defaultGate.rounds, describe: 'Consecutive passing gate rounds needed (N)' },
  'gate-interval': { type: 'string', default: `${defaultGate.intervalSeconds}s`, describe: 'Time between gate rounds' },
  'gate-timeout': { type: 'string', default: `${defaultTimeouts.gateSeconds}s`, describe: 'Give up on the gate after this long' },
  'lock-ttl': { type: 'string', default: `${lockTtlSeconds}s`, describe: 'A run that stops renewing the lock loses it after this long' },
  'dry-run': { type: 'boolean', default: false, describe: 'Print every step and why, change nothing' },
  'yes': { type: 'boolean', default: false, describe: 'Confirm actions that need it (--restart reboot)' },
} as const;

export const nodeCommand = defineCommand({
  command: 'node <nodes..>',
  describe: 'Migrate the named nodes to Cilium, one after another (cordon, drain, label, restart, verify, gate, uncordon)',
  builder: (y) =>
    y
      .positional('nodes', { type: 'string', array: true, demandOption: true, describe: 'Node names, migrated in the order given' })
      .options(engineFlags)
      .example('$0 node kind-worker', 'migrate one kind node (restarted with docker restart)')
      .example('$0 node worker-1 worker-2 --restart exec --restart-command "ssh {node} sudo systemctl reboot"', 'two nodes, restarted over ssh')
      .example('$0 node worker-1 --dry-run', 'show what would happen'),
  run: async (ctx, args) => {
    const results = await runNodes(ctx, args as unknown as NodeArgs);
    ctx.io.out(render(results, ctx.options.output, (r) => stepTable(r)));
  },
});
