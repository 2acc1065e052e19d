// Restarting a node, behind one interface chosen by --restart: `kind` (docker restart), `reboot`
// (a privileged pod that reboots the host), `exec` (a command template), `none`. Completion is
// judged per method, from signals that method really changes (REFERENCE.md section 2): `docker
// restart` of a kind node keeps the bootID and every pod UID, so for `kind` the node's container
// must have started after the request (its runtime's inspect) and kubelet's restart must show on
// the cluster (the Node's Starting event, or its DaemonSet pods restarted and Ready); a reboot
// (`reboot`, `exec`) changes the bootID, or brings the node Ready again with new DaemonSet pods.
import { execFile } from 'node:child_process';
import { UsageError } from '../../lib/errors.js';
import type { NodeView, PodView } from './cluster.js';

export const restartMethods = ['kind', 'reboot', 'exec', 'none'] as const;
export type RestartMethod = (typeof restartMethods)[number];

/** Asks for a node restart; returns once the request is made, not when the node is back. */
export interface NodeRestarter {
  readonly method: RestartMethod;
  request(node: NodeView): Promise<void>;
  /** kind: when the node's container last started, from its runtime (undefined when unknown). */
  containerStartedAt?(node: NodeView): Promise<Date | undefined>;
}

/** Runs a program; passed in so methods are testable without side effects. */
export type CommandRunner = (argv: string[], timeoutMs: number) => Promise<{ code: number; stdout: string; stderr: string }>;

export const runCommand: CommandRunner = (argv, timeoutMs) =>
  new Promise((resolve) => {
    execFile(argv[0]!, argv.slice(1), { timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 127) : 0;
      resolve({ code, stdout, stderr: stderr || (err && code === 127 ? String(err.message) : '') });
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

async function runOrThrow(runner: CommandRunner, argv: string[], what: string): Promise<void> {
  const r = await runner(argv, 120_000);
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ')}`);
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
      return runOrThrow(runner, [runtime, 'restart', container], `${runtime} restart ${container}`);
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
  return { method: 'exec', request: (node) => runOrThrow(runner, ['sh', '-c', template.replaceAll('{node}', shellQuote(node.name))], `restart command for ${node.name}`) };
}

export function noneRestarter(): NodeRestarter {
  return { method: 'none', request: async () => {} };
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

/** Creates a privileged pod pinned to a node that runs a command in the host's namespaces. */
export interface HostCommandRunner {
  createHostCommandPod(namespace: string, name: string, node: string, image: string, command: string[]): Promise<void>;
}

/** Reboots the host through a privileged pod (nsenter into PID 1's namespaces, systemctl reboot). */
export function rebootRestarter(cluster: HostCommandRunner, namespace: string, image: string): NodeRestarter {
  return {
    method: 'reboot',
    request: (node) =>
      cluster.createHostCommandPod(namespace, `cilium-migrate-reboot-${node.name}`.slice(0, 63).replace(/-+$/, ''), node.name, image, [
        'nsenter', '-t', '1', '-m', '-u', '-i', '-n', '-p', '--', 'systemctl', 'reboot',
      ]),
  };
}
