// What the node engine needs from the cluster, as plain data and narrow methods: the real one is
// cmd/engine/kube-cluster.ts; unit tests use in-memory fakes.
import type { DrainCluster } from '../engine/drain.js';
import type { HostCommandRunner } from '../engine/restart.js';

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
  /** The legacy (Kubernetes) pod CIDRs of the node. */
  podCIDRs: string[];
  controlPlane: boolean;
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

export interface EngineCluster extends DrainCluster, HostCommandRunner {
  /** Throws NotFoundError when there is no such node. */
  getNode(name: string): Promise<NodeView>;
  patchNode(name: string, patch: NodePatch): Promise<NodeView>;
  listNodePods(node: string, labelSelector?: string): Promise<PodView[]>;
  /** Pods in `namespace` matching `labelSelector`, on every node (one LIST). */
  listPodsBySelector(namespace: string, labelSelector: string): Promise<PodView[]>;
  deletePodByUid(namespace: string, name: string, uid: string, gracePeriodSeconds?: number): Promise<void>;
  /** The node's Cilium pod CIDRs (CiliumNode spec.ipam.podCIDRs); undefined without a CiliumNode. */
  ciliumPodCidrs(node: string): Promise<string[] | undefined>;
  /** Names of the CiliumNodeConfigs (any served version) whose selector matches `labels`. */
  nodeConfigsSelecting(namespace: string, labels: Record<string, string>): Promise<string[]>;
  /** Starts a short-lived pod pinned to `node` (tolerating everything) for the verify step. */
  createProbePod(namespace: string, name: string, node: string, image: string): Promise<void>;
  getPod(namespace: string, name: string): Promise<PodView | undefined>;
  /** A Kubernetes Event on the Node; failures to record are not fatal. */
  recordEvent(node: NodeView, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void>;
  getLease(namespace: string, name: string): Promise<LeaseView | undefined>;
  /** Creates or replaces (at `resourceVersion`) the lease; false when someone else won the race. */
  writeLease(namespace: string, name: string, holder: string, durationSeconds: number, now: Date, resourceVersion?: string): Promise<boolean>;
  deleteLease(namespace: string, name: string, holder: string): Promise<void>;
}
