// The flags of the node procedures, shared by `node`, `run` and (most of them) `rollback`, each
// parsed by lib/flag-values before the cluster is contacted, and what they mean as the engine's
// options.
import { ciliumNamespace, defaultGate, defaultTimeouts, hostCommandImage, limits, lockTtlSeconds, migrationLabel, verifyImage } from '../../lib/defaults.js';
import { duration, flagCoercion, gracePeriod, imageReference, integer, labelKey, labelSelector, lastOccurrence, namespace, requireCompanion, restartCommandTemplate } from '../../lib/flag-values.js';
import { defaultDrainOptions, type DrainOptions } from '../engine/drain.js';
import { restartMethods, type RestartChoice, type RestartMethod } from '../engine/restart.js';
import type { RollbackRunOptions } from '../engine/rollback-run.js';
import type { NodeRunOptions } from '../engine/waves.js';
import { matrixFlags, matrixSettings, type MatrixArgs } from './matrix.js';

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

/** How the flags ask nodes to be restarted. */
export function restartChoice(args: Pick<NodeArgs, 'restart' | 'restart-command' | 'yes' | 'dry-run' | 'host-image'>): RestartChoice {
  return { method: args.restart, command: args['restart-command'], confirmed: args.yes || args['dry-run'], hostImage: args['host-image'] };
}

/** A migration run (`node`, `run`) as the flags describe it; the flag rules are checked first. */
export function nodeRunOptions(args: NodeArgs): NodeRunOptions {
  checkEngineFlags(args);
  return {
    steps: {
      labelKey: args['label-key'],
      ciliumNamespace: args['cilium-namespace'],
      drain: drainOptions(args),
      restartStragglers: args['restart-stragglers'],
      verifyNamespace: args['verify-namespace'],
      verifyImage: args['verify-image'],
      timeoutsMs: { agentRestart: args['agent-restart-timeout'], nodeRestart: args['restart-timeout'], verify: args['verify-timeout'], gate: args['gate-timeout'] },
      gate: { rounds: args['gate-rounds'], intervalMs: args['gate-interval'] },
      pollMs: 1000,
      dryRun: args['dry-run'],
    },
    restart: restartChoice(args),
    gate: args.gate === 'cluster-state' ? { kind: 'cluster-state' } : { kind: 'matrix', matrix: matrixSettings(args) },
    lockTtlMs: args['lock-ttl'],
  };
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

/** The flags `rollback` takes: the engine's, without the gate's, and the host command's time limit. */
const rollbackFlagNames = [
  'label-key', 'cilium-namespace', 'ignore-daemonsets', 'delete-emptydir-data', 'force', 'grace-period', 'drain-timeout', 'skip-wait-for-delete-timeout', 'pod-selector',
  'disable-eviction', 'parallelism', 'restart', 'restart-command', 'restart-timeout', 'agent-restart-timeout', 'host-image', 'verify-namespace', 'verify-image',
  'verify-timeout', 'lock-ttl', 'dry-run', 'yes',
] as const;
export const rollbackFlags = {
  ...(Object.fromEntries(rollbackFlagNames.map((f) => [f, engineFlags[f]])) as Pick<typeof engineFlags, (typeof rollbackFlagNames)[number]>),
  'host-command-timeout': { type: 'string', default: '2m', coerce: flagCoercion('host-command-timeout', duration(1000, 3_600_000)), describe: 'How long restoring the CNI config files may take, 1s to 1h' },
} as const;

export type RollbackArgs = Omit<NodeArgs, 'nodes'> & { node: string; 'host-command-timeout': number };

/** A rollback as the flags describe it; the flag rules are checked first. */
export function rollbackRunOptions(args: RollbackArgs): RollbackRunOptions {
  checkEngineFlags(args);
  return {
    node: args.node,
    steps: {
      labelKey: args['label-key'],
      ciliumNamespace: args['cilium-namespace'],
      drain: drainOptions(args),
      hostImage: args['host-image'],
      verifyNamespace: args['verify-namespace'],
      verifyImage: args['verify-image'],
      timeoutsMs: { hostCommand: args['host-command-timeout'], agentRestart: args['agent-restart-timeout'], nodeRestart: args['restart-timeout'], verify: args['verify-timeout'] },
      pollMs: 1000,
      dryRun: args['dry-run'],
    },
    restart: restartChoice(args),
    lockTtlMs: args['lock-ttl'],
  };
}
