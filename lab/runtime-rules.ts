// What a lab node decides about a pod, as pure functions of what it is given: which CNI config is
// active (the first by name, as kubelet picks it), which local program a container's image runs,
// how a host path maps into the node's directory, how $(VAR) expands, and how a command is kept
// from changing the machine's files. lab/runtime.ts acts on these decisions.
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { OverlayName } from './overlay-net.js';

/** The local programs images map to. */
export interface LabPrograms {
  agentJs: string;
  ciliumAgentJs: string;
  flanneldJs: string;
  nginxJs: string;
  trafficCheckerJs: string;
}

export interface Probe {
  httpGet?: { path?: string; port: number | string; scheme?: string };
  tcpSocket?: { port: number | string };
  timeoutSeconds?: number;
}

export interface Container {
  name: string;
  image: string;
  ports?: { name?: string; containerPort: number }[];
  readinessProbe?: Probe;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
}

/** The first CNI config by name in `dir` and the overlay it puts pods on, or why there is none. */
export function activeCni(dir: string): { file: string; overlay: OverlayName } | { error: string } {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => /\.(conf|conflist|json)$/.test(f)).sort();
  } catch {
    files = [];
  }
  const file = files[0];
  if (file === undefined) return { error: `network plugin not ready: no CNI configuration in ${dir}` };
  try {
    const conf = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { type?: string; plugins?: { type?: string }[] };
    const type = conf.plugins?.[0]?.type ?? conf.type;
    if (type === 'flannel') return { file, overlay: 'legacy' };
    if (type === 'cilium-cni') return { file, overlay: 'cilium' };
    return { error: `CNI config ${file}: plugin type "${String(type)}" is not one the lab has (flannel, cilium-cni)` };
  } catch (err) {
    return { error: `CNI config ${file} is not valid JSON: ${(err as Error).message}` };
  }
}

/** Which program a container runs in the lab, from its image, command and args. */
export function programFor(c: Container, programs: LabPrograms): { argv: string[]; readyFile: boolean; role: string } {
  const image = c.image.toLowerCase();
  const repo = image.replace(/@.*$/, '').replace(/:[^/:]*$/, '');
  const node = process.execPath;
  const given = [...(c.command ?? []), ...(c.args ?? [])];
  if (/cilium-migrate[^/]*agent|cilium-migrate\/agent/.test(repo)) return { argv: [node, programs.agentJs, ...(c.args ?? [])], readyFile: false, role: 'probe agent' };
  if (/(^|\/)cilium$/.test(repo)) return { argv: [node, programs.ciliumAgentJs], readyFile: true, role: 'cilium agent' };
  if (/(^|\/)nginx$/.test(repo)) return { argv: [node, programs.nginxJs], readyFile: true, role: 'nginx' };
  if (/flannel$/.test(repo)) return { argv: [node, programs.flanneldJs], readyFile: true, role: 'flanneld' };
  if (/traffic-checker/.test(repo)) return { argv: [node, programs.trafficCheckerJs, ...(c.args ?? [])], readyFile: true, role: 'traffic checker' };
  if (/pause/.test(repo) || given.length === 0) return { argv: ['sleep', 'infinity'], readyFile: false, role: 'idle' };
  if (given[0] !== undefined && basename(given[0]) === 'nsenter' && given.includes('--')) {
    // A privileged pod entering the host (the plugin's reboot and host scripts): the lab's host is the node.
    const inner = given.slice(given.indexOf('--') + 1);
    if (/^(systemctl reboot|reboot|shutdown -r now)$/.test(inner.join(' '))) return { argv: inner, readyFile: false, role: 'node reboot' };
    return { argv: inner, readyFile: false, role: 'host command' };
  }
  return { argv: given, readyFile: false, role: 'command' };
}

/**
 * Wraps a command so that it cannot change the machine's files: it runs in a private mount
 * namespace where every mount is read-only except `writable` (the node's or pod's lab directory).
 * Commands from pod specs run as root on this machine, so this is what keeps a host script
 * (`rm -f /etc/cni/net.d/...`) inside the lab.
 */
export function readOnlyExcept(writable: string, argv: string[]): string[] {
  const guard = [
    'mount --make-rprivate / || exit 125',
    'mount --bind "$LAB_RW" "$LAB_RW" || exit 125',
    'for m in $(sed -n "s/^[^ ]* [^ ]* [^ ]* [^ ]* \\([^ ]*\\) .*/\\1/p" /proc/self/mountinfo); do',
    '  [ "$m" = "$LAB_RW" ] || mount -o remount,bind,ro "$m" 2>/dev/null || true',
    'done',
    'unset LAB_RW',
    'exec "$@"',
  ].join('\n');
  return ['env', `LAB_RW=${writable}`, 'unshare', '--mount', '--propagation', 'private', 'sh', '-c', guard, 'lab-guard', ...argv];
}

/** A host path as the lab node has it: its CNI directory and Flannel's run directory live under `hostRoot`. */
export function nodeHostPaths(arg: string, hostRoot: string): string {
  return arg.replace(/(^|[\s'"=:;])\/(etc\/cni|run\/flannel|var\/lib\/cni)(?=[\/\s'";]|$)/g, `$1${hostRoot}/$2`);
}

/** Expands $(VAR) in a command or argument, as kubelet does; $$ escapes. */
export function expandVars(s: string, env: Record<string, string>): string {
  return s.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name: string | undefined) => (m === '$$' ? '$' : name !== undefined && name in env ? env[name]! : m));
}
