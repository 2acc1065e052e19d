// A shell script run on a node's host through a privileged, short-lived pod (nsenter into PID 1's
// mount and network namespaces): how rollback restores the CNI config files and finalize cleans up
// what the legacy CNI left. The pod's name is hashed from the request (the run) and the node, so it
// is unique and never collides with a leftover; leftovers of earlier runs are found by their labels
// and removed by UID before the script runs again (the scripts are safe to repeat).
import { createHash } from 'node:crypto';
import type { Clock } from '../../lib/clock.js';
import { hostPodAppName, hostPodLabels } from '../../lib/defaults.js';
import { InterruptedError, PreconditionError, TimeoutError } from '../../lib/errors.js';
import { pollUntil } from '../../lib/poll.js';
import type { HostCommands, PodStore } from '../cluster/cluster.js';

/**
 * The name of the pod that serves `request` for `purpose` on `node`: unique per request and node
 * (hashed, so any node name fits in 63 characters), the same every time that request is made.
 */
export function hostCommandPodName(purpose: string, node: string, request: string): string {
  return `cilium-migrate-${purpose}-${createHash('sha256').update(`${request}\n${node}`).digest('hex').slice(0, 12)}`;
}

/** The selector of every host-command pod for `purpose`. */
export const hostPodSelector = (purpose: string) => `${hostPodLabels.app}=${hostPodAppName},${hostPodLabels.purpose}=${purpose}`;

/** What finding and removing host-command pods needs. */
export type HostPodCluster = HostCommands & Pick<PodStore, 'listPodsBySelector' | 'deletePodByUid'>;

/** Deletes, by UID, the pods for `purpose` on `node` that serve another request than `keep`. */
export async function removeLeftoverHostPods(cluster: HostPodCluster, namespace: string, purpose: string, node: string, keep?: string): Promise<string[]> {
  const left = (await cluster.listPodsBySelector(namespace, hostPodSelector(purpose))).filter((p) => p.nodeName === node && p.name !== keep);
  for (const p of left) await cluster.deletePodByUid(p.namespace, p.name, p.uid, 0);
  return left.map((p) => p.name);
}

/** What running a host script needs. */
export type HostScriptCluster = HostPodCluster & Pick<PodStore, 'getPod'>;

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
    return await pollUntil(async () => {
      const pod = await cluster.getPod(opts.namespace, name);
      if (pod?.phase === 'Failed') {
        throw new PreconditionError(`the ${opts.purpose} script failed on ${opts.node}`, `read its output: kubectl -n ${opts.namespace} logs ${name} (the pod is deleted when this command ends; rerun to retry)`);
      }
      return pod?.phase === 'Succeeded' ? name : undefined;
    }, {
      clock, deadline, intervalMs: opts.pollMs, signal,
      stopped: () => new InterruptedError(`stopped while the ${opts.purpose} script ran on ${opts.node}`, 'rerun the same command to resume'),
      timedOut: () => new TimeoutError(`the ${opts.purpose} script on ${opts.node} did not finish in ${Math.round(opts.timeoutMs / 1000)}s (pod ${opts.namespace}/${name})`, 'check that the node runs pods (kubectl describe pod)'),
    });
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

/** The legacy CNIs whose leftovers finalize knows how to clean. */
export type CleanupKind = 'flannel' | 'calico' | 'aws-cni';

/**
 * Removes every iptables and ip6tables chain whose name starts with `prefix` from `tables`, and the
 * jumps to them: all jumps first, then every chain flushed, then deleted (chains may jump to each
 * other, and a chain still referenced cannot be deleted).
 */
function dropChains(prefix: string, tables: string[]): string[] {
  const chains = `"$ipt-save" -t "$t" 2>/dev/null | sed -n "s/^:\\(${prefix}[A-Za-z0-9_-]*\\).*/\\1/p"`;
  return [
    'for ipt in iptables ip6tables; do',
    '  command -v "$ipt-save" >/dev/null 2>&1 || continue',
    `  for t in ${tables.join(' ')}; do`,
    `    "$ipt-save" -t "$t" 2>/dev/null | grep -E "^-A [^ ]+ .*-j ${prefix}" | sed "s/^-A /-D /" | while read -r rule; do eval "$ipt -t $t $rule" 2>/dev/null || true; done`,
    `    for c in $(${chains}); do "$ipt" -t "$t" -F "$c" 2>/dev/null || true; done`,
    `    for c in $(${chains}); do "$ipt" -t "$t" -X "$c" 2>/dev/null || true; done`,
    '  done',
    'done',
  ];
}

/**
 * Finalize: what the legacy CNI leaves on a node: its links, its iptables chains, its nftables
 * tables and its CNI files. Both firewall back ends are cleaned whatever mode ran: Flannel with
 * EnableNFTables keeps its rules in the tables `ip flannel-ipv4` and `ip6 flannel-ipv6`
 * (flannel-io/flannel pkg/trafficmngr/nftables), without it in FLANNEL-* chains; Calico's felix with
 * NFTablesMode Enabled keeps its rules, sets and maps in the tables `ip calico` and `ip6 calico`
 * (projectcalico/calico felix/dataplane/linux/int_dataplane.go), without it in cali-* chains. Every
 * command may find nothing to do.
 */
export function legacyCleanupScript(kind: CleanupKind): string {
  const cni = (files: string[]) => `rm -f /etc/cni/net.d/*.cilium_bak ${files.map((f) => `/etc/cni/net.d/${f}`).join(' ')}`;
  const links = (names: string[]) => names.map((l) => `ip link delete ${l} 2>/dev/null || true`);
  switch (kind) {
    case 'flannel':
      return [
        ...links(['flannel.1', 'flannel-v6.1', 'flannel-wg', 'flannel-wg-v6', 'cni0']),
        ...dropChains('FLANNEL-', ['filter', 'nat']),
        'if command -v nft >/dev/null 2>&1; then',
        '  nft delete table ip flannel-ipv4 2>/dev/null || true',
        '  nft delete table ip6 flannel-ipv6 2>/dev/null || true',
        'fi',
        cni(['10-flannel.conflist']),
        'rm -rf /run/flannel',
      ].join('\n');
    case 'calico':
      return [
        ...links(['vxlan.calico', 'vxlan-v6.calico', 'wireguard.cali', 'wg-v6.cali']),
        // tunl0 is the kernel's IP-in-IP fallback device: it cannot be deleted, only taken down.
        'ip link set tunl0 down 2>/dev/null || true',
        'ip route flush proto bird 2>/dev/null || true',
        ...dropChains('cali-', ['raw', 'mangle', 'filter', 'nat']),
        'if command -v nft >/dev/null 2>&1; then',
        '  nft delete table ip calico 2>/dev/null || true',
        '  nft delete table ip6 calico 2>/dev/null || true',
        'fi',
        cni(['10-calico.conflist', 'calico-kubeconfig']),
        'rm -rf /var/run/calico /var/lib/calico',
      ].join('\n');
    case 'aws-cni':
      return [...dropChains('AWS-', ['mangle', 'filter', 'nat']), cni(['10-aws.conflist', 'aws.conf'])].join('\n');
  }
}

/** The same cleanup as steps a person runs on each node. */
export function legacyCleanupHints(kind: CleanupKind, nftables = false): string[] {
  switch (kind) {
    case 'flannel':
      return [
        'ip link delete flannel.1; ip link delete cni0',
        nftables
          ? 'nft delete table ip flannel-ipv4; nft delete table ip6 flannel-ipv6   (Flannel ran with EnableNFTables)'
          : 'iptables-save | grep -v FLANNEL | iptables-restore   (after checking what it drops)',
        'rm -f /etc/cni/net.d/*.cilium_bak /etc/cni/net.d/10-flannel.conflist; rm -rf /run/flannel',
      ];
    case 'calico':
      return [
        'ip link delete vxlan.calico; ip link set tunl0 down; ip route flush proto bird',
        nftables
          ? 'nft delete table ip calico; nft delete table ip6 calico   (felix ran with NFTablesMode Enabled)'
          : 'iptables-save | grep -v -- "-j cali-\\|^:cali-\\|^-A cali-" | iptables-restore   (after checking what it drops)',
        'rm -f /etc/cni/net.d/*.cilium_bak /etc/cni/net.d/10-calico.conflist /etc/cni/net.d/calico-kubeconfig; rm -rf /var/run/calico /var/lib/calico',
      ];
    case 'aws-cni':
      return ['iptables-save | grep -v AWS- | iptables-restore   (after checking what it drops)', 'rm -f /etc/cni/net.d/*.cilium_bak /etc/cni/net.d/10-aws.conflist'];
  }
}
