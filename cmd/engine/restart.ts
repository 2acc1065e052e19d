// Restarting a node, behind one interface chosen by --restart: `kind` (docker restart), `reboot`
// (a privileged pod that reboots the host), `exec` (a command template), `none`. Completion is
// judged per method, from signals that method really changes (REFERENCE.md section 2): `docker
// restart` of a kind node keeps the bootID and every pod UID, so for `kind` the node's container
// must have started after the request (its runtime's inspect) and kubelet's restart must show on
// the cluster (the Node's Starting event, or its DaemonSet pods restarted and Ready); a reboot
// (`reboot`, `exec`) changes the bootID, or brings the node Ready again with new DaemonSet pods.
import { execFile } from 'node:child_process';
import { CliError, ExitCode, UsageError } from '../../lib/errors.js';
import type { NodeView, PodView } from '../cluster/cluster.js';
import { hostCommandPodName, removeLeftoverHostPods, type HostPodCluster } from './host-command.js';

export const restartMethods = ['kind', 'reboot', 'exec', 'none'] as const;
export type RestartMethod = (typeof restartMethods)[number];

/** How a restart request went. A command that exits non-zero may still have restarted the node. */
export interface RestartRequest {
  /** What was done, for the log. */
  detail: string;
  /** Set when the request's command failed: its exit status and the end of its output. */
  failure?: string | undefined;
  /** The command certainly did not run (not found, not executable): nothing was restarted. */
  notRun?: boolean | undefined;
}

/** Asks for a node restart; returns once the request is made, not when the node is back. */
export interface NodeRestarter {
  readonly method: RestartMethod;
  /**
   * `requestId` names this request for good (it is recorded on the node before the request): asking
   * again with the same id finds the first request instead of restarting the node a second time.
   */
  request(node: NodeView, requestId: string): Promise<RestartRequest>;
  /** Removes what the request left behind (its pod), once the node is back. */
  cleanup?(node: NodeView, requestId: string): Promise<void>;
  /** kind: when the node's container last started, from its runtime (undefined when unknown). */
  containerStartedAt?(node: NodeView): Promise<Date | undefined>;
}

/** Runs a program; passed in so methods are testable without side effects. `code` is null when a signal (the timeout) ended it. */
export type CommandRunner = (argv: string[], timeoutMs: number) => Promise<{ code: number | null; signal?: string | undefined; stdout: string; stderr: string; notFound?: boolean | undefined }>;

export const runCommand: CommandRunner = (argv, timeoutMs) =>
  new Promise((resolve) => {
    execFile(argv[0]!, argv.slice(1), { timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (!err) return resolve({ code: 0, stdout, stderr });
      const e = err as NodeJS.ErrnoException & { code?: unknown; signal?: string | null };
      if (e.code === 'ENOENT') return resolve({ code: 127, stdout, stderr: stderr || `${argv[0]}: not found`, notFound: true });
      resolve({ code: typeof e.code === 'number' ? e.code : null, signal: e.signal ?? undefined, stdout, stderr: stderr || String(e.message) });
    });
  });

/** Quotes a value for `sh -c`. */
export const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The method for a node: the flag, else `kind` for kind nodes; other nodes need an explicit choice. */
export function chooseRestartMethod(flag: string | undefined, node: NodeView): RestartMethod {
  if (flag) {
    if (!(restartMethods as readonly string[]).includes(flag)) throw new UsageError(`--restart ${flag}: unknown method`, `use one of ${restartMethods.join(', ')}`);
    return flag as RestartMethod;
  }
  if (node.providerID.startsWith('kind://')) return 'kind';
  throw new UsageError(
    `node ${node.name} is not a kind node (providerID "${node.providerID}"), so the plugin cannot guess how to restart it`,
    'choose --restart reboot (needs --yes), --restart exec --restart-command "ssh {node} sudo reboot", or --restart none',
  );
}

/** How the person asked nodes to be restarted (--restart, --restart-command, --yes, --host-image). */
export interface RestartChoice {
  /** Unset: `kind` for kind nodes, else the person must choose. */
  method?: RestartMethod | undefined;
  /** `--restart exec`'s command, with {node}. */
  command?: string | undefined;
  /** --yes (or a dry run, which restarts nothing): `reboot` may run. */
  confirmed: boolean;
  /** The image of `reboot`'s privileged pod. */
  hostImage: string;
}

/** The restarter for `node` as `choice` says; `reboot`'s pods go to `namespace`. */
export function restarterFor(choice: RestartChoice, node: NodeView, cluster: HostPodCluster, namespace: string): NodeRestarter {
  const method = chooseRestartMethod(choice.method, node);
  switch (method) {
    case 'kind':
      return kindRestarter();
    case 'exec':
      if (!choice.command) throw new UsageError('--restart exec needs --restart-command, e.g. --restart-command "ssh {node} sudo systemctl reboot"');
      return execRestarter(choice.command);
    case 'reboot':
      if (!choice.confirmed) throw new UsageError('--restart reboot (it reboots the host through a privileged pod) needs --yes to confirm');
      return rebootRestarter(cluster, namespace, choice.hostImage);
    case 'none':
      return noneRestarter();
  }
}

/** The restart command failed, or its node did not come back after it failed; the output says why. */
export class RestartRequestError extends CliError {
  constructor(message: string, exitCode: typeof ExitCode.precondition | typeof ExitCode.timeout, hint: string) {
    super(message, exitCode, hint);
  }
}

const tail = (text: string) => text.trim().split('\n').slice(-5).join(' | ').slice(0, 600);

/** Runs `argv` once and says how it went; a non-zero exit is data, not an exception. */
async function runOnce(runner: CommandRunner, argv: string[], what: string, timeoutMs: number): Promise<RestartRequest> {
  const r = await runner(argv, timeoutMs);
  if (r.code === 0) return { detail: what };
  const status = r.code === null ? `was stopped after ${timeoutMs / 1000}s (${r.signal ?? 'signal'})` : `exited ${r.code}`;
  const output = tail(`${r.stderr}\n${r.stdout}`);
  // 126 and 127 are the shell's "cannot execute" and "not found": the command never ran.
  return { detail: what, failure: `${what} ${status}${output ? `: ${output}` : ''}`, notRun: r.notFound === true || r.code === 126 || r.code === 127 };
}

/** The container runtime and container of a kind node, from its providerID (kind://RUNTIME/CLUSTER/NODE). */
export function kindContainer(node: NodeView): { runtime: 'docker' | 'podman'; container: string } {
  const m = /^kind:\/\/(docker|podman)\/[^/]+\/([^/]+)$/.exec(node.providerID);
  return m ? { runtime: m[1] as 'docker' | 'podman', container: m[2]! } : { runtime: 'docker', container: node.name };
}

/** A time as docker and podman print it (RFC 3339, up to nanoseconds); undefined for their zero time or garbage. */
export function parseRuntimeTime(text: string): Date | undefined {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$/.exec(text.trim());
  if (!m || m[1]!.startsWith('0001-')) return undefined;
  const d = new Date(`${m[1]}${(m[2] ?? '').slice(0, 4)}${m[3]}`);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

export function kindRestarter(runner: CommandRunner = runCommand): NodeRestarter {
  return {
    method: 'kind',
    request: (node) => {
      const { runtime, container } = kindContainer(node);
      return runOnce(runner, [runtime, 'restart', container], `${runtime} restart ${container}`, 120_000);
    },
    async containerStartedAt(node) {
      const { runtime, container } = kindContainer(node);
      const r = await runner([runtime, 'inspect', '--format', '{{.State.StartedAt}}', container], 30_000);
      return r.code === 0 ? parseRuntimeTime(r.stdout) : undefined;
    },
  };
}

/** `template` with {node} replaced by the (shell-quoted) node name, run by sh. */
export function execRestarter(template: string, runner: CommandRunner = runCommand): NodeRestarter {
  if (!template.includes('{node}')) throw new UsageError('--restart-command must contain {node}', 'for example: --restart-command "ssh {node} sudo systemctl reboot"');
  return { method: 'exec', request: (node) => runOnce(runner, ['sh', '-c', template.replaceAll('{node}', shellQuote(node.name))], `the restart command for ${node.name}`, 120_000) };
}

export function noneRestarter(): NodeRestarter {
  return { method: 'none', request: async () => ({ detail: 'no restart' }) };
}

/** What was true when the restart was requested. */
export interface RestartBaseline {
  requestedAt: Date;
  bootID: string;
  /** DaemonSet name -> UID of its pod on the node then. */
  daemonSetPods: Record<string, string>;
  /** DaemonSet name -> its pod's container restarts and container IDs then (absent in records of earlier versions). */
  daemonSetContainers?: Record<string, { restarts: number; containerIds: string[] }>;
}

const daemonSetKey = (p: PodView) => `${p.namespace}/${p.controller!.name}`;

export function restartBaseline(node: NodeView, pods: PodView[], requestedAt: Date): RestartBaseline {
  const daemonSetPods: Record<string, string> = {};
  const daemonSetContainers: Record<string, { restarts: number; containerIds: string[] }> = {};
  for (const p of pods.filter((x) => x.controller?.kind === 'DaemonSet')) {
    daemonSetPods[daemonSetKey(p)] = p.uid;
    daemonSetContainers[daemonSetKey(p)] = { restarts: p.restarts ?? 0, containerIds: p.containerIds ?? [] };
  }
  return { requestedAt, bootID: node.bootID, daemonSetPods, daemonSetContainers };
}

/** What completion is judged from, read afresh on every poll (observeRestart). */
export interface RestartObservation {
  node: NodeView;
  pods: PodView[];
  /** kind: when the node's container last started, from its runtime. */
  containerStartedAt?: Date | undefined;
  /** When kubelet last announced its start on this node (the Node's Starting event). */
  kubeletStartedAt?: Date | undefined;
}

/** The cluster reads completion needs; `lastKubeletStart` is optional (fakes may lack it). */
export interface RestartObserverCluster {
  getNode(name: string): Promise<NodeView>;
  listNodePods(node: string): Promise<PodView[]>;
  lastKubeletStart?(node: string): Promise<Date | undefined>;
}

/** Reads what `restartCompletion` judges, for the method of `restarter`. */
export async function observeRestart(restarter: NodeRestarter, cluster: RestartObserverCluster, name: string): Promise<RestartObservation> {
  const [node, pods] = await Promise.all([cluster.getNode(name), cluster.listNodePods(name)]);
  if (restarter.method !== 'kind') return { node, pods };
  const [containerStartedAt, kubeletStartedAt] = await Promise.all([restarter.containerStartedAt?.(node), cluster.lastKubeletStart?.(name)]);
  return { node, pods, containerStartedAt, kubeletStartedAt };
}

/** Whether the node is back from a restart by `method`, and how we know; undefined while it is not. */
export function restartCompletion(method: RestartMethod, before: RestartBaseline, o: RestartObservation): string | undefined {
  return method === 'kind' ? kindCompletion(before, o) : rebootCompletion(before, o.node, o.pods);
}

/**
 * Whether the node is back from the restart `restarter` requested, and how we know; undefined while
 * it is not. What counts as back is the method's to say (restartCompletion).
 */
export async function restartedNode(restarter: NodeRestarter, cluster: RestartObserverCluster, name: string, before: RestartBaseline): Promise<string | undefined> {
  return restartCompletion(restarter.method, before, await observeRestart(restarter, cluster, name));
}

/**
 * `docker restart` of a kind node: the bootID and the pod UIDs stay, Ready usually stays True with
 * its old transition time. What does change: the container's start time, and kubelet's (its
 * Starting event on the Node, and every container on the node restarted); and the Ready it reports
 * must come from the new kubelet (a heartbeat since the container started), not be the last word
 * of the old one. Events and heartbeats carry whole seconds, so times are compared at that
 * precision.
 */
function kindCompletion(before: RestartBaseline, o: RestartObservation): string | undefined {
  if (!o.node.ready || !o.containerStartedAt || o.containerStartedAt.getTime() <= before.requestedAt.getTime()) return undefined;
  const second = (d: Date) => Math.floor(d.getTime() / 1000) * 1000;
  if (!o.node.readyHeartbeat || o.node.readyHeartbeat.getTime() < second(o.containerStartedAt)) return undefined;
  const container = `its container started at ${o.containerStartedAt.toISOString()}`;
  if (o.kubeletStartedAt && o.kubeletStartedAt.getTime() >= second(before.requestedAt)) return `${container} and kubelet announced its start (Starting event) and reports Ready`;
  if (daemonSetPodsRestarted(before, o.pods)) return `${container} and its DaemonSet pods restarted and are Ready`;
  return undefined;
}

/** Every DaemonSet pod of the baseline restarted (new pod, more restarts or new containers) and Ready. */
function daemonSetPodsRestarted(before: RestartBaseline, pods: PodView[]): boolean {
  const then = before.daemonSetContainers;
  if (!then || Object.keys(then).length === 0) return false;
  const now = new Map(pods.filter((p) => p.controller?.kind === 'DaemonSet').map((p) => [daemonSetKey(p), p]));
  return Object.entries(then).every(([ds, was]) => {
    const pod = now.get(ds);
    if (!pod || !pod.ready) return false;
    const ids = pod.containerIds ?? [];
    return pod.uid !== before.daemonSetPods[ds] || (pod.restarts ?? 0) > was.restarts || (ids.length > 0 && ids.some((id) => !was.containerIds.includes(id)));
  });
}

/** A reboot: the bootID changed, or the node went Ready again after the request with new DaemonSet pods. */
export function rebootCompletion(before: RestartBaseline, node: NodeView, pods: PodView[]): string | undefined {
  if (!node.ready) return undefined;
  if (before.bootID && node.bootID && node.bootID !== before.bootID) return `bootID changed (${before.bootID.slice(0, 8)} -> ${node.bootID.slice(0, 8)})`;
  if (!node.readySince || node.readySince.getTime() <= before.requestedAt.getTime()) return undefined;
  const current = new Map(pods.filter((p) => p.controller?.kind === 'DaemonSet').map((p) => [daemonSetKey(p), p]));
  for (const [ds, uid] of Object.entries(before.daemonSetPods)) {
    const pod = current.get(ds);
    if (!pod || pod.uid === uid || !pod.ready) return undefined;
  }
  return 'Ready again after the request, with new DaemonSet pods';
}

/** Reboots the host through a privileged pod (nsenter into PID 1's namespaces, systemctl reboot). */
export function rebootRestarter(cluster: HostPodCluster, namespace: string, image: string): NodeRestarter {
  return {
    method: 'reboot',
    async request(node, requestId) {
      const name = hostCommandPodName('reboot', node.name, requestId);
      const removed = await removeLeftoverHostPods(cluster, namespace, 'reboot', node.name, name);
      const outcome = await cluster.createHostCommandPod({
        namespace, name, node: node.name, image, purpose: 'reboot', request: requestId,
        command: ['nsenter', '-t', '1', '-m', '-u', '-i', '-n', '-p', '--', 'systemctl', 'reboot'],
      });
      const leftovers = removed.length ? `; removed ${removed.length} leftover reboot pod${removed.length === 1 ? '' : 's'} of earlier requests` : '';
      return { detail: outcome === 'exists' ? `pod ${namespace}/${name} was created by this request already${leftovers}` : `pod ${namespace}/${name} runs systemctl reboot${leftovers}` };
    },
    async cleanup(node) {
      await removeLeftoverHostPods(cluster, namespace, 'reboot', node.name);
    },
  };
}
