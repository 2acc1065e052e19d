// `run`: migrates every node not migrated yet, in plan order (nodes under way, workers, then the
// control plane), in waves of --max-unavailable (cmd/engine/waves.ts); stops at the first failure
// with that node's state recorded; a rerun resumes with the nodes left.
import { limits } from '../lib/defaults.js';
import { flagCoercion, integer } from '../lib/flag-values.js';
import { defineCommand } from './context.js';
import { migrateRemaining } from './engine/waves.js';
import { engineFlags, nodeRunOptions, type NodeArgs } from './flags/engine.js';
import { render, stepTable } from './output.js';

export const runCommand = defineCommand({
  command: 'run',
  describe: 'Migrate every remaining node in plan order (workers first, control plane last), gated and resumable',
  builder: (y) =>
    y
      .options(engineFlags)
      .option('max-unavailable', { type: 'string', default: '1', coerce: flagCoercion('max-unavailable', integer(1, limits.maxUnavailable)), describe: `Nodes migrated at once: waves of this many, 1-${limits.maxUnavailable} (see plan --max-unavailable); PodDisruptionBudgets still hold` })
      .example('$0 run --max-unavailable 5 --restart exec --restart-command "ssh {node} sudo systemctl reboot"', 'a large cluster, five nodes at a time')
      .example('$0 run --restart exec --restart-command "ssh {node} sudo systemctl reboot"', 'the whole cluster, nodes restarted over ssh')
      .example('$0 run --dry-run', 'every step for every remaining node, changing nothing'),
  run: async (ctx, args) => {
    const results = await migrateRemaining(ctx.kube(), nodeRunOptions(args as unknown as NodeArgs), args['max-unavailable'], ctx.io, ctx.signal);
    ctx.io.out(render(results, ctx.options.output, stepTable));
  },
});
