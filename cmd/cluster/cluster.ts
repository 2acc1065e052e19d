// The cluster as the plugin's engine sees it: plain views of nodes and pods, and a few narrow
// interfaces it reads and changes them through (node store, pod store, Cilium's objects, evictions,
// host commands, the lock's lease). cmd/cluster/kube-cluster.ts implements them over the
// Kubernetes client; unit tests use the in-memory fake in test/harness/fake-engine-cluster.ts.
import type { EvictionOutcome } from '../../lib/kube-objects.js';
import type { DrainPod } from './drain-filter.js';

export interface NodeView {
  name: string;
  uid: string;
  unschedulable: boolean;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  providerID: string;
  bootID: string;
  ready: boolean;
  /** When the Ready condition last changed. */
  readySince?: Date | undefined;
  /** When kubelet last reported the Ready condition (whole seconds). */
  readyHeartbeat?: Date | undefined;
  /** The legacy (Kubernetes) pod CIDRs of the node. */
  podCIDRs: string[];
  controlPlane: boolean;
  /** The node's taints (key and effect); absent where a source does not carry them. */
  taints?: { key: string; effect: string }[] | undefined;
}

export interface PodView {
  namespace: string;
  name: string;
  uid: string;
  nodeName: string;
  phase: string;
  ready: boolean;
  podIP: string;
  hostNetwork: boolean;
  createdAt: Date;
  controller?: { kind: string; name: string } | undefined;
  /** Restarts of its containers, summed (kubelet's restartCount). */
  restarts?: number | undefined;
  /** Its running or last containers' IDs (containerd://...). */
  containerIds?: string[] | undefined;
}

/** The changes the engine makes to a Node; null removes a label or annotation. */
export interface NodePatch {
  unschedulable?: boolean;
  labels?: Record<string, string | null>;
  annotations?: Record<string, string | null>;
}

export interface LeaseView {
  holder: string;
  /** When the holder last renewed. */
  renewTime: Date;
  durationSeconds: number;
  resourceVersion: string;
}

/** A privileged, short-lived pod on one node that runs a command in the host's namespaces. */
export interface HostCommandPod {
  namespace: string;
  name: string;
  node: string;
  image: string;
  command: string[];
  /** What it is for (reboot, rollback, cleanup): a label, so leftovers are found by it. */
  purpose: string;
  /** The request it serves, as an annotation. */
  request: string;
}

/** Nodes: read, changed by merge patch, and told about in Events. */
export interface NodeStore {
  /** Throws NotFoundError when there is no such node. */
  getNode(name: string): Promise<NodeView>;
  patchNode(name: string, patch: NodePatch): Promise<NodeView>;
  /** A Kubernetes Event on the Node; failures to record are not fatal. */
  recordEvent(node: NodeView, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void>;
}

/** Pods: listed per node or by selector, the verify pod created, a pod deleted only by its UID. */
export interface PodStore {
  listNodePods(node: string, labelSelector?: string): Promise<PodView[]>;
  /** Pods in `namespace` matching `labelSelector`, on every node (one LIST). */
  listPodsBySelector(namespace: string, labelSelector: string): Promise<PodView[]>;
  getPod(namespace: string, name: string): Promise<PodView | undefined>;
  deletePodByUid(namespace: string, name: string, uid: string, gracePeriodSeconds?: number): Promise<void>;
  /** Starts a short-lived pod pinned to `node` (tolerating everything) for the verify step. */
  createProbePod(namespace: string, name: string, node: string, image: string): Promise<void>;
}

/** Cilium's objects about nodes. */
export interface CiliumStore {
  /** The node's Cilium pod CIDRs (CiliumNode spec.ipam.podCIDRs); undefined without a CiliumNode. */
  ciliumPodCidrs(node: string): Promise<string[] | undefined>;
  /** Names of the CiliumNodeConfigs (any served version) whose selector matches `labels`. */
  nodeConfigsSelecting(namespace: string, labels: Record<string, string>): Promise<string[]>;
}

/** What a drain needs: the pods on a node, whether their DaemonSet exists, eviction and (--disable-eviction) deletion. */
export interface DrainCluster {
  /** Pods bound to `node`, optionally filtered by a label selector. */
  listPodsOnNode(node: string, podSelector?: string): Promise<DrainPod[]>;
  daemonSetExists(namespace: string, name: string): Promise<boolean>;
  evictPod(pod: DrainPod, gracePeriodSeconds?: number): Promise<EvictionOutcome>;
  /** Deletes the pod directly (--disable-eviction): PDBs are not consulted. */
  deletePod(pod: DrainPod, gracePeriodSeconds?: number): Promise<void>;
}

/** Creates host-command pods; 'exists' when a pod of that name is there already (AlreadyExists). */
export interface HostCommands {
  createHostCommandPod(pod: HostCommandPod): Promise<'created' | 'exists'>;
}

/** The lock's Lease. */
export interface LeaseStore {
  getLease(namespace: string, name: string): Promise<LeaseView | undefined>;
  /** When kubelet last announced its start on `node` (its Starting event); undefined when none is recorded. */
  lastKubeletStart?(node: string): Promise<Date | undefined>;
  /** Creates or replaces (at `resourceVersion`) the lease; false when someone else won the race. */
  writeLease(namespace: string, name: string, holder: string, durationSeconds: number, now: Date, resourceVersion?: string): Promise<boolean>;
  deleteLease(namespace: string, name: string, holder: string): Promise<void>;
}

/** Everything the node procedures (migration, rollback) read and change. */
export interface EngineCluster extends NodeStore, PodStore, CiliumStore, DrainCluster, HostCommands {}

/** Everything the adapter over the Kubernetes client offers: the procedures' interfaces and the lease. */
export interface KubeCluster extends EngineCluster, LeaseStore {}
