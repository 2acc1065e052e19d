// `finalize`: after the last node, the migration's scaffolding and the legacy CNI go
// (cmd/engine/finalize.ts: the steps, the checks that hold the door, helm, the node cleanup).
import { ciliumClusterCidr, ciliumNamespace, ciliumNodeConfigName, ciliumVxlanPort, hostCommandImage, limits, migrationLabel } from '../lib/defaults.js';
import { cidr, ciliumVersion, dnsLabel, duration, flagCoercion, imageReference, labelKey, namespace, nonEmpty, objectName, podCidrLimits, port, requireCompanion } from '../lib/flag-values.js';
import { defineCommand } from './context.js';
import { finalize, type FinalizeResult } from './engine/finalize.js';
import { render } from './output.js';
import { table } from './table.js';

export type { FinalizeResult };

function human(r: FinalizeResult, state: 'deleted' | 'to-delete' | 'dry-run' | 'none'): string {
  const heading = { deleted: 'the legacy CNI\'s objects, deleted:', 'to-delete': 'the legacy CNI\'s objects, to delete (rerun with --yes):', 'dry-run': 'the legacy CNI\'s objects finalize would delete (with --yes):', none: '' }[state];
  return `${table(['STEP', 'RESULT', 'DETAIL'], r.steps.map((s) => [s.step, s.outcome, s.message]))}\n` +
    (r.legacyObjects.length && heading ? `\n${heading}\n${r.legacyObjects.map((o) => `  ${o}`).join('\n')}\n` : '') +
    (r.notes.length ? `\n${r.notes.map((n) => `note: ${n}`).join('\n')}\n` : '') +
    (r.cleanup.length ? `\nleft to do on every node (or rerun with --cleanup-nodes --yes):\n${r.cleanup.map((c) => `  ${c}`).join('\n')}\n` : '');
}

export const finalizeCommand = defineCommand({
  command: 'finalize',
  describe: 'After the last node: check nothing is left on the legacy network, then remove the CiliumNodeConfig, the migration labels and (with --yes) the legacy CNI',
  builder: (y) =>
    y
      .option('label-key', { type: 'string', default: migrationLabel, coerce: flagCoercion('label-key', labelKey), describe: 'The migration label to remove from the nodes' })
      .option('cilium-namespace', { type: 'string', default: ciliumNamespace, coerce: flagCoercion('cilium-namespace', namespace), describe: 'Namespace of Cilium, its CiliumNodeConfig and the lock' })
      .option('name', { type: 'string', default: ciliumNodeConfigName, coerce: flagCoercion('name', objectName), describe: 'Name of the CiliumNodeConfig to delete' })
      .option('cilium-version', { type: 'string', coerce: flagCoercion('cilium-version', ciliumVersion), describe: 'Cilium version for the final values (default: the cilium DaemonSet\'s image tag)' })
      .option('cilium-cidr', { type: 'string', coerce: flagCoercion('cilium-cidr', cidr(podCidrLimits)), describe: `Cilium's cluster-pool CIDR for the final values (default: cilium-config's cluster-pool-ipv4-cidr, else ${ciliumClusterCidr}); cilium-config's, when it names one, decides which pods are on Cilium` })
      .option('tunnel-port', { type: 'string', coerce: flagCoercion('tunnel-port', port), describe: `Cilium's VXLAN port (1-65535) for the final values (default: cilium-config's tunnel-port, else ${ciliumVxlanPort})` })
      .option('apply', { type: 'boolean', default: false, describe: 'Upgrade Cilium to the final values with helm (on PATH) and restart its agents first' })
      .option('helm-release', { type: 'string', default: 'cilium', coerce: flagCoercion('helm-release', dnsLabel('a Helm release name', 53)), describe: 'With --apply: the Cilium Helm release' })
      .option('helm-chart', { type: 'string', default: 'cilium/cilium', coerce: flagCoercion('helm-chart', nonEmpty('a chart reference like cilium/cilium')), describe: 'With --apply: the chart to upgrade to' })
      .option('rollout-timeout', { type: 'string', default: '10m', coerce: flagCoercion('rollout-timeout', duration(1000, limits.longestWaitMs)), describe: 'With --apply: how long the Cilium agents may take to restart, 1s to 24h' })
      .option('cleanup-nodes', { type: 'boolean', default: false, describe: 'Remove what the legacy CNI left on every node (links, iptables chains and nftables tables, CNI files) through a privileged pod (needs --yes)' })
      .option('cleanup-timeout', { type: 'string', default: '2m', coerce: flagCoercion('cleanup-timeout', duration(1000, 3_600_000)), describe: 'How long each node\'s cleanup pod may take, 1s to 1h' })
      .option('host-image', { type: 'string', default: hostCommandImage, coerce: flagCoercion('host-image', imageReference), describe: 'With --cleanup-nodes: image of the privileged cleanup pods (needs sh, nsenter, ip, iptables and nft)' })
      .option('yes', { type: 'boolean', default: false, describe: 'Confirm deleting the legacy CNI\'s objects finalize lists (and, with --cleanup-nodes, cleaning the nodes)' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'Print every step and why, and which objects would be deleted; change nothing' })
      .example('$0 finalize --dry-run', 'what finalize would check and do, and the objects it would delete')
      .example('$0 finalize --apply --yes', 'upgrade Cilium to its final values, then remove the migration and the legacy CNI'),
  run: async (ctx, args) => {
    requireCompanion(args['cleanup-nodes'] && !args.yes && !args['dry-run'], '--cleanup-nodes (it runs a privileged pod on every node)', '--yes to confirm');
    const result = await finalize(ctx.kube(), {
      labelKey: args['label-key'],
      ciliumNamespace: args['cilium-namespace'],
      nodeConfigName: args.name,
      ciliumVersion: args['cilium-version'],
      ciliumCidr: args['cilium-cidr'],
      tunnelPort: args['tunnel-port'],
      apply: args.apply,
      helmRelease: args['helm-release'],
      helmChart: args['helm-chart'],
      helmTarget: { kubeconfig: ctx.options.kubeconfig, context: ctx.options.context },
      rolloutTimeoutMs: args['rollout-timeout'],
      cleanupNodes: args['cleanup-nodes'],
      cleanupTimeoutMs: args['cleanup-timeout'],
      hostImage: args['host-image'],
      yes: args.yes,
      dryRun: args['dry-run'],
    }, ctx.io, ctx.signal);
    const listed = result.legacyObjects.length === 0 ? 'none' : args['dry-run'] ? 'dry-run' : args.yes ? 'deleted' : 'to-delete';
    ctx.io.out(render(result, ctx.options.output, (r) => human(r, listed)));
  },
});
