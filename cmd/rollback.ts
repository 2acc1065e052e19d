// `rollback NODE`: returns one node to the legacy CNI (cmd/engine/rollback-node.ts); refuses once
// finalize has begun, since the CiliumNodeConfig or the legacy CNI may be gone by then.
import { duration, flagCoercion, nodeName, positionalCoercion } from '../lib/flag-values.js';
import { PreconditionError } from '../lib/errors.js';
import { serverVersion } from '../lib/kube.js';
import { defineCommand } from './context.js';
import { systemClock } from '../lib/clock.js';
import { kubeEngineCluster } from './cluster/kube-cluster.js';
import { rollbackNode, type RollbackResult } from './engine/rollback-node.js';
import { retryingUnreachable } from './engine/retry.js';
import { ciliumClusterCidrs, readCiliumConfig } from './migration/cilium-config.js';
import { readFinalizeRecord } from './migration/finalize.js';
import { checkEngineFlags, drainOptions, engineFlags, fencedRestarter, killHook, lockedCluster, restarterFor, stopCause, type NodeArgs } from './node.js';
import { render } from './output.js';
import { newRunId } from '../lib/run-id.js';

const flagNames = [
  'label-key', 'cilium-namespace', 'ignore-daemonsets', 'delete-emptydir-data', 'force', 'grace-period', 'drain-timeout', 'skip-wait-for-delete-timeout', 'pod-selector',
  'disable-eviction', 'parallelism', 'restart', 'restart-command', 'restart-timeout', 'agent-restart-timeout', 'host-image', 'verify-namespace', 'verify-image',
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
      .positional('node', { type: 'string', demandOption: true, coerce: positionalCoercion('node', nodeName), describe: 'The node to return to the legacy CNI' })
      .options(rollbackFlags)
      .option('host-command-timeout', { type: 'string', default: '2m', coerce: flagCoercion('host-command-timeout', duration(1000, 3_600_000)), describe: 'How long restoring the CNI config files may take, 1s to 1h' })
      .example('$0 rollback kind-worker', 'a kind node back on Flannel (restarted with docker restart)')
      .example('$0 rollback worker-1 --restart exec --restart-command "ssh {node} sudo systemctl reboot"', 'a node restarted over ssh'),
  run: async (ctx, args) => {
    const a = args as unknown as NodeArgs & { node: string; 'host-command-timeout': number };
    checkEngineFlags({ ...a, 'dry-run': false });
    const drain = drainOptions(a);
    const runId = newRunId();
    const kube = ctx.kube();
    const log = (line: string) => ctx.io.err(`${line}\n`);
    await serverVersion(kube);
    const record = await readFinalizeRecord(kube, a['cilium-namespace']);
    if (record) {
      throw new PreconditionError(`the migration was finalized (${record.phase} since ${record.startedAt}): the CiliumNodeConfig and the legacy CNI may be gone, so a node cannot return to it`, 'to go back now, reinstall the legacy CNI and plan a new migration');
    }
    const clusterCidrs = ciliumClusterCidrs(await readCiliumConfig(kube, a['cilium-namespace']));
    const view = await retryingUnreachable(kubeEngineCluster(kube), systemClock, 60_000, (what) => log(`API server unreachable during ${what}; retrying`), ctx.signal).getNode(a.node);
    const restarter = restarterFor({ ...a, 'dry-run': false }, view, kubeEngineCluster(kube), a['cilium-namespace']);
    const { lock, cluster, signal } = await lockedCluster(kube, { namespace: a['cilium-namespace'], ttlMs: a['lock-ttl'], runId, log, signal: ctx.signal });
    const reporter = { line: (node: string, text: string) => log(`[${node}] ${text}`), status: (node: string, text: string) => log(`[${node}] ${text}`) };
    let result: RollbackResult;
    try {
      result = await rollbackNode(
        cluster,
        a.node,
        {
          runId,
          labelKey: a['label-key'],
          ciliumNamespace: a['cilium-namespace'],
          drain,
          restarter: fencedRestarter(restarter, lock),
          hostImage: a['host-image'],
          verifyNamespace: a['verify-namespace'],
          verifyImage: a['verify-image'],
          ciliumClusterCidrs: clusterCidrs,
          timeoutsMs: { hostCommand: a['host-command-timeout'], agentRestart: a['agent-restart-timeout'], nodeRestart: a['restart-timeout'], verify: a['verify-timeout'] },
          pollMs: 1000,
        },
        systemClock,
        reporter,
        signal,
        killHook(),
      );
    } catch (err) {
      throw stopCause(err, lock, ctx.signal);
    } finally {
      await lock.release().catch(() => log('warning: could not release the migration lock; it expires by itself'));
    }
    ctx.io.out(render(result, ctx.options.output, human));
  },
});
