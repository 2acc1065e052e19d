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
