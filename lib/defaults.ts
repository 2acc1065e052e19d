// Every name, port, CIDR and timeout the plugin and the agent agree on, in one place.

/** Label that makes the CiliumNodeConfig select a node (the seed lab's key). */
export const migrationLabel = 'io.cilium.migration/cilium-default';
/** Prefix of the annotations that record a node's migration state. */
export const annotationPrefix = 'cilium-migrate.io';

/** Legacy (Flannel-style) overlay. */
export const legacyClusterCidr = '10.244.0.0/16';
export const legacyVxlanPort = 8472;
/** Cilium's overlay during the migration. */
export const ciliumClusterCidr = '10.245.0.0/16';
export const ciliumVxlanPort = 8473;

/** Namespace of Cilium and its CiliumNodeConfig. */
export const ciliumNamespace = 'kube-system';
export const ciliumNodeConfigName = 'cilium-default';

/** Namespace of the probe agent DaemonSet. */
export const agentNamespace = 'cilium-migrate';
/** Label selector of the probe agent pods. */
export const agentPodSelector = 'app.kubernetes.io/name=cilium-migrate-agent';
/** The agent's HTTP port (/v1/row), which the plugin reaches through the API server's pod proxy. */
export const agentPort = 8080;
/** Up to this many peers an agent probes every one (full mesh); above, a ring per overlay. */
export const agentFullMeshMax = 50;
/**
 * The share of an agent's probe budget the nodes being migrated may take: a wave of 50 nodes asks
 * every agent for 100 focus cells every 2 s, more than the whole default budget of 50/s; the rest
 * (a ring of up to 5 peers per overlay and the nodes it is the designated prober of, under 20/s)
 * keeps at least 40 %.
 */
export const agentFocusProbeShare = 0.6;

/** Where the Cilium agent pods are and how they are labelled. */
export const ciliumAgentSelector = 'k8s-app=cilium';

/** The lock that keeps two runs from acting at once. */
export const lockLeaseName = 'cilium-migrate';
export const lockTtlSeconds = 60;

/** Images of the short-lived pods the engine starts. */
export const verifyImage = 'registry.k8s.io/pause:3.10';
export const hostCommandImage = 'docker.io/library/alpine:3.20';

/** Engine timeouts and gate pacing (flags override each). */
export const defaultTimeouts = {
  drainSeconds: 600,
  agentRestartSeconds: 300,
  nodeRestartSeconds: 600,
  verifySeconds: 120,
  gateSeconds: 300,
};
export const defaultGate = { rounds: 2, intervalSeconds: 10 };

/**
 * Reading the matrix and judging it (DESIGN.md "Gate semantics"); flags override each. A cell passes
 * at `successThreshold` or better; a cell of the focus node needs `minSamples` samples taken since
 * the step started; `lookbackSeconds` is how far back `connectivity` looks without a step.
 */
export const defaultConnectivity = {
  minSamples: 3,
  successThreshold: 0.95,
  lookbackSeconds: 30,
  /** Proxy GETs in flight at once, and each one's limit. */
  concurrency: 32,
  requestTimeoutSeconds: 5,
  /** A row generated longer ago than this (a cache, a frozen agent) is not evidence. */
  staleRowSeconds: 30,
  /** Above this many nodes the terminal shows the summary and failing cells, not the grid. */
  maxGridNodes: 40,
};
