// `run`: migrates every node not migrated yet, in plan order (nodes under way, workers, then the
// control plane), in waves of --max-unavailable (cmd/engine/waves.ts); stops at the first failure
// with that node's state recorded; a rerun resumes with the nodes left. With --in-cluster the same
// run goes to a Job in the cluster (cmd/in-cluster/).
import { limits } from '../lib/defaults.js';
import { flagCoercion, integer } from '../lib/flag-values.js';
import { defineCommand } from './context.js';
import type { NodeView } from './cluster/cluster.js';
import { migrateRemaining, remainingWaves } from './engine/waves.js';
import { checkEngineFlags, engineFlags, nodeRunOptions, type NodeArgs } from './flags/engine.js';
import { checkInClusterFlags, inClusterCommand, inClusterFlags, runPodContext, type InClusterArgs } from './in-cluster/command.js';
import { refuseStrandedWaves } from './in-cluster/room.js';
import { render, stepTable } from './output.js';

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
    const maxUnavailable = args['max-unavailable'];
    if (ic['in-cluster']) {
      // Before the Job exists: every wave must leave its pod a node to move to.
      if (!ic.attach && !ic.cancel && !ic['dry-run']) {
        const { waves, snap } = await remainingWaves(ctx.kube(), nodeRunOptions(args as unknown as NodeArgs), maxUnavailable);
        refuseStrandedWaves(waves, snap.nodes, maxUnavailable);
      }
      return inClusterCommand(ctx, ic);
    }
    // In a run pod, the run's lines also record its progress on its Job.
    const pod = runPodContext(ctx);
    try {
      const check = pod.inPod ? (waves: string[][], snap: { nodes: NodeView[] }) => refuseStrandedWaves(waves, snap.nodes, maxUnavailable) : undefined;
      const results = await migrateRemaining(ctx.kube(), nodeRunOptions(args as unknown as NodeArgs), maxUnavailable, pod.ctx.io, ctx.signal, check);
      ctx.io.out(render(results, ctx.options.output, stepTable));
      await pod.done();
    } catch (err) {
      await pod.done(err);
      throw err;
    }
  },
});
