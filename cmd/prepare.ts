// `prepare`: server-side applies the migration's CiliumNodeConfig (in the version the cluster
// serves) and, on request, the probe agent's manifests (cmd/engine/prepare.ts). Applying again
// changes nothing.
import { readFile } from 'node:fs/promises';
import { ciliumNamespace, ciliumNodeConfigName, migrationLabel } from '../lib/defaults.js';
import { flagCoercion, labelKey, namespace, objectName } from '../lib/flag-values.js';
import { ConfigError } from '../lib/errors.js';
import type { ManifestObject } from '../lib/kube-objects.js';
import { defineCommand } from './context.js';
import { ciliumNodeConfig, nodeConfigVersion, parseManifests } from './migration/node-config.js';
import { applyObjects } from './engine/prepare.js';
import { render } from './output.js';
import { table } from './table.js';

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
    const results = await applyObjects(kube, objects, { ciliumNamespace: args['cilium-namespace'], dryRun: args['dry-run'], force: args['force-conflicts'] }, (line) => ctx.io.err(`${line}\n`), ctx.signal);
    ctx.io.out(render(results, ctx.options.output, (rows) => `${table(['KIND', 'NAME', 'API VERSION', 'RESULT'], rows.map((r) => [r.kind, r.name, r.apiVersion, r.outcome]))}\n`));
    if (!args['dry-run']) ctx.io.err(`next: kubectl cilium-migrate plan, then kubectl cilium-migrate run (nodes labelled ${args['label-key']}=true move to Cilium)\n`);
  },
});
