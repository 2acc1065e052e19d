// Calico as the lab's legacy CNI (`lab up --legacy calico`): the projectcalico/calico module's own
// manifests/calico-vxlan.yaml (Kubernetes datastore, no Typha, no BIRD), with the images built
// locally under the names it uses (lab/images/calico.ts), changed only where the lab needs it:
//   - the pool: CALICO_IPV4POOL_CIDR (kubeadm's 192.168.0.0/16 unless told), VXLAN Always (the
//     manifest's CrossSubnet sends same-subnet traffic unencapsulated, and every lab node shares one
//     underlay subnet: the legacy overlay would not be an overlay);
//   - IP_AUTODETECTION_METHOD kubernetes-internal-ip: the node's InternalIP, so that Calico's
//     first-found autodetection can never pick cilium_host once Cilium runs next to it;
//   - FELIX_DebugSkipCTLBCleanup=true (felix's own switch, read in felix/bpf/nat/connecttime.go): the
//     lab builds calico-node without cgo, so without libbpf, which only the eBPF dataplane uses; felix's
//     iptables dataplane calls into it once at start, to clean up eBPF connect-time load-balancer
//     state a former eBPF run may have left, and the cgo-less stub panics there ("panic: LIBBPF
//     syscall stub" from libbpf.OpenObject via maps.(*PinnedMap).EnsureExists). A lab node never
//     ran Calico's eBPF dataplane: there is nothing to clean;
//   - the ebpf-bootstrap init container is dropped: it is for the eBPF dataplane (the lab runs felix's
//     iptables dataplane), and it mounts cgroup2 from the cgroup namespace of the node's PID 1, which
//     in the lab is the machine's: the machine's whole cgroup tree would appear in the node;
//   - the kubernetes-services-endpoint ConfigMap the manifest reads (optional there) names the API
//     server's lab address, as Cilium's k8sServiceHost does, so no Calico component depends on
//     kube-proxy having programmed the kubernetes Service first.
// felix, allocate-tunnel-addrs and the CNI plugin run in the node's namespaces only (hostNetwork
// pods and the node's kubelet): their iptables rules, routes, vxlan.calico and sysctls are the node's.
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';

type Obj = Record<string, unknown>;
interface EnvVar { name: string; value?: string; valueFrom?: unknown }
interface Container { name: string; image?: string; env?: EnvVar[] }
interface PodSpec { initContainers?: Container[]; containers: Container[] }

/** The pool the lab gives Calico by default: kubeadm's --pod-network-cidr for Calico. */
export const calicoDefaultPoolCidr = '192.168.0.0/16';
/** Calico's VXLAN port (felix's VXLANPort default), which the lab's Cilium must not use. */
export const calicoVxlanPort = 4789;
export const calicoNamespace = 'kube-system';
export const calicoDaemonSet = 'calico-node';
export const calicoKubeControllers = 'calico-kube-controllers';

export interface CalicoLayout {
  /** The IPv4 pool calico-node creates at its first start (CALICO_IPV4POOL_CIDR). */
  poolCidr: string;
  /** The API server as the nodes reach it: the lab's address, not the kubernetes Service. */
  apiServer: { host: string; port: number };
}

/** calico-vxlan.yaml's objects (`file`: the calico group's manifests/calico-vxlan.yaml), changed as above. */
export function calicoManifestObjects(file: string, o: CalicoLayout): Obj[] {
  const docs = parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJSON() as Obj | null).filter((d): d is Obj => d !== null);
  const ds = docs.find((d) => d.kind === 'DaemonSet' && (d.metadata as { name?: string }).name === calicoDaemonSet);
  if (!ds) throw new Error(`${file} has no DaemonSet ${calicoDaemonSet}`);
  const pod = (ds.spec as { template: { spec: PodSpec } }).template.spec;
  const before = pod.initContainers?.length ?? 0;
  pod.initContainers = (pod.initContainers ?? []).filter((c) => c.name !== 'ebpf-bootstrap');
  if (pod.initContainers.length !== before - 1) throw new Error(`${file}: calico-node has no ebpf-bootstrap init container to drop; check the lab's changes against this manifest`);
  const node = pod.containers.find((c) => c.name === 'calico-node');
  if (!node?.env) throw new Error(`${file}: the DaemonSet has no calico-node container with an env`);
  setEnv(node.env, 'CALICO_IPV4POOL_CIDR', o.poolCidr);
  setEnv(node.env, 'CALICO_IPV4POOL_VXLAN', 'Always');
  setEnv(node.env, 'IP_AUTODETECTION_METHOD', 'kubernetes-internal-ip');
  setEnv(node.env, 'FELIX_DebugSkipCTLBCleanup', 'true');
  return [
    ...docs,
    {
      apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kubernetes-services-endpoint', namespace: calicoNamespace },
      data: { KUBERNETES_SERVICE_HOST: o.apiServer.host, KUBERNETES_SERVICE_PORT: String(o.apiServer.port) },
    },
  ];
}

/** Sets (or adds) a plain-valued variable, in place. */
function setEnv(env: EnvVar[], name: string, value: string): void {
  const at = env.findIndex((e) => e.name === name);
  if (at >= 0) env[at] = { name, value };
  else env.push({ name, value });
}
