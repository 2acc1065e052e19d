// Restarting a node, behind one interface chosen by --restart: `kind` (docker restart), `reboot`
// (a privileged pod that reboots the host), `exec` (a command template), `none`. Completion is
// judged from the cluster, not from the method: the bootID changed, or the node went Ready again
// after the request and its DaemonSet pods were replaced.
import { execFile } from 'node:child_process';
import { CliError, ExitCode, UsageError } from '../../lib/errors.js';
import type { EngineCluster, NodeView, PodView } from '../cluster/cluster.js';
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

export function kindRestarter(runner: CommandRunner = runCommand): NodeRestarter {
  return { method: 'kind', request: (node) => runOnce(runner, ['docker', 'restart', node.name], `docker restart ${node.name}`, 120_000) };
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
}

export function restartBaseline(node: NodeView, pods: PodView[], requestedAt: Date): RestartBaseline {
  const daemonSetPods: Record<string, string> = {};
  for (const p of pods) if (p.controller?.kind === 'DaemonSet') daemonSetPods[`${p.namespace}/${p.controller.name}`] = p.uid;
  return { requestedAt, bootID: node.bootID, daemonSetPods };
}

/**
 * Whether the node is back from the restart `restarter` requested, and how we know; undefined while
 * it is not. What counts as back is the method's to say; today every method is judged by the node.
 */
export async function restartedNode(restarter: NodeRestarter, cluster: Pick<EngineCluster, 'getNode' | 'listNodePods'>, name: string, before: RestartBaseline): Promise<string | undefined> {
  return restartCompletion(before, await cluster.getNode(name), await cluster.listNodePods(name));
}

/** Whether the node is back from the restart, and how we know; undefined while it is not. */
export function restartCompletion(before: RestartBaseline, node: NodeView, pods: PodView[]): string | undefined {
  if (!node.ready) return undefined;
  if (before.bootID && node.bootID && node.bootID !== before.bootID) return `bootID changed (${before.bootID.slice(0, 8)} -> ${node.bootID.slice(0, 8)})`;
  if (!node.readySince || node.readySince.getTime() <= before.requestedAt.getTime()) return undefined;
  const current = new Map(pods.filter((p) => p.controller?.kind === 'DaemonSet').map((p) => [`${p.namespace}/${p.controller!.name}`, p]));
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
