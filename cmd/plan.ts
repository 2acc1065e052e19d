// `plan`: the order the nodes will be migrated in, the waves, what each drain evicts and what blocks.
import { defaultDrainFlags } from './cluster/drain-filter.js';
import { ciliumNamespace, limits } from '../lib/defaults.js';
import { flagCoercion, integer, namespace } from '../lib/flag-values.js';
import { defineCommand } from './context.js';
import { migrationPlan, readCluster, type PlannedNode } from './migration/cluster-view.js';
import { render } from './output.js';
import { table } from './table.js';

function human(plan: PlannedNode[], wide: boolean): string {
  if (plan.length === 0) return 'every node is migrated: nothing to plan (next: kubectl cilium-migrate finalize)\n';
  const rows = plan.map((p, i) => [String(i + 1), String(p.wave), p.node, p.role, p.phase, wide ? p.evicts.join(',') || '-' : String(p.evicts.length), p.blockers.length ? p.blockers.join('; ') : '-']);
  const blocked = plan.filter((p) => p.blockers.length).length;
  return `${table(['ORDER', 'WAVE', 'NODE', 'ROLE', 'PHASE', wide ? 'EVICTS' : 'PODS TO EVICT', 'BLOCKERS'], rows)}\n` +
    `${plan.length} node${plan.length === 1 ? '' : 's'} to migrate in ${plan.at(-1)!.wave} wave${plan.at(-1)!.wave === 1 ? '' : 's'}` +
    (blocked ? `; ${blocked} would stop on a blocker now` : '') + '\n';
}

export const planCommand = defineCommand({
  command: 'plan',
  describe: 'Show the migration order (workers first, control plane last), waves, pods each drain evicts, and blockers',
  builder: (y) =>
    y
      .option('max-unavailable', { type: 'string', default: '1', coerce: flagCoercion('max-unavailable', integer(1, limits.maxUnavailable)), describe: `Nodes migrated at once (one wave), 1-${limits.maxUnavailable}` })
      .option('delete-emptydir-data', { type: 'boolean', default: false, describe: 'Plan as if the drain may evict emptyDir pods' })
      .option('force', { type: 'boolean', default: false, describe: 'Plan as if the drain may evict unmanaged pods' })
      .option('cilium-namespace', { type: 'string', default: ciliumNamespace, coerce: flagCoercion('cilium-namespace', namespace), describe: 'Namespace of Cilium (its cilium-config)' }),
  run: async (ctx, args) => {
    const snap = await readCluster(ctx.kube(), { ciliumNamespace: args['cilium-namespace'] });
    const plan = migrationPlan(snap, { ...defaultDrainFlags, deleteEmptyDirData: args['delete-emptydir-data'], force: args.force }, args['max-unavailable'], new Date());
    ctx.io.out(render(plan, ctx.options.output, human));
  },
});
