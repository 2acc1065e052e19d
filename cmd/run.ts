// `run`: migrates every node not migrated yet, in plan order (nodes under way, workers, then the
// control plane), one after another through the node engine; stops at the first failure with that
// node's state recorded; a rerun resumes with the nodes left.
import { defaultDrainFlags } from './engine/drain-filter.js';
import { defineCommand, type CommandContext } from './context.js';
import { migrationPlan, planWaves, readCluster } from './migration/cluster-view.js';
import { limits } from '../lib/defaults.js';
import { flagCoercion, integer } from '../lib/flag-values.js';
import { checkEngineFlags, engineFlags, runNodes, stepTable, type NodeArgs } from './node.js';
import { render } from './output.js';
import { checkInClusterFlags, inClusterCommand, inClusterFlags, runPodContext, type InClusterArgs } from './in-cluster/command.js';

export const runCommand = defineCommand({
  command: 'run',
  describe: 'Migrate every remaining node in plan order (workers first, control plane last), gated and resumable',
  builder: (y) =>
    y
      .options(engineFlags)
      .options(inClusterFlags)
      .option('max-unavailable', { type: 'string', default: '1', coerce: flagCoercion('max-unavailable', integer(1, limits.maxUnavailable)), describe: `Nodes migrated at once: waves of this many, 1-${limits.maxUnavailable} (see plan --max-unavailable); PodDisruptionBudgets still hold` })
      .example('$0 run --max-unavailable 5 --restart exec --restart-command "ssh {node} sudo systemctl reboot"', 'a large cluster, five nodes at a time')
      .example('$0 run --restart exec --restart-command "ssh {node} sudo systemctl reboot"', 'the whole cluster, nodes restarted over ssh')
      .example('$0 run --dry-run', 'every step for every remaining node, changing nothing')
      .example('$0 run --in-cluster --restart reboot --yes', 'the same run as a Job in the cluster; Ctrl-C detaches, --attach follows it again'),
  run: async (ctx, args) => {
    const ic = args as unknown as InClusterArgs;
    // Every rule between flags before the cluster is read, also for the flags a run pod gets.
    checkInClusterFlags(ic);
    checkEngineFlags(args as unknown as NodeArgs);
    if (ic['in-cluster']) return inClusterCommand(ctx, ic);
    // In a run pod, the run's lines also record its progress on its Job.
    const pod = runPodContext(ctx);
    try {
      await runHere(pod.ctx, args as unknown as RunArgs);
      await pod.done();
    } catch (err) {
      await pod.done(err);
      throw err;
    }
  },
});

type RunArgs = NodeArgs & { 'max-unavailable': number };

async function runHere(ctx: CommandContext, args: RunArgs): Promise<void> {
    const a = args;
    const maxUnavailable = args['max-unavailable'];
    // Every rule between flags before the cluster is read.
    checkEngineFlags(a);
    const plan = migrationPlan(await readCluster(ctx.kube(), { ciliumNamespace: a['cilium-namespace'] }), { ...defaultDrainFlags, ignoreDaemonSets: a['ignore-daemonsets'], deleteEmptyDirData: a['delete-emptydir-data'], force: a.force }, maxUnavailable, new Date());
    if (plan.length === 0) {
      ctx.io.err('every node is migrated: nothing to do (next: kubectl cilium-migrate finalize)\n');
      ctx.io.out(render([], ctx.options.output, () => ''));
      return;
    }
    const waves = planWaves(plan);
    ctx.io.err(`migrating ${plan.length} node${plan.length === 1 ? '' : 's'} in this order: ${plan.map((p) => p.node).join(', ')}` + (maxUnavailable > 1 ? ` (${waves.length} waves of up to ${maxUnavailable})` : '') + '\n');
    const results = await runNodes(ctx, { ...a, nodes: plan.map((p) => p.node) }, waves);
    ctx.io.out(render(results, ctx.options.output, (r) => stepTable(r)));
}
