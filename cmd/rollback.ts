// `rollback NODE`: returns one node to the legacy CNI (cmd/engine/rollback-run.ts); refused once
// finalize has begun, since the CiliumNodeConfig or the legacy CNI may be gone by then.
import { nodeName, positionalCoercion } from '../lib/flag-values.js';
import { defineCommand } from './context.js';
import { rollbackRun } from './engine/rollback-run.js';
import { rollbackFlags, rollbackRunOptions, type RollbackArgs } from './flags/engine.js';
import { render, stepTable } from './output.js';

export const rollbackCommand = defineCommand({
  command: 'rollback <node>',
  describe: 'Return one node to the legacy CNI (cordon, drain, unlabel, restart its Cilium agent, restore its CNI config, restart, verify, uncordon); refused after finalize',
  builder: (y) =>
    y
      .positional('node', { type: 'string', demandOption: true, coerce: positionalCoercion('node', nodeName), describe: 'The node to return to the legacy CNI' })
      .options(rollbackFlags)
      .example('$0 rollback kind-worker', 'a kind node back on Flannel (restarted with docker restart)')
      .example('$0 rollback worker-1 --restart exec --restart-command "ssh {node} sudo systemctl reboot"', 'a node restarted over ssh')
      .example('$0 rollback worker-1 --dry-run', 'every step it would take, and why'),
  run: async (ctx, args) => {
    const result = await rollbackRun(ctx.kube(), rollbackRunOptions(args as unknown as RollbackArgs), ctx.io, ctx.signal);
    ctx.io.out(render(result, ctx.options.output, (r) => stepTable([r])));
  },
});
