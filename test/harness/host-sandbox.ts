// Runs a node's host script (cmd/engine/host-command.ts) on this machine without letting it change
// the machine's files: the node's CNI, Flannel and Calico directories are mapped into a temporary directory,
// and the script runs in a private mount namespace where everything else is read-only.

/** A host path as a sandboxed node has it: its CNI directories and Flannel's and Calico's state live under `hostRoot`. */
export function nodeHostPaths(arg: string, hostRoot: string): string {
  return arg.replace(/(^|[\s'"=:;])\/(etc\/cni|run\/flannel|var\/lib\/cni|var\/run\/calico|var\/lib\/calico)(?=[\/\s'";]|$)/g, `$1${hostRoot}/$2`);
}

/**
 * Wraps a command so that it cannot change the machine's files: it runs in a private mount
 * namespace where every mount is read-only except `writable`. Host scripts run as root here, so
 * this is what keeps one (`rm -f /etc/cni/net.d/...`) inside its directory.
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
