// `finalize`: after the last node. Refuses unless every node is migrated and no pod is left on the
// legacy network, and until Cilium runs with its final values (it writes its own CNI config from
// then on; `--apply` upgrades it through helm). Then, each step recorded first and skipped when
// done: deletes the CiliumNodeConfig, removes the migration's labels and annotations from the
// nodes, deletes exactly the objects the legacy CNI's manifest created (identified by what they
// are, listed first, only with --yes; with the Tigera operator, its Installation) and cleans the
// nodes of what it left (only with --cleanup-nodes) or prints how.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ciliumClusterCidr, ciliumNamespace, ciliumNodeConfigName, ciliumVxlanPort, hostCommandImage, limits, lockTtlSeconds, migrationLabel } from '../lib/defaults.js';
import { cidr, ciliumVersion, dnsLabel, duration, flagCoercion, imageReference, labelKey, namespace, nonEmpty, objectName as objectNameValue, podCidrLimits, port, requireCompanion } from '../lib/flag-values.js';
import { ConfigError, InterruptedError, PreconditionError, UsageError } from '../lib/errors.js';
import { pollUntil } from '../lib/poll.js';
import { call, deleteObject, type Kube } from '../lib/kube.js';
import { defineCommand, type CommandContext } from './context.js';
import { systemClock } from '../lib/clock.js';
import { legacyCleanupHints, legacyCleanupScript, runHostScript } from './engine/host-command.js';
import { kubeEngineCluster } from './cluster/kube-cluster.js';
import { fencedCluster } from './engine/lock.js';
import { finalizedPhase, phaseAnnotation, stateAnnotation } from '../lib/node-state.js';
import { ciliumDaemonSetIn, readCiliumConfig } from './migration/cilium-config.js';
import { readCluster } from './migration/cluster-view.js';
import { ciliumVersionFromImage, finalizeBlockers, readFinalizeRecord, stillInMigrationMode, writeFinalizeRecord } from './migration/finalize.js';
import { valuesYaml } from './migration/helm-values.js';
import { legacyRemoval, objectName, readLegacyInventory, type LegacyObject } from './migration/legacy-cni.js';
import { preferredNodeConfigVersion, servedNodeConfigVersions } from './migration/node-config.js';
import { takeLock } from './node.js';
import { render } from './output.js';
import { newRunId } from '../lib/run-id.js';
import { table } from './table.js';

export interface FinalizeStep {
  step: string;
  outcome: 'applied' | 'done-before' | 'skipped' | 'would-apply';
  message: string;
}

export interface FinalizeResult {
  steps: FinalizeStep[];
  /** The legacy CNI's objects finalize identified: deleted, or to be deleted with --yes. */
  legacyObjects: string[];
  /** What finalize leaves on purpose, and what to do next. */
  notes: string[];
  /** What is left to do by hand on each node. */
  cleanup: string[];
}

const secondReboot =
  'optional, as Cilium\'s migration guide says: reboot every node once more, one at a time (drain it first), so that nothing the legacy CNI set up in memory (routes, rules, links) survives';

function human(r: FinalizeResult, state: 'deleted' | 'to-delete' | 'dry-run' | 'none'): string {
  const heading = { deleted: 'the legacy CNI\'s objects, deleted:', 'to-delete': 'the legacy CNI\'s objects, to delete (rerun with --yes):', 'dry-run': 'the legacy CNI\'s objects finalize would delete (with --yes):', none: '' }[state];
  return `${table(['STEP', 'RESULT', 'DETAIL'], r.steps.map((s) => [s.step, s.outcome, s.message]))}\n` +
    (r.legacyObjects.length && heading ? `\n${heading}\n${r.legacyObjects.map((o) => `  ${o}`).join('\n')}\n` : '') +
    (r.notes.length ? `\n${r.notes.map((n) => `note: ${n}`).join('\n')}\n` : '') +
    (r.cleanup.length ? `\nleft to do on every node (or rerun with --cleanup-nodes --yes):\n${r.cleanup.map((c) => `  ${c}`).join('\n')}\n` : '');
}

export const finalizeCommand = defineCommand({
  command: 'finalize',
  describe: 'After the last node: check nothing is left on the legacy network, then remove the CiliumNodeConfig, the migration labels and (with --yes) the legacy CNI',
  builder: (y) =>
    y
      .option('label-key', { type: 'string', default: migrationLabel, coerce: flagCoercion('label-key', labelKey), describe: 'The migration label to remove from the nodes' })
      .option('cilium-namespace', { type: 'string', default: ciliumNamespace, coerce: flagCoercion('cilium-namespace', namespace), describe: 'Namespace of Cilium, its CiliumNodeConfig and the lock' })
      .option('name', { type: 'string', default: ciliumNodeConfigName, coerce: flagCoercion('name', objectNameValue), describe: 'Name of the CiliumNodeConfig to delete' })
      .option('cilium-version', { type: 'string', coerce: flagCoercion('cilium-version', ciliumVersion), describe: 'Cilium version for the final values (default: the cilium DaemonSet\'s image tag)' })
      .option('cilium-cidr', { type: 'string', default: ciliumClusterCidr, coerce: flagCoercion('cilium-cidr', cidr(podCidrLimits)), describe: 'Cilium\'s cluster-pool CIDR, as in the initial values (cilium-config\'s, when it names one, decides which pods are on Cilium)' })
      .option('tunnel-port', { type: 'string', default: String(ciliumVxlanPort), coerce: flagCoercion('tunnel-port', port), describe: 'Cilium\'s VXLAN port (1-65535), as in the initial values' })
      .option('apply', { type: 'boolean', default: false, describe: 'Upgrade Cilium to the final values with helm (on PATH) and restart its agents first' })
      .option('helm-release', { type: 'string', default: 'cilium', coerce: flagCoercion('helm-release', dnsLabel('a Helm release name', 53)), describe: 'With --apply: the Cilium Helm release' })
      .option('helm-chart', { type: 'string', default: 'cilium/cilium', coerce: flagCoercion('helm-chart', nonEmpty('a chart reference like cilium/cilium')), describe: 'With --apply: the chart to upgrade to' })
      .option('rollout-timeout', { type: 'string', default: '10m', coerce: flagCoercion('rollout-timeout', duration(1000, limits.longestWaitMs)), describe: 'With --apply: how long the Cilium agents may take to restart, 1s to 24h' })
      .option('cleanup-nodes', { type: 'boolean', default: false, describe: 'Remove what the legacy CNI left on every node (links, iptables chains and nftables tables, CNI files) through a privileged pod (needs --yes)' })
      .option('cleanup-timeout', { type: 'string', default: '2m', coerce: flagCoercion('cleanup-timeout', duration(1000, 3_600_000)), describe: 'How long each node\'s cleanup pod may take, 1s to 1h' })
      .option('host-image', { type: 'string', default: hostCommandImage, coerce: flagCoercion('host-image', imageReference), describe: 'With --cleanup-nodes: image of the privileged cleanup pods (needs sh, nsenter, ip, iptables and nft)' })
      .option('yes', { type: 'boolean', default: false, describe: 'Confirm deleting the legacy CNI\'s objects finalize lists (and, with --cleanup-nodes, cleaning the nodes)' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'Check and print what would be done, and which objects would be deleted; change nothing' })
      .example('$0 finalize --dry-run', 'what finalize would check and do, and the objects it would delete')
      .example('$0 finalize --apply --yes', 'upgrade Cilium to its final values, then remove the migration and the legacy CNI'),
  run: async (ctx, args) => {
    requireCompanion(args['cleanup-nodes'] && !args.yes && !args['dry-run'], '--cleanup-nodes (it runs a privileged pod on every node)', '--yes to confirm');
    const ns = args['cilium-namespace'];
    const log = (line: string) => ctx.io.err(`${line}\n`);
    const rolloutTimeoutMs = args['rollout-timeout'];
    const cleanupTimeoutMs = args['cleanup-timeout'];
    const kube = ctx.kube();
    const runId = newRunId();
    // Finalize changes the cluster: it takes the migration lock as every run does, and checks it
    // before each change.
    const lock = args['dry-run'] ? undefined : await takeLock(kube, { namespace: ns, ttlMs: lockTtlSeconds * 1000, runId, log, signal: ctx.signal });
    const fence = (what: string) => lock?.check(what);
    try {

    const daemonSets = (await call(kube, 'list daemonsets', () => kube.apps.listDaemonSetForAllNamespaces())).items;
    let record = await readFinalizeRecord(kube, ns);
    const snap = await readCluster(kube, { ciliumNamespace: ns, ciliumCidrs: [args['cilium-cidr']] });
    const legacy = snap.legacy;
    const steps: FinalizeStep[] = [];

    // The checks hold the door only once: a resumed finalize finds the nodes' migration records
    // already removed by its first run.
    if (record === undefined) {
      const blockers = finalizeBlockers(snap);
      if (blockers.length) {
        throw new PreconditionError(`finalize refused: ${blockers.join('; ')}`, 'finish the migration first (kubectl cilium-migrate run; --restart-stragglers moves pods left behind), then rerun finalize');
      }
      steps.push({ step: 'check', outcome: 'applied', message: `all ${snap.nodes.length} nodes migrated; no pod on the legacy network` });
    } else {
      steps.push({ step: 'check', outcome: 'done-before', message: `finalize began at ${record.startedAt} (${record.phase}); resuming` });
    }

    const ciliumDs = ciliumDaemonSetIn(daemonSets, ns);
    const version = args['cilium-version'] ?? ciliumVersionFromImage(ciliumDs?.spec?.template.spec?.containers.find((c) => c.name === 'cilium-agent')?.image ?? ciliumDs?.spec?.template.spec?.containers[0]?.image);
    const ciliumConfig = await readCiliumConfig(kube, ns);
    if (stillInMigrationMode(ciliumConfig)) {
      if (!version) throw new UsageError('cannot tell the Cilium version from the cilium DaemonSet\'s image', 'pass --cilium-version');
      const legacyTunnelPort = legacy?.tunnels.find((t) => t.port !== undefined)?.port ?? 0;
      const values = valuesYaml({ phase: 'final', ciliumVersion: version, ciliumCidr: args['cilium-cidr'], tunnelPort: args['tunnel-port'], legacyTunnelPort });
      if (args['dry-run']) {
        steps.push({ step: 'final-values', outcome: 'would-apply', message: `Cilium is still in migration mode (custom-cni-conf=true): ${args.apply ? 'would upgrade it with helm' : 'apply the final values first (--apply does it with helm)'}` });
      } else if (!args.apply) {
        ctx.io.out(values);
        throw new PreconditionError(
          'Cilium still runs with the migration\'s values (cilium-config custom-cni-conf=true): it must write its own CNI config before the CiliumNodeConfig and the legacy CNI go',
          `apply the final values printed above: helm upgrade -n ${ns} ${args['helm-release']} ${args['helm-chart']} --version ${version} --reuse-values -f values-final.yaml && kubectl -n ${ns} rollout restart ds/${ciliumDs?.metadata?.name ?? 'cilium'}; or rerun with --apply`,
        );
      } else {
        fence('the helm upgrade');
        await helmUpgrade(ctx, { namespace: ns, release: args['helm-release'], chart: args['helm-chart'], version, values });
        await restartCilium(ctx, kube, ns, ciliumDs?.metadata?.name ?? 'cilium', rolloutTimeoutMs, fence);
        steps.push({ step: 'final-values', outcome: 'applied', message: `helm upgrade ${args['helm-release']} to the final values of Cilium ${version}; cilium agents restarted` });
      }
    } else {
      steps.push({ step: 'final-values', outcome: 'done-before', message: 'Cilium runs with its final values (custom-cni-conf is not true)' });
    }

    // What the legacy CNI's manifest created, identified by what it is; a resumed run deletes what
    // the first one recorded, even once the DaemonSet that identified it is gone.
    const removal = legacy ? legacyRemoval(legacy, await readLegacyInventory(kube, legacy)) : { objects: [], notes: [] };
    const objects: LegacyObject[] = record?.legacyObjects ?? removal.objects;
    const kind = legacy?.kind ?? record?.legacyKind;
    const nftables = legacy?.nftables ?? record?.legacyNftables ?? false;
    const cleanupHints = kind ? legacyCleanupHints(kind, nftables) : [];
    const what = legacy ? `${legacy.kind}${legacy.installation ? ` (Tigera operator Installation ${legacy.installation})` : ''}` : kind ?? 'the legacy CNI';

    if (args['dry-run']) {
      steps.push({ step: 'delete-node-config', outcome: 'would-apply', message: `delete CiliumNodeConfig ${ns}/${args.name}` });
      steps.push({ step: 'unlabel-nodes', outcome: 'would-apply', message: `remove ${args['label-key']} and the ${stateAnnotation} annotation from ${snap.nodes.length} nodes, and set ${phaseAnnotation}=${finalizedPhase}` });
      steps.push(
        objects.length
          ? { step: 'remove-legacy-cni', outcome: args.yes ? 'would-apply' : 'skipped', message: `${args.yes ? 'delete' : 'would need --yes to delete'} ${objects.length} object${objects.length === 1 ? '' : 's'} of ${what} (listed below)` }
          : { step: 'remove-legacy-cni', outcome: 'done-before', message: 'no legacy CNI found' },
      );
      ctx.io.out(render({ steps, legacyObjects: objects.map(objectName), notes: removal.notes, cleanup: cleanupHints }, ctx.options.output, (r) => human(r, 'dry-run')));
      return;
    }

    if (record === undefined) {
      record = { phase: 'finalizing', startedAt: new Date().toISOString(), nodes: snap.nodes.map((n) => n.name), legacyKind: legacy?.kind, legacyNftables: legacy?.nftables };
      fence('recording that finalize began');
      await writeFinalizeRecord(kube, ns, record);
    }

    const served = await servedNodeConfigVersions(kube);
    const cncVersion = preferredNodeConfigVersion(served);
    fence('deleting the CiliumNodeConfig');
    const deleted = cncVersion ? await deleteObject(kube, { apiVersion: `cilium.io/${cncVersion}`, kind: 'CiliumNodeConfig', metadata: { name: args.name, namespace: ns } }) : false;
    steps.push({ step: 'delete-node-config', outcome: deleted ? 'applied' : 'done-before', message: deleted ? `deleted CiliumNodeConfig ${ns}/${args.name}` : `no CiliumNodeConfig ${ns}/${args.name}` });

    const cluster = lock ? fencedCluster(kubeEngineCluster(kube), lock) : kubeEngineCluster(kube);
    let unlabelled = 0;
    for (const n of snap.nodes) {
      if (!(args['label-key'] in n.labels) && n.annotations[phaseAnnotation] === finalizedPhase && !(stateAnnotation in n.annotations)) continue;
      // The phase stays, as "finalized": without the label it is what tells the plugin and the
      // agents that the node's pods belong on Cilium.
      await cluster.patchNode(n.name, { labels: { [args['label-key']]: null }, annotations: { [phaseAnnotation]: finalizedPhase, [stateAnnotation]: null } });
      unlabelled++;
    }
    steps.push({ step: 'unlabel-nodes', outcome: unlabelled ? 'applied' : 'done-before', message: unlabelled ? `removed the migration label and state from ${unlabelled} nodes (their phase is now ${finalizedPhase})` : 'no node carries them' });

    let legacyRemoved = objects.length === 0 || record.phase === 'finalized';
    if (objects.length === 0) {
      steps.push({ step: 'remove-legacy-cni', outcome: 'done-before', message: 'no legacy CNI found' });
    } else if (record.phase === 'finalized') {
      steps.push({ step: 'remove-legacy-cni', outcome: 'done-before', message: `the ${objects.length} objects of ${what} were deleted at ${record.finishedAt ?? 'an earlier run'}` });
    } else if (args.yes) {
      if (!record.legacyObjects) {
        record = { ...record, legacyObjects: objects, legacyKind: kind, legacyNftables: nftables };
        fence('recording the legacy CNI\'s objects');
        await writeFinalizeRecord(kube, ns, record);
      }
      let gone = 0;
      for (const o of objects) {
        log(`deleting ${objectName(o)}`);
        fence(`deleting ${objectName(o)}`);
        if (await deleteObject(kube, { apiVersion: o.apiVersion, kind: o.kind, metadata: { name: o.name, ...(o.namespace ? { namespace: o.namespace } : {}) } })) gone++;
      }
      legacyRemoved = true;
      steps.push({ step: 'remove-legacy-cni', outcome: gone ? 'applied' : 'done-before', message: gone ? `deleted ${gone} object${gone === 1 ? '' : 's'} of ${what} (listed below)` : `the ${objects.length} objects of ${what} are gone already` });
    } else {
      steps.push({ step: 'remove-legacy-cni', outcome: 'skipped', message: `kept ${what}: rerun with --yes to delete the ${objects.length} object${objects.length === 1 ? '' : 's'} listed below` });
    }

    let cleanup = kind && (legacy || record.phase === 'finalizing') ? cleanupHints : [];
    if (args['cleanup-nodes'] && kind) {
      for (const n of snap.nodes) {
        log(`[${n.name}] cleaning up what ${kind} left`);
        await runHostScript(cluster, { namespace: ns, node: n.name, purpose: 'cleanup', request: runId, image: args['host-image'], script: legacyCleanupScript(kind), timeoutMs: cleanupTimeoutMs, pollMs: 1000 }, systemClock, ctx.signal);
      }
      cleanup = [];
      steps.push({ step: 'cleanup-nodes', outcome: 'applied', message: `removed ${kind}'s links, firewall rules (iptables and nftables) and CNI files on ${snap.nodes.length} nodes` });
    }

    if (legacyRemoved && record.phase !== 'finalized') {
      record = { ...record, phase: 'finalized', finishedAt: new Date().toISOString() };
      fence('recording that finalize is done');
      await writeFinalizeRecord(kube, ns, record);
    }
    const notes = [...removal.notes, ...(legacyRemoved && kind ? [secondReboot] : [])];
    ctx.io.out(render({ steps, legacyObjects: objects.map(objectName), notes, cleanup }, ctx.options.output, (r) => human(r, objects.length === 0 ? 'none' : args.yes ? 'deleted' : 'to-delete')));
    log(legacyRemoved ? 'finalized: the cluster runs on Cilium only' : 'finalize is not complete: the legacy CNI still runs; rerun with --yes to remove it');
    } finally {
      await lock?.release().catch(() => log('warning: could not release the migration lock; it expires by itself'));
    }
  },
});

async function helmUpgrade(ctx: CommandContext, o: { namespace: string; release: string; chart: string; version: string; values: string }): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'cilium-migrate-values-'));
  const file = join(dir, 'values-final.yaml');
  try {
    await writeFile(file, o.values);
    const argv = ['upgrade', '--namespace', o.namespace, o.release, o.chart, '--version', o.version, '--reuse-values', '--values', file, '--wait'];
    ctx.io.err(`running: helm ${argv.join(' ')}\n`);
    const code = await new Promise<number>((resolve, reject) => {
      const child = spawn('helm', argv, { stdio: ['ignore', 'inherit', 'inherit'] });
      child.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'ENOENT' ? new ConfigError('--apply needs helm on PATH, and it is not there', 'install helm, or apply the final values yourself (kubectl cilium-migrate values --phase final) and rerun without --apply') : err));
      child.once('exit', (c) => resolve(c ?? 1));
    });
    if (code !== 0) throw new PreconditionError(`helm upgrade failed (exit ${code}); nothing was removed`, 'fix what helm says, then rerun finalize');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function restartCilium(ctx: CommandContext, kube: Kube, namespace: string, name: string, timeoutMs: number, fence: (what: string) => void): Promise<void> {
  fence(`restarting the DaemonSet ${name}`);
  const at = new Date().toISOString();
  await call(kube, `restart daemonset ${namespace}/${name}`, () =>
    kube.apps.patchNamespacedDaemonSet({ namespace, name, body: { spec: { template: { metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': at } } } } } }),
  );
  await pollUntil(async () => {
    const ds = await call(kube, `get daemonset ${namespace}/${name}`, () => kube.apps.readNamespacedDaemonSet({ namespace, name }));
    const s = ds.status;
    const want = s?.desiredNumberScheduled ?? 0;
    if ((ds.metadata?.generation ?? 0) <= (s?.observedGeneration ?? 0) && s?.updatedNumberScheduled === want && s?.numberAvailable === want) return true;
    ctx.io.err(`waiting for the cilium agents to restart: ${s?.updatedNumberScheduled ?? 0} of ${want} updated, ${s?.numberAvailable ?? 0} available\n`);
    return undefined;
  }, {
    clock: systemClock, deadline: systemClock.now() + timeoutMs, intervalMs: 2000, signal: ctx.signal,
    stopped: () => new InterruptedError(`stopped while the cilium agents restarted; nothing was removed`, 'rerun finalize'),
    timedOut: () => new PreconditionError(`the cilium DaemonSet did not finish restarting in ${Math.round(timeoutMs / 1000)}s; nothing was removed`, `check: kubectl -n ${namespace} rollout status ds/${name}; then rerun finalize`),
  });
}
