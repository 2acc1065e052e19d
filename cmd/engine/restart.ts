// Restarting a node, behind one interface chosen by --restart: `kind` (docker restart), `reboot`
// (a privileged pod that reboots the host), `exec` (a command template), `none`. Completion is
// judged from the cluster, not from the method: the bootID changed, or the node went Ready again
// after the request and its DaemonSet pods were replaced.
import { execFile } from 'node:child_process';
import { UsageError } from '../../lib/errors.js';
import type { NodeView, PodView } from './cluster.js';

export const restartMethods = ['kind', 'reboot', 'exec', 'none'] as const;
export type RestartMethod = (typeof restartMethods)[number];

/** Asks for a node restart; returns once the request is made, not when the node is back. */
export interface NodeRestarter {
  readonly method: RestartMethod;
  request(node: NodeView): Promise<void>;
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

export function kindRestarter(runner: CommandRunner = runCommand): NodeRestarter {
  return { method: 'kind', request: (node) => runOrThrow(runner, ['docker', 'restart', node.name], `docker restart ${node.name}`) };
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
}

export function restartBaseline(node: NodeView, pods: PodView[], requestedAt: Date): RestartBaseline {
  const daemonSetPods: Record<string, string> = {};
  for (const p of pods) if (p.controller?.kind === 'DaemonSet') daemonSetPods[`${p.namespace}/${p.controller.name}`] = p.uid;
  return { requestedAt, bootID: node.bootID, daemonSetPods };
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
