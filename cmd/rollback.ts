// `rollback NODE`: returns one node to the legacy CNI (cmd/engine/rollback-node.ts); refuses once
// finalize has begun, since the CiliumNodeConfig or the legacy CNI may be gone by then.
import { randomBytes } from 'node:crypto';
import { hostCommandImage, lockLeaseName } from '../lib/defaults.js';
import { PreconditionError } from '../lib/errors.js';
import { serverVersion } from '../lib/kube.js';
import { defineCommand } from './context.js';
import { systemClock } from './engine/drain.js';
import { kubeEngineCluster } from './engine/kube-cluster.js';
import { acquireLock } from './engine/lock.js';
import { rollbackNode, type RollbackResult } from './engine/rollback-node.js';
import { retryingUnreachable } from './engine/retry.js';
import { ciliumClusterCidrs, readCiliumConfig } from './migration/cilium-config.js';
import { readFinalizeRecord } from './migration/finalize.js';
import { durationOf, engineFlags, engineOptions, killHook, restarterFor, type NodeArgs } from './node.js';
import { render } from './output.js';

const flagNames = [
  'label-key', 'cilium-namespace', 'ignore-daemonsets', 'delete-emptydir-data', 'force', 'grace-period', 'drain-timeout', 'pod-selector',
  'disable-eviction', 'parallelism', 'restart', 'restart-command', 'restart-timeout', 'agent-restart-timeout', 'verify-namespace', 'verify-image',
  'verify-timeout', 'lock-ttl', 'yes',
] as const;
const rollbackFlags = Object.fromEntries(flagNames.map((f) => [f, engineFlags[f]])) as Pick<typeof engineFlags, (typeof flagNames)[number]>;

function human(r: RollbackResult): string {
  const width = Math.max(...r.steps.map((s) => s.step.length));
  return `${r.node}: rolled back to the legacy CNI\n${r.steps.map((s) => `  ${s.step.padEnd(width)}  ${s.outcome.padEnd(11)}  ${s.message}`).join('\n')}\n`;
}

export const rollbackCommand = defineCommand({
  command: 'rollback <node>',
  describe: 'Return one node to the legacy CNI (cordon, drain, unlabel, restore its CNI config, restart, verify, uncordon); refused after finalize',
  builder: (y) =>
    y
      .positional('node', { type: 'string', demandOption: true, describe: 'The node to return to the legacy CNI' })
      .options(rollbackFlags)
      .option('host-image', { type: 'string', default: hostCommandImage, describe: 'Image of the privileged pod that restores the CNI config files (needs sh and nsenter)' })
      .option('host-command-timeout', { type: 'string', default: '2m', describe: 'How long restoring the CNI config files may take' })
      .example('$0 rollback kind-worker', 'a kind node back on Flannel (restarted with docker restart)')
      .example('$0 rollback worker-1 --restart exec --restart-command "ssh {node} sudo systemctl reboot"', 'a node restarted over ssh'),
  run: async (ctx, args) => {
    const a = { ...(args as unknown as NodeArgs), 'gate-rounds': 1, 'gate-interval': '1s', 'gate-timeout': '1s', 'restart-stragglers': false, 'dry-run': false, nodes: [args.node] };
    const runId = `${new Date().toISOString().replace(/[-:]/g, '').slice(0, 15)}-${randomBytes(3).toString('hex')}`;
    const base = engineOptions(a, runId);
    const kube = ctx.kube();
    const log = (line: string) => ctx.io.err(`${line}\n`);
    await serverVersion(kube);
    const record = await readFinalizeRecord(kube, a['cilium-namespace']);
    if (record) {
      throw new PreconditionError(`the migration was finalized (${record.phase} since ${record.startedAt}): the CiliumNodeConfig and the legacy CNI may be gone, so a node cannot return to it`, 'to go back now, reinstall the legacy CNI and plan a new migration');
    }
    const clusterCidrs = ciliumClusterCidrs(await readCiliumConfig(kube, a['cilium-namespace']));
    const cluster = retryingUnreachable(kubeEngineCluster(kube), systemClock, 60_000, (what) => log(`API server unreachable during ${what}; retrying`), ctx.signal);
    const view = await cluster.getNode(args.node);
    const restarter = restarterFor(a, view, cluster, a['cilium-namespace']);
    const lock = await acquireLock(cluster, { namespace: a['cilium-namespace'], name: lockLeaseName, ttlSeconds: durationOf('lock-ttl', a['lock-ttl']) / 1000, runId }, systemClock, log);
    const signal = AbortSignal.any([ctx.signal, lock.lost]);
    const reporter = { line: (node: string, text: string) => log(`[${node}] ${text}`), status: (node: string, text: string) => log(`[${node}] ${text}`) };
    let result: RollbackResult;
    try {
      result = await rollbackNode(
        cluster,
        args.node,
        {
          runId,
          labelKey: base.labelKey,
          ciliumNamespace: base.ciliumNamespace,
          drain: base.drain,
          restarter,
          hostImage: args['host-image'],
          verifyNamespace: base.verifyNamespace,
          verifyImage: base.verifyImage,
          ciliumClusterCidrs: clusterCidrs,
          timeoutsMs: { hostCommand: durationOf('host-command-timeout', args['host-command-timeout']), agentRestart: base.timeoutsMs.agentRestart, nodeRestart: base.timeoutsMs.nodeRestart, verify: base.timeoutsMs.verify },
          pollMs: base.pollMs,
        },
        systemClock,
        reporter,
        signal,
        killHook(),
      );
    } finally {
      await lock.release().catch(() => log('warning: could not release the migration lock; it expires by itself'));
    }
    ctx.io.out(render(result, ctx.options.output, human));
  },
});
