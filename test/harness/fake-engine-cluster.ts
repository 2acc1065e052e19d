// An in-memory fake of the engine's own narrow interfaces (cmd/cluster/cluster.ts), for unit tests
// of the procedures: nodes, pods, evictions answered by a rule the test sets, the Cilium agent pods a
// DaemonSet would recreate, and a log of every change in order. Not a Kubernetes API server: it
// implements only the plugin's interface, with the behaviour the engine relies on.
import type { HostCommandPod, KubeCluster, LeaseView, NodePatch, NodeView, PodView } from '../../cmd/cluster/cluster.js';
import type { DrainPod } from '../../cmd/cluster/drain-filter.js';
import type { Clock } from '../../lib/clock.js';
import type { BaselineResult, Gate, GateResult } from '../../cmd/engine/gate.js';
import type { NodeRestarter, RestartRequest } from '../../cmd/engine/restart.js';
import type { EvictionOutcome } from '../../lib/kube-objects.js';

export interface FakePod extends PodView {
  labels: Record<string, string>;
  mirror: boolean;
  emptyDir: boolean;
  deletionTimestamp?: Date | undefined;
}

const matches = (labels: Record<string, string>, selector?: string) =>
  !selector || selector.split(',').every((term) => {
    const [k, v] = term.split('=');
    return labels[k!] === v;
  });

export const ciliumNamespace = 'kube-system';

export class FakeEngineCluster implements KubeCluster {
  nodes = new Map<string, NodeView>();
  pods: FakePod[] = [];
  /** Every change, in order: "patch w1 unschedulable=true", "evict app/web-1", ... */
  log: string[] = [];
  /** Every Event recorded: "w1 MigrationCordon". */
  events: string[] = [];
  /** How an eviction is answered; by default the pod goes at once. */
  evictionAnswer: (pod: FakePod) => EvictionOutcome = () => ({ kind: 'evicted' });
  /** Called after every node patch is applied (tests inject what happens in between). */
  afterPatch: (node: string, patch: NodePatch) => void = () => {};
  /** Makes the next patch whose state JSON matches fail (a cut connection, a killed process). */
  failPatchMatching: RegExp | undefined;
  /** The address a new pod on a node gets: a Cilium one unless the test sets a legacy one (rollback). */
  newPodIp = '10.245.1.9';
  private uid = 0;

  constructor(nodeNames: string[] = ['w1']) {
    for (const name of nodeNames) {
      this.nodes.set(name, { name, uid: `node-${name}`, unschedulable: false, labels: {}, annotations: {}, providerID: 'fake://', bootID: 'boot-1', ready: true, readySince: new Date(0), podCIDRs: ['10.244.1.0/24'], controlPlane: false });
      this.addPod({ namespace: ciliumNamespace, name: `cilium-${name}`, nodeName: name, controller: { kind: 'DaemonSet', name: 'cilium' }, labels: { 'k8s-app': 'cilium' }, hostNetwork: true });
    }
  }

  addPod(p: Partial<FakePod> & { namespace: string; name: string; nodeName: string }): FakePod {
    const pod: FakePod = { uid: `uid-${++this.uid}`, phase: 'Running', ready: true, podIP: '10.244.1.5', hostNetwork: false, createdAt: new Date(0), labels: {}, mirror: false, emptyDir: false, ...p };
    this.pods.push(pod);
    return pod;
  }

  /** A pod of a ReplicaSet, as a Deployment makes them. */
  addWorkload(node: string, name: string, labels: Record<string, string> = { app: 'web' }): FakePod {
    return this.addPod({ namespace: 'app', name, nodeName: node, controller: { kind: 'ReplicaSet', name: 'web-rs' }, labels });
  }

  node(name: string): NodeView {
    return this.nodes.get(name)!;
  }

  workloadsOn(node: string): string[] {
    return this.pods.filter((p) => p.nodeName === node && p.namespace === 'app').map((p) => p.name);
  }

  private remove(pod: FakePod) {
    this.pods = this.pods.filter((p) => p !== pod);
    // The Cilium DaemonSet puts a new agent pod on the node at once.
    if (pod.controller?.kind === 'DaemonSet' && pod.labels['k8s-app'] === 'cilium') this.addPod({ namespace: pod.namespace, name: `${pod.name}-x`, nodeName: pod.nodeName, controller: pod.controller, labels: pod.labels, hostNetwork: true });
  }

  async listPodsOnNode(node: string, podSelector?: string): Promise<DrainPod[]> {
    return this.pods.filter((p) => p.nodeName === node && matches(p.labels, podSelector)).map((p) => ({ ...p }));
  }
  async daemonSetExists(): Promise<boolean> {
    return true;
  }
  async evictPod(target: DrainPod): Promise<EvictionOutcome> {
    const pod = this.pods.find((p) => p.uid === target.uid);
    if (!pod) return { kind: 'gone' };
    const outcome = this.evictionAnswer(pod);
    if (outcome.kind === 'evicted') {
      this.log.push(`evict ${pod.namespace}/${pod.name}`);
      this.remove(pod);
    }
    return outcome;
  }
  async deletePod(target: DrainPod): Promise<void> {
    await this.deletePodByUid(target.namespace, target.name, target.uid);
  }
  async deletePodByUid(namespace: string, name: string, uid: string): Promise<void> {
    const pod = this.pods.find((p) => p.uid === uid);
    if (!pod) return;
    this.log.push(`delete ${namespace}/${name}`);
    this.remove(pod);
  }
  /** GETs of a node so far (the engine's reads of it; every patch answers with the node too). */
  nodeReads = 0;
  async getNode(name: string): Promise<NodeView> {
    this.nodeReads++;
    const n = this.nodes.get(name);
    if (!n) throw new Error(`no node ${name}`);
    return structuredClone(n);
  }
  async patchNode(name: string, patch: NodePatch): Promise<NodeView> {
    if (this.failPatchMatching && this.failPatchMatching.test(JSON.stringify(patch))) {
      this.failPatchMatching = undefined;
      throw new Error('connection reset (fake)');
    }
    const n = this.nodes.get(name)!;
    if (patch.unschedulable !== undefined) {
      n.unschedulable = patch.unschedulable;
      this.log.push(`patch ${name} unschedulable=${patch.unschedulable}`);
    }
    for (const [k, v] of Object.entries(patch.labels ?? {})) {
      if (v === null) delete n.labels[k];
      else n.labels[k] = v;
      this.log.push(`label ${name} ${k}=${v}`);
    }
    for (const [k, v] of Object.entries(patch.annotations ?? {})) {
      if (v === null) delete n.annotations[k];
      else n.annotations[k] = v;
    }
    this.afterPatch(name, patch);
    return structuredClone(n);
  }
  async listNodePods(node: string, labelSelector?: string): Promise<PodView[]> {
    return this.pods.filter((p) => p.nodeName === node && matches(p.labels, labelSelector)).map((p) => ({ ...p }));
  }
  async listPodsBySelector(namespace: string, labelSelector: string): Promise<PodView[]> {
    return this.pods.filter((p) => p.namespace === namespace && matches(p.labels, labelSelector)).map((p) => ({ ...p }));
  }
  async ciliumPodCidrs(): Promise<string[]> {
    return ['10.245.1.0/24'];
  }
  async nodeConfigsSelecting(_ns: string, labels: Record<string, string>): Promise<string[]> {
    return labels['io.cilium.migration/cilium-default'] === 'true' ? ['cilium-default'] : [];
  }
  async createProbePod(namespace: string, name: string, node: string): Promise<void> {
    this.log.push(`create ${namespace}/${name}`);
    this.addPod({ namespace, name, nodeName: node, podIP: this.newPodIp });
  }
  async createHostCommandPod(pod: HostCommandPod): Promise<'created' | 'exists'> {
    if (this.pods.some((p) => p.namespace === pod.namespace && p.name === pod.name)) return 'exists';
    this.log.push(`create ${pod.namespace}/${pod.name}`);
    this.addPod({ namespace: pod.namespace, name: pod.name, nodeName: pod.node, phase: 'Succeeded', labels: { 'app.kubernetes.io/name': 'cilium-migrate-host-command', 'cilium-migrate.io/purpose': pod.purpose } });
    return 'created';
  }
  async getPod(namespace: string, name: string): Promise<PodView | undefined> {
    const p = this.pods.find((x) => x.namespace === namespace && x.name === name);
    return p ? { ...p } : undefined;
  }
  async recordEvent(node: NodeView, _type: string, reason: string): Promise<void> {
    this.events.push(`${node.name} ${reason}`);
  }
  async getLease(): Promise<LeaseView | undefined> {
    return undefined;
  }
  async writeLease(): Promise<boolean> {
    return true;
  }
  async deleteLease(): Promise<void> {}
}

/** A clock whose sleeps pass at once. */
export function instantClock(): Clock {
  let t = Date.parse('2026-01-01T00:00:00Z');
  return {
    now: () => t,
    sleep: async (ms) => {
      t += ms;
      await Promise.resolve();
    },
  };
}

/** A gate that always passes. */
export const passingGate: Gate = {
  name: 'fake',
  baseline: async (): Promise<BaselineResult> => ({ verdict: 'PASS', reasons: ['fake'] }),
  check: async (): Promise<GateResult> => ({ verdict: 'PASS', reasons: ['fake'] }),
};

/** A restarter that records its requests and, unless told otherwise, restarts the node (new bootID). */
export function fakeRestarter(cluster: FakeEngineCluster, answer: (node: string) => RestartRequest & { restarts?: boolean } = () => ({ detail: 'restarted' })) {
  const requests: { node: string; id: string }[] = [];
  const restarter: NodeRestarter = {
    method: 'exec',
    async request(node, id) {
      requests.push({ node: node.name, id });
      cluster.log.push(`restart ${node.name}`);
      const a = answer(node.name);
      if (a.restarts !== false) cluster.node(node.name).bootID = `boot-${requests.length + 1}`;
      return a;
    },
  };
  return { restarter, requests };
}
