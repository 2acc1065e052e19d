// Objects of the sizes a real cluster has, for the benchmarks whose cost follows the bytes: a Node
// with the 50 images a kubelet reports (nodeStatusMaxImages), its conditions, addresses, labels and
// annotations as kubelet, Flannel and the cloud provider leave them; a CiliumNode as Cilium's agent
// writes it; and application pods with the env, probes, resources and volumes of a typical service.
// kwok (lab/bins) simulates the kubelets: it keeps the status it is given and adds its conditions.
import { randomUUID } from 'node:crypto';
import { stringify } from 'yaml';
import { kindNodeLabels, type SimulatedNode } from '../lab/cluster-objects.js';
import type { ControlPlane } from '../lab/control-plane.js';
import { waitFor } from './apiserver-requests.js';

const images = [
  'docker.io/library/nginx', 'docker.io/library/redis', 'docker.io/library/postgres', 'quay.io/prometheus/node-exporter',
  'registry.k8s.io/kube-proxy', 'registry.k8s.io/pause', 'registry.k8s.io/coredns/coredns', 'quay.io/cilium/cilium',
  'quay.io/cilium/operator-generic', 'docker.io/flannel/flannel', 'docker.io/flannel/flannel-cni-plugin', 'ghcr.io/example/checkout',
  'ghcr.io/example/payments', 'ghcr.io/example/catalog', 'ghcr.io/example/frontend', 'ghcr.io/example/search',
  'docker.io/grafana/promtail', 'docker.io/fluent/fluent-bit', 'registry.k8s.io/metrics-server/metrics-server', 'quay.io/jetstack/cert-manager-controller',
  'docker.io/bitnami/kafka', 'docker.io/bitnami/zookeeper', 'docker.io/library/busybox', 'docker.io/library/alpine',
  'ghcr.io/example/orders', 'ghcr.io/example/inventory', 'ghcr.io/example/notifications', 'ghcr.io/example/auth',
  'registry.k8s.io/ingress-nginx/controller', 'docker.io/istio/proxyv2', 'docker.io/library/memcached', 'docker.io/library/rabbitmq',
  'quay.io/argoproj/argocd', 'docker.io/hashicorp/vault', 'docker.io/library/mongo', 'docker.io/elastic/filebeat',
  'ghcr.io/example/reports', 'ghcr.io/example/billing', 'ghcr.io/example/users', 'ghcr.io/example/gateway',
  'registry.k8s.io/csi-secrets-store/driver', 'registry.k8s.io/sig-storage/csi-node-driver-registrar', 'registry.k8s.io/sig-storage/livenessprobe', 'docker.io/calico/node',
  'ghcr.io/example/analytics', 'ghcr.io/example/media', 'ghcr.io/example/scheduler', 'ghcr.io/example/worker', 'ghcr.io/example/cache', 'ghcr.io/example/api',
];
const digest = (seed: string) => `sha256:${Buffer.from(seed.padEnd(32, seed)).toString('hex').slice(0, 64)}`;

/** A Node as a kubelet of a cloud VM reports it, managed by kwok (annotation kwok.x-k8s.io/node=fake). */
export function realisticNode(node: SimulatedNode, index: number, podsCapacity = 110): Record<string, unknown> {
  const zone = ['a', 'b', 'c'][index % 3];
  const ip = `172.20.${(index >> 8) & 255}.${index & 255}`;
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: node.name,
      labels: {
        ...kindNodeLabels(node),
        type: 'kwok',
        'node.kubernetes.io/instance-type': 'm6i.2xlarge',
        'topology.kubernetes.io/region': 'eu-west-1',
        'topology.kubernetes.io/zone': `eu-west-1${zone}`,
        'failure-domain.beta.kubernetes.io/region': 'eu-west-1',
        'failure-domain.beta.kubernetes.io/zone': `eu-west-1${zone}`,
        'node-pool': `pool-${index % 4}`,
        'team.example.com/owner': 'platform',
      },
      annotations: {
        'kwok.x-k8s.io/node': 'fake',
        'node.alpha.kubernetes.io/ttl': '0',
        'volumes.kubernetes.io/controller-managed-attach-detach': 'true',
        'kubeadm.alpha.kubernetes.io/cri-socket': 'unix:///run/containerd/containerd.sock',
        'flannel.alpha.coreos.com/backend-data': JSON.stringify({ VNI: 1, VtepMAC: `0a:58:${index.toString(16).padStart(8, '0').replace(/(..)(?!$)/g, '$1:')}` }),
        'flannel.alpha.coreos.com/backend-type': 'vxlan',
        'flannel.alpha.coreos.com/kube-subnet-manager': 'true',
        'flannel.alpha.coreos.com/public-ip': ip,
        'csi.volume.kubernetes.io/nodeid': JSON.stringify({ 'ebs.csi.aws.com': `i-${index.toString(16).padStart(17, '0')}` }),
      },
    },
    spec: { providerID: `kwok://${node.name}` },
    status: {
      capacity: { cpu: '8', memory: '32386372Ki', pods: String(podsCapacity), 'ephemeral-storage': '104845292Ki', 'hugepages-1Gi': '0', 'hugepages-2Mi': '0' },
      allocatable: { cpu: '7910m', memory: '31235396Ki', pods: String(podsCapacity), 'ephemeral-storage': '95551679124', 'hugepages-1Gi': '0', 'hugepages-2Mi': '0' },
      addresses: [{ type: 'InternalIP', address: ip }, { type: 'Hostname', address: node.name }, { type: 'InternalDNS', address: `${node.name}.eu-west-1.compute.internal` }],
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      nodeInfo: {
        machineID: randomUUID().replace(/-/g, ''), systemUUID: randomUUID(), bootID: randomUUID(),
        kernelVersion: '6.1.0-28-cloud-amd64', osImage: 'Debian GNU/Linux 12 (bookworm)', containerRuntimeVersion: 'containerd://2.1.4',
        kubeletVersion: 'v1.36.5', kubeProxyVersion: 'v1.36.5', operatingSystem: 'linux', architecture: 'amd64',
      },
      images: images.map((name, i) => ({ names: [`${name}@${digest(name)}`, `${name}:v1.${i}.${index % 7}`], sizeBytes: 20_000_000 + ((i * 7_919_993 + index) % 400_000_000) })),
    },
  };
}

/** The CiliumNode of a node as Cilium's agent writes it in cluster-pool mode (labels copied from the Node). */
export function realisticCiliumNode(node: Record<string, unknown>, podCIDR: string, index: number): Record<string, unknown> {
  const meta = node.metadata as { name: string; labels: Record<string, string>; uid?: string };
  const ip = `172.20.${(index >> 8) & 255}.${index & 255}`;
  return {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNode',
    metadata: {
      name: meta.name,
      labels: meta.labels,
      ...(meta.uid ? { ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: meta.name, uid: meta.uid }] } : {}),
    },
    spec: {
      addresses: [{ type: 'InternalIP', ip }, { type: 'CiliumInternalIP', ip: podCIDR.replace(/\.\d+\/\d+$/, '.1') }],
      'alibaba-cloud': {}, azure: {}, eni: {}, encryption: {},
      health: { ipv4: podCIDR.replace(/\.\d+\/\d+$/, '.2') },
      ingress: {},
      ipam: { podCIDRs: [podCIDR], pools: {} },
    },
    status: { 'alibaba-cloud': {}, azure: {}, eni: {}, ipam: { 'operator-status': {} } },
  };
}

/** A pod template of a typical service: one container with env, ports, probes, resources, mounts. */
export function realisticPodTemplate(app: string, opts: { graceSeconds?: number; annotations?: Record<string, string>; nodeSelector?: Record<string, string> } = {}): Record<string, unknown> {
  return {
    metadata: {
      labels: { app, 'app.kubernetes.io/name': app, 'app.kubernetes.io/part-of': 'shop', 'app.kubernetes.io/version': '2.14.1', team: 'checkout' },
      annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '9090', 'kubectl.kubernetes.io/default-container': app, ...opts.annotations },
    },
    spec: {
      ...(opts.graceSeconds !== undefined ? { terminationGracePeriodSeconds: opts.graceSeconds } : {}),
      ...(opts.nodeSelector ? { nodeSelector: opts.nodeSelector } : {}),
      containers: [{
        name: app,
        image: `ghcr.io/example/${app}:2.14.1`,
        ports: [{ name: 'http', containerPort: 8080 }, { name: 'metrics', containerPort: 9090 }],
        env: [
          { name: 'LOG_LEVEL', value: 'info' },
          { name: 'DATABASE_URL', value: 'postgres://orders@postgres.shop.svc.cluster.local:5432/orders?sslmode=require' },
          { name: 'OTEL_EXPORTER_OTLP_ENDPOINT', value: 'http://otel-collector.observability.svc.cluster.local:4317' },
          { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
          { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
          { name: 'GOMAXPROCS', valueFrom: { resourceFieldRef: { resource: 'limits.cpu' } } },
        ],
        resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { cpu: '1', memory: '512Mi' } },
        readinessProbe: { httpGet: { path: '/readyz', port: 'http' }, periodSeconds: 5 },
        livenessProbe: { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 10, failureThreshold: 3 },
        volumeMounts: [{ name: 'config', mountPath: '/etc/app' }, { name: 'tmp', mountPath: '/tmp' }],
        securityContext: { runAsNonRoot: true, runAsUser: 10001, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
      }],
      volumes: [{ name: 'config', configMap: { name: `${app}-config`, optional: true } }, { name: 'tmp', emptyDir: { sizeLimit: '64Mi' } }],
      tolerations: [{ key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 }],
    },
  };
}

/** A Deployment of `replicas` pods from realisticPodTemplate. */
export function realisticDeployment(app: string, replicas: number, opts: Parameters<typeof realisticPodTemplate>[1] = {}): Record<string, unknown> {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: app, namespace: 'default', labels: { app } },
    spec: { replicas, selector: { matchLabels: { app } }, strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' } }, template: realisticPodTemplate(app, opts) },
  };
}

interface NodeList {
  items: { metadata: { name: string }; spec?: { podCIDR?: string }; status?: { conditions?: { type: string; status: string }[] } }[];
}

/** Creates the nodes (realisticNode) and waits until kwok reports each Ready with a pod CIDR. */
export async function createRealisticNodes(cp: ControlPlane, nodes: SimulatedNode[], opts: { podsCapacity?: number; timeoutMs?: number; log?: (l: string) => void } = {}): Promise<void> {
  for (let i = 0; i < nodes.length; i += 100) {
    const docs = nodes.slice(i, i + 100).map((n, k) => stringify(realisticNode(n, i + k, opts.podsCapacity))).join('---\n');
    await cp.kubectl(['create', '-f', '-'], { input: docs, timeoutMs: 300_000 });
  }
  const names = new Set(nodes.map((n) => n.name));
  await waitFor(`${nodes.length} nodes Ready with a pod CIDR`, async () => {
    const list = await cp.get<NodeList>('/api/v1/nodes');
    const ready = list.items.filter((n) => names.has(n.metadata.name) && n.spec?.podCIDR && n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).length;
    opts.log?.(`${ready}/${nodes.length} nodes Ready`);
    return ready === nodes.length;
  }, opts.timeoutMs ?? 900_000, 2000);
}

/** A CiliumNode per node (realisticCiliumNode), with the node's pod CIDR as its Cilium CIDR. */
export async function createRealisticCiliumNodes(cp: ControlPlane): Promise<void> {
  const nodes = await cp.get<{ items: { metadata: { name: string; labels: Record<string, string>; uid: string }; spec: { podCIDR: string } }[] }>('/api/v1/nodes');
  for (let i = 0; i < nodes.items.length; i += 200) {
    const docs = nodes.items.slice(i, i + 200).map((n, k) => stringify(realisticCiliumNode(n as unknown as Record<string, unknown>, n.spec.podCIDR, i + k))).join('---\n');
    await cp.kubectl(['create', '-f', '-'], { input: docs, timeoutMs: 300_000 });
  }
}

/** Bytes of the JSON of one object as the API server serves it (managed fields included). */
export async function servedSize(cp: ControlPlane, path: string): Promise<number> {
  return Buffer.byteLength(JSON.stringify(await cp.get(path)));
}
