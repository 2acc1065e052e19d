// `prepare`: server-side applies the migration's CiliumNodeConfig (in the version the cluster
// serves) and, on request, the probe agent's manifests. Applying again changes nothing.
import { readFile } from 'node:fs/promises';
import { ciliumNamespace, ciliumNodeConfigName, lockTtlSeconds, migrationLabel } from '../lib/defaults.js';
import { flagCoercion, labelKey, namespace, objectName } from '../lib/flag-values.js';
import { ConfigError } from '../lib/errors.js';
import { applyObject, type ApplyOutcome, type ManifestObject } from '../lib/kube.js';
import { defineCommand } from './context.js';
import { ciliumNodeConfig, nodeConfigVersion, parseManifests } from './migration/node-config.js';
import { takeLock } from './node.js';
import { render } from './output.js';
import { newRunId } from '../lib/run-id.js';
import { table } from './table.js';

export interface PrepareResult {
  kind: string;
  name: string;
  apiVersion: string;
  outcome: ApplyOutcome;
}

const key = (o: ManifestObject) => `${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`;

export const prepareCommand = defineCommand({
  command: 'prepare',
  describe: 'Apply (server-side) the CiliumNodeConfig that moves labelled nodes to Cilium and, with --agent-manifests, the probe agent',
  builder: (y) =>
    y
      .option('label-key', { type: 'string', default: migrationLabel, coerce: flagCoercion('label-key', labelKey), describe: 'Label the CiliumNodeConfig selects on (the same as node/run --label-key)' })
      .option('cilium-namespace', { type: 'string', default: ciliumNamespace, coerce: flagCoercion('cilium-namespace', namespace), describe: 'Namespace of Cilium, its CiliumNodeConfig and the lock' })
      .option('name', { type: 'string', default: ciliumNodeConfigName, coerce: flagCoercion('name', objectName), describe: 'Name of the CiliumNodeConfig' })
      .option('agent-manifests', { type: 'string', describe: 'Also apply the probe agent from this YAML file (e.g. kubectl kustomize manifests/agent > agent.yaml)' })
      .option('force-conflicts', { type: 'boolean', default: false, describe: 'Take over fields another field manager owns (as kubectl apply --server-side --force-conflicts)' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'Ask the API server what would change (server-side dry run), change nothing' })
      .example('$0 prepare', 'apply the CiliumNodeConfig of the seed lab')
      .example('$0 prepare --agent-manifests agent.yaml --dry-run', 'what applying the node config and the agent would change'),
  run: async (ctx, args) => {
    // The file is read before the cluster is contacted: a wrong path is the user's input.
    const agentObjects: ManifestObject[] = [];
    if (args['agent-manifests']) {
      let text: string;
      try {
        text = await readFile(args['agent-manifests'], 'utf8');
      } catch (err) {
        throw new ConfigError(`cannot read --agent-manifests ${args['agent-manifests']}: ${(err as Error).message}`);
      }
      agentObjects.push(...parseManifests(text, args['agent-manifests']));
    }
    const kube = ctx.kube();
    const objects: ManifestObject[] = [ciliumNodeConfig({ version: await nodeConfigVersion(kube), name: args.name, namespace: args['cilium-namespace'], labelKey: args['label-key'] }), ...agentObjects];
    // A real apply takes the migration lock, so it never races a run or a finalize.
    const log = (line: string) => ctx.io.err(`${line}\n`);
    const lock = args['dry-run'] ? undefined : await takeLock(kube, { namespace: args['cilium-namespace'], ttlMs: lockTtlSeconds * 1000, runId: newRunId(), log, signal: ctx.signal });
    // Namespaces and CRDs before what lives in them, as kubectl apply does with a directory.
    const first = (o: ManifestObject) => (o.kind === 'Namespace' || o.kind === 'CustomResourceDefinition' ? 0 : 1);
    const results: PrepareResult[] = [];
    try {
      for (const o of [...objects].sort((a, b) => first(a) - first(b))) {
        lock?.check(`applying ${o.kind} ${key(o)}`);
        const outcome = await applyObject(kube, o, { dryRun: args['dry-run'], force: args['force-conflicts'] });
        results.push({ kind: o.kind, name: key(o), apiVersion: o.apiVersion, outcome });
        ctx.io.err(`${o.kind} ${key(o)} ${outcome}\n`);
      }
    } finally {
      await lock?.release().catch(() => log('warning: could not release the migration lock; it expires by itself'));
    }
    ctx.io.out(render(results, ctx.options.output, (rows) => `${table(['KIND', 'NAME', 'API VERSION', 'RESULT'], rows.map((r) => [r.kind, r.name, r.apiVersion, r.outcome]))}\n`));
    if (!args['dry-run']) ctx.io.err(`next: kubectl cilium-migrate plan, then kubectl cilium-migrate run (nodes labelled ${args['label-key']}=true move to Cilium)\n`);
  },
});
