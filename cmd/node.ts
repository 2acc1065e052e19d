// `node NODE...`: migrates the named nodes one after another (cmd/engine/waves.ts).
import { listCoercion, nodeName } from '../lib/flag-values.js';
import { defineCommand } from './context.js';
import { migrateNodes } from './engine/waves.js';
import { engineFlags, nodeRunOptions, type NodeArgs } from './flags/engine.js';
import { render, stepTable } from './output.js';

export const nodeCommand = defineCommand({
  command: 'node <nodes..>',
  describe: 'Migrate the named nodes to Cilium, one after another (cordon, drain, label, restart, verify, gate, uncordon)',
  builder: (y) =>
    y
      .positional('nodes', { type: 'string', array: true, demandOption: true, coerce: listCoercion('node', nodeName), describe: 'Node names, migrated in the order given' })
      .options(engineFlags)
      .example('$0 node kind-worker', 'migrate one kind node (restarted with docker restart)')
      .example('$0 node worker-1 worker-2 --restart exec --restart-command "ssh {node} sudo systemctl reboot"', 'two nodes, restarted over ssh')
      .example('$0 node worker-1 --dry-run', 'show what would happen'),
  run: async (ctx, args) => {
    const a = args as unknown as NodeArgs;
    const results = await migrateNodes(ctx.kube(), nodeRunOptions(a), [...new Set(a.nodes)].map((n) => [n]), ctx.io, ctx.signal);
    ctx.io.out(render(results, ctx.options.output, stepTable));
  },
});
