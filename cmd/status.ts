// `status`: where the migration stands, per node and for the cluster.
import { agentNamespace, ciliumNamespace, migrationLabel } from '../lib/defaults.js';
import { flagCoercion, labelKey, namespace } from '../lib/flag-values.js';
import { defineCommand } from './context.js';
import { clusterStatus, readCluster, type ClusterStatus } from './migration/cluster-view.js';
import { render } from './output.js';
import { table } from './table.js';
import { describeRunStatus, readRunStatus } from './in-cluster/status.js';

function human(s: ClusterStatus, wide: boolean): string {
  const header = ['NODE', 'ROLE', 'PHASE', 'OVERLAY', 'PODS LEGACY', 'PODS CILIUM', 'AGENT', ...(wide ? ['LEGACY CIDR', 'CILIUM CIDR', 'CORDONED'] : [])];
  const rows = s.nodes.map((n) => [
    n.node, n.role, n.phase, n.overlay, String(n.pods.legacy), String(n.pods.cilium), n.agent,
    ...(wide ? [n.legacyCidrs.join(',') || '-', n.ciliumCidrs.join(',') || '-', n.cordoned ? 'yes' : 'no'] : []),
  ]);
  const { nodes, migrated, podsOnLegacy } = s.summary;
  return `${table(header, rows)}\n${migrated} of ${nodes} nodes migrated, ${podsOnLegacy} pod${podsOnLegacy === 1 ? '' : 's'} left on the legacy network\n` + s.notes.map((n) => `note: ${n}\n`).join('');
}

export const statusCommand = defineCommand({
  command: 'status',
  describe: 'Show each node\'s migration phase, overlay, pod CIDRs, pods per overlay and probe agent',
  builder: (y) =>
    y
      .option('label-key', { type: 'string', default: migrationLabel, coerce: flagCoercion('label-key', labelKey), describe: 'Label the CiliumNodeConfig selects on' })
      .option('cilium-namespace', { type: 'string', default: ciliumNamespace, coerce: flagCoercion('cilium-namespace', namespace), describe: 'Namespace of Cilium: its cilium-config names the cluster-pool CIDRs a pod on a node without a CiliumNode is judged by' })
      .option('agent-namespace', { type: 'string', default: agentNamespace, coerce: flagCoercion('agent-namespace', namespace), describe: 'Namespace of the in-cluster run (run --in-cluster), shown below the nodes when there is one' }),
  run: async (ctx, args) => {
    const status = clusterStatus(await readCluster(ctx.kube(), { ciliumNamespace: args['cilium-namespace'] }), args['label-key']);
    const inCluster = await readRunStatus(ctx.kube(), args['agent-namespace']);
    ctx.io.out(render(inCluster ? { ...status, inClusterRun: inCluster } : status, ctx.options.output, (s, wide) => human(s, wide) + (inCluster ? describeRunStatus(inCluster) : '')));
  },
});
