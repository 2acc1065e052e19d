// The lab's nodes as the API server sees them: Node objects registered the way kubelet registers
// them (kind's names, roles, the control-plane taint, an InternalIP on the underlay, a bootID),
// kept Ready by status heartbeats and node Leases, and taken NotReady and back by a restart, which
// also changes the bootID as a real reboot does.
import { randomUUID } from 'node:crypto';
import { kindNodeLabels, type SimulatedNode } from './cluster-objects.js';
import { api, ApiError, type LabClient } from './lab-api.js';
import { waitUntil } from './wait.js';

type Json = Record<string, unknown>;
export const heartbeatMs = 10_000;
export const labKubeletVersion = 'v1.36.5';

export interface LabNodeState {
  name: string;
  role: SimulatedNode['role'];
  internalIp: string;
  bootID: string;
  ready: boolean;
  readySince: string;
  podCIDR: string;
}

function nodeManifest(node: SimulatedNode): Json {
  const labels = kindNodeLabels(node);
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: node.name, labels, annotations: { 'node.alpha.kubernetes.io/ttl': '0' } },
    spec: {
      providerID: `lab://${node.name}`,
      ...(node.role === 'control-plane' ? { taints: [{ key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' }] } : {}),
    },
  };
}

function conditions(ready: boolean, readySince: string, now: string): Json[] {
  const ok = (type: string, reason: string, message: string): Json => ({ type, status: 'False', reason, message, lastHeartbeatTime: now, lastTransitionTime: readySince });
  return [
    ok('MemoryPressure', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'),
    ok('DiskPressure', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
    ok('PIDPressure', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
    {
      type: 'Ready',
      status: ready ? 'True' : 'False',
      reason: ready ? 'KubeletReady' : 'KubeletNotReady',
      message: ready ? 'kubelet is posting ready status' : 'container runtime is down (the lab node is restarting)',
      lastHeartbeatTime: now,
      lastTransitionTime: readySince,
    },
  ];
}

/** Registers, heartbeats and restarts the lab's Node objects. */
export class LabNodes {
  readonly nodes = new Map<string, LabNodeState>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly kube: LabClient, private readonly log: (line: string) => void) {}

  /** Registers the nodes, waits for the controller manager to give each a pod CIDR, and reports them Ready. */
  async register(nodes: { node: SimulatedNode; internalIp: string }[], timeoutMs = 60_000): Promise<void> {
    for (const { node, internalIp } of nodes) {
      try {
        await api(this.kube, 'POST', '/api/v1/nodes', nodeManifest(node));
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 409)) throw err;
      }
      const podCIDR = await waitUntil(`node ${node.name} to get a pod CIDR from the controller manager`, async () =>
        (await api<{ spec?: { podCIDR?: string } }>(this.kube, 'GET', `/api/v1/nodes/${node.name}`)).spec?.podCIDR || undefined, timeoutMs, 100);
      const now = new Date().toISOString();
      this.nodes.set(node.name, { name: node.name, role: node.role, internalIp, bootID: randomUUID(), ready: true, readySince: now, podCIDR });
      await this.postStatus(node.name, true);
      this.log(`node ${node.name} registered (${internalIp}, pod CIDR ${podCIDR})`);
    }
    this.timer = setInterval(() => void this.heartbeat(), heartbeatMs);
    this.timer.unref();
  }

  /** Sets the node NotReady (runtime down), as at the start of a restart. */
  async goDown(name: string): Promise<void> {
    const n = this.must(name);
    n.ready = false;
    n.readySince = new Date().toISOString();
    await this.postStatus(name, true);
  }

  /** Back from a restart: a new bootID, Ready again. */
  async comeUp(name: string): Promise<void> {
    const n = this.must(name);
    n.bootID = randomUUID();
    n.ready = true;
    n.readySince = new Date().toISOString();
    await this.postStatus(name, true);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private must(name: string): LabNodeState {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`${name} is not a lab node (lab nodes: ${[...this.nodes.keys()].join(', ')})`);
    return n;
  }

  private async heartbeat(): Promise<void> {
    for (const name of this.nodes.keys()) {
      try {
        await this.postStatus(name, false);
      } catch (err) {
        this.log(`heartbeat of ${name} failed: ${(err as Error).message}`);
      }
    }
  }

  private async postStatus(name: string, full: boolean): Promise<void> {
    const n = this.must(name);
    const now = new Date().toISOString();
    const status: Json = {
      conditions: conditions(n.ready, n.readySince, now),
      ...(full
        ? {
            // No Hostname address: the API server would dial kubelet by a name nothing in the lab resolves.
            addresses: [{ type: 'InternalIP', address: n.internalIp }],
            capacity: { cpu: '8', memory: '32Gi', pods: '110' },
            allocatable: { cpu: '8', memory: '32Gi', pods: '110' },
            daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
            nodeInfo: {
              bootID: n.bootID, machineID: n.name, systemUUID: n.name, kernelVersion: 'lab', osImage: 'cilium-migrate lab',
              containerRuntimeVersion: 'lab://1', kubeletVersion: labKubeletVersion, kubeProxyVersion: labKubeletVersion,
              operatingSystem: 'linux', architecture: 'amd64',
            },
          }
        : {}),
    };
    await api(this.kube, 'PATCH', `/api/v1/nodes/${name}/status`, { status }, 'merge');
    await this.renewLease(name);
  }

  private async renewLease(name: string): Promise<void> {
    // MicroTime: six fraction digits.
    const now = new Date().toISOString().replace(/Z$/, '000Z');
    const path = `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${name}`;
    try {
      await api(this.kube, 'PATCH', path, { spec: { renewTime: now, holderIdentity: name } }, 'merge');
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) throw err;
      await api(this.kube, 'POST', '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases', {
        apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace: 'kube-node-lease' },
        spec: { holderIdentity: name, leaseDurationSeconds: 40, renewTime: now },
      });
    }
  }
}
