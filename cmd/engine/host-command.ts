// A shell script run on a node's host through a privileged, short-lived pod (nsenter into PID 1's
// mount and network namespaces): how rollback restores the CNI config files and finalize cleans up
// what the legacy CNI left. The pod's name is hashed from the request (the run) and the node, so it
// is unique and never collides with a leftover; leftovers of earlier runs are found by their labels
// and removed by UID before the script runs again (the scripts are safe to repeat).
import { InterruptedError, PreconditionError, TimeoutError } from '../../lib/errors.js';
import type { EngineCluster } from './cluster.js';
import type { Clock } from './drain.js';
import { hostCommandPodName, removeLeftoverHostPods } from './restart.js';

export type HostScriptCluster = Pick<EngineCluster, 'createHostCommandPod' | 'getPod' | 'deletePodByUid' | 'listPodsBySelector'>;

export { hostCommandPodName };

/** Runs `script` on the host of `node` and waits until its pod has Succeeded; throws when it failed. */
export async function runHostScript(
  cluster: HostScriptCluster,
  opts: { namespace: string; node: string; purpose: string; request: string; image: string; script: string; timeoutMs: number; pollMs: number },
  clock: Clock,
  signal?: AbortSignal,
): Promise<string> {
  const name = hostCommandPodName(opts.purpose, opts.node, opts.request);
  await removeLeftoverHostPods(cluster, opts.namespace, opts.purpose, opts.node, name);
  const deadline = clock.now() + opts.timeoutMs;
  // AlreadyExists: this request's own pod (a retry within the run); it is waited for like a new one.
  await cluster.createHostCommandPod({ namespace: opts.namespace, name, node: opts.node, image: opts.image, purpose: opts.purpose, request: opts.request, command: ['nsenter', '-t', '1', '-m', '-n', '--', 'sh', '-c', opts.script] });
  try {
    for (;;) {
      const pod = await cluster.getPod(opts.namespace, name);
      if (pod?.phase === 'Succeeded') return name;
      if (pod?.phase === 'Failed') {
        throw new PreconditionError(`the ${opts.purpose} script failed on ${opts.node}`, `read its output: kubectl -n ${opts.namespace} logs ${name} (the pod is deleted when this command ends; rerun to retry)`);
      }
      if (signal?.aborted) throw new InterruptedError(`stopped while the ${opts.purpose} script ran on ${opts.node}`, 'rerun the same command to resume');
      if (clock.now() > deadline) throw new TimeoutError(`the ${opts.purpose} script on ${opts.node} did not finish in ${Math.round(opts.timeoutMs / 1000)}s (pod ${opts.namespace}/${name})`, 'check that the node runs pods (kubectl describe pod)');
      await clock.sleep(opts.pollMs, signal);
    }
  } finally {
    const pod = await cluster.getPod(opts.namespace, name).catch(() => undefined);
    if (pod) await cluster.deletePodByUid(opts.namespace, name, pod.uid, 0).catch(() => {});
  }
}

/** Rollback: Cilium's CNI config goes, the legacy ones it renamed come back. */
export const restoreLegacyCniScript = [
  'set -e',
  'cd /etc/cni/net.d',
  'rm -f 05-cilium.conflist 05-cilium.conf',
  'for f in *.cilium_bak; do [ -e "$f" ] || continue; mv -f "$f" "${f%.cilium_bak}"; done',
  'ls -1',
].join('\n');

/** Finalize: what Flannel leaves on a node (its links, iptables chains and CNI files). */
export const legacyCleanupScript = [
  'ip link delete flannel.1 2>/dev/null || true',
  'ip link delete cni0 2>/dev/null || true',
  'for t in filter nat; do',
  '  iptables-save -t "$t" | grep -E "^-A .* -j FLANNEL-" | sed "s/^-A /-D /" | while read -r rule; do eval "iptables -t $t $rule" || true; done',
  '  for c in $(iptables-save -t "$t" | sed -n "s/^:\\(FLANNEL-[A-Z-]*\\).*/\\1/p"); do iptables -t "$t" -F "$c"; iptables -t "$t" -X "$c"; done',
  'done',
  'rm -f /etc/cni/net.d/*.cilium_bak /etc/cni/net.d/10-flannel.conflist',
  'rm -rf /run/flannel',
].join('\n');

/** The same cleanup as steps a person runs on each node. */
export const legacyCleanupHints = [
  'ip link delete flannel.1; ip link delete cni0',
  'iptables-save | grep -v FLANNEL | iptables-restore   (after checking what it drops)',
  'rm -f /etc/cni/net.d/*.cilium_bak /etc/cni/net.d/10-flannel.conflist; rm -rf /run/flannel',
];
