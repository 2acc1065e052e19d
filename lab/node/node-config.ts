// What a lab node is configured with, as kind's kubeadm would configure it, as plain text from
// plain values (unit-tested): the kubelet configuration, its kubeconfig, and the machine-wide
// sysctls the node gets files of its own for.
import { stringify } from 'yaml';

export interface KubeletSettings {
  nodeName: string;
  nodeIp: string;
  /** The cgroup (relative to every hierarchy's root) the node's pods go under. */
  cgroupRoot: string;
  controlPlane: boolean;
  clusterDns: string;
  /** kind's providerID for a node container: kind://docker/CLUSTER/NODE. */
  providerID: string;
}

/** The KubeletConfiguration of a lab node; files it names are inside the node (/etc/kubernetes). */
export function kubeletConfig(s: KubeletSettings): string {
  return stringify({
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    // The machines the lab runs on have cgroup v1 hierarchies; kubelet 1.36 refuses them unless told.
    failCgroupV1: false,
    cgroupDriver: 'cgroupfs',
    cgroupRoot: `/${s.cgroupRoot}`,
    containerRuntimeEndpoint: 'unix:///run/containerd/containerd.sock',
    providerID: s.providerID,
    address: s.nodeIp,
    port: 10250,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort: 10248,
    authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: '/etc/kubernetes/pki/ca.crt' } },
    authorization: { mode: 'Webhook' },
    clusterDomain: 'cluster.local',
    clusterDNS: [s.clusterDns],
    staticPodPath: '/etc/kubernetes/manifests',
    failSwapOn: false,
    // The machine's kernel settings are not the node's to check (they are shielded, see sysctlShields).
    protectKernelDefaults: false,
    resolvConf: '/etc/resolv.conf',
    podLogsDir: '/var/log/pods',
    // Many nodes share one disk with the machine: never evict or collect images over its fill level.
    evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '0%', 'nodefs.inodesFree': '0%', 'imagefs.available': '0%' },
    imageGCHighThresholdPercent: 100,
    ...(s.controlPlane ? { registerWithTaints: [{ key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' }] } : {}),
  });
}

/** A kubeconfig with a client certificate (inline), for kubelet. */
export function clientKubeconfig(o: { server: string; caPem: string; certPem: string; keyPem: string; user: string }): string {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'kind', cluster: { server: o.server, 'certificate-authority-data': b64(o.caPem) } }],
    users: [{ name: o.user, user: { 'client-certificate-data': b64(o.certPem), 'client-key-data': b64(o.keyPem) } }],
    contexts: [{ name: 'kind', context: { cluster: 'kind', user: o.user } }],
    'current-context': 'kind',
  });
}

/**
 * Machine-wide sysctls (not per network namespace) that kubelet writes when it starts (vm.*,
 * kernel.panic*, kernel.keys.*) and that Cilium's agent writes (kernel.unprivileged_bpf_disabled,
 * kernel.timer_migration). Each node gets a file of its own bound over each one, holding the
 * machine's value at first: writes from inside the node land in that file, never in the kernel.
 */
export const sysctlShields = [
  'vm.overcommit_memory',
  'vm.panic_on_oom',
  'kernel.panic',
  'kernel.panic_on_oops',
  'kernel.keys.root_maxkeys',
  'kernel.keys.root_maxbytes',
  'kernel.unprivileged_bpf_disabled',
  'kernel.timer_migration',
] as const;
