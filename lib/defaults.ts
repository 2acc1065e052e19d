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
/**
 * A run stops before its next side effect once its last successful renewal is older than the TTL
 * minus this share of it: another run may take the lease at the TTL, judged by its own clock.
 */
export const lockFenceMargin = 0.25;

/** Images of the short-lived pods the engine starts. */
export const verifyImage = 'registry.k8s.io/pause:3.10';
/**
 * The privileged host-command pods (reboot, rollback's CNI restore, finalize's cleanup) run this
 * image, pinned by digest (alpine 3.20.0's multi-platform index) so a moved tag cannot change what
 * runs as root on a node; --host-image replaces it (it needs sh and nsenter).
 */
export const hostCommandImage = 'docker.io/library/alpine:3.20.0@sha256:77726ef6b57ddf65bb551896826ec38bc3e53f75cdde31354fbffb4f25238ebd';
/** The labels of every host-command pod (leftovers are found by them) and the annotation naming its request. */
export const hostPodLabels = { app: 'app.kubernetes.io/name', purpose: `${annotationPrefix}/purpose` } as const;
export const hostPodAppName = 'cilium-migrate-host-command';
export const hostPodRequestAnnotation = `${annotationPrefix}/request`;

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
 * Bounds of the values people type (lib/flag-values.ts refuses anything outside them): large
 * enough for any real cluster, small enough that a typo cannot mean "forever" or "everything".
 */
export const limits = {
  /** Any wait: drain, restarts, gates, rollouts. */
  longestWaitMs: 24 * 3_600_000,
  /** Evictions in flight at once; agent rows read at once. */
  parallelism: 100,
  concurrency: 256,
  /** kubectl's --grace-period and --skip-wait-for-delete-timeout, in seconds. */
  gracePeriodSeconds: 86_400,
  gateRounds: 100,
  minSamples: 10_000,
  /** Nodes migrated at once; nodes in the connectivity grid. */
  maxUnavailable: 10_000,
  maxGrid: 10_000,
  /** The gate and `connectivity --rounds/--watch` never read the matrix more often than this. */
  readIntervalFloorMs: 1000,
  lockTtlMs: [5_000, 3_600_000] as const,
  /** The longest --verbose level that means something. */
  verbosity: 10,
};

/** The largest agent row the plugin reads through the pod proxy (a 1,000-peer row is about 0.6 MiB). */
export const maxRowBytes = 8 * 1024 * 1024;
/** Any other answer the plugin reads whole is refused above this size (a LIST of 10,000 nodes is about 100 MiB). */
export const maxResponseBytes = 256 * 1024 * 1024;

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

/**
 * The in-cluster run (`run --in-cluster`): a Job and its ServiceAccount in the agent namespace,
 * running the plugin from the project's image (the agent's image, which carries both programs; the
 * reference manifests/agent/kustomization.yaml names). One fixed name, so `--attach`, `--cancel`,
 * `status` and `kubectl logs job/cilium-migrate-run` find it without being told.
 */
export const inClusterRun = {
  name: 'cilium-migrate-run',
  image: 'cilium-migrate-agent:0.1.0',
  /** Where the image keeps the plugin's bundle (next to the agent's). */
  pluginPath: '/opt/cilium-migrate/kubectl-cilium_migrate',
  /** Time a run pod gets to stop at a safe point after SIGTERM (its drain, a cancel) before SIGKILL. */
  terminationGraceSeconds: 120,
  /**
   * Failures of the run pod that count (an eviction does not): each retry resumes from the state
   * on the nodes, so a few are worth it; a run that keeps failing needs a person.
   */
  backoffLimit: 6,
  /** On the Job: what the run is doing (JSON, written by the run pod). */
  progressAnnotation: `${annotationPrefix}/progress`,
  /** On the Job: when `--cancel` asked the run to stop. */
  cancelAnnotation: `${annotationPrefix}/cancel-requested`,
  /** The run pod writes its progress at most this often. */
  progressEveryMs: 2000,
  /** The follower reads the Job and its pods this often. */
  pollMs: 2000,
  /** What the run pod learns from its Job through these variables (the downward API). */
  env: { job: 'CILIUM_MIGRATE_RUN_JOB', namespace: 'CILIUM_MIGRATE_RUN_NAMESPACE', pod: 'CILIUM_MIGRATE_RUN_POD', podUid: 'CILIUM_MIGRATE_RUN_POD_UID', node: 'CILIUM_MIGRATE_RUN_NODE' },
} as const;
