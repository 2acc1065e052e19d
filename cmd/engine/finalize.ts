// `finalize`, after the last node, as a list of steps the runner runs: check (every node migrated,
// no pod left on the legacy network), final-values (Cilium must run with its final values: it
// writes its own CNI config from then on; --apply upgrades it through helm and restarts its
// agents), delete-node-config, unlabel-nodes (the migration's labels and records go, the phase
// stays as `finalized`), remove-legacy-cni (exactly the objects the legacy CNI's manifest created,
// identified by what they are, only with --yes; with the Tigera operator, its Installation) and,
// with --cleanup-nodes, cleanup-nodes (what the legacy CNI left on each node). The record is the
// finalize ConfigMap (cmd/migration/finalize.ts): a step's intent goes there before it acts, so a
// rerun resumes, and rollback refuses from the first change on.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../../lib/clock.js';
import { ciliumClusterCidr, ciliumVxlanPort, lockTtlSeconds } from '../../lib/defaults.js';
import { ConfigError, InterruptedError, PreconditionError, UsageError } from '../../lib/errors.js';
import { call, mergePatch, type Kube } from '../../lib/kube.js';
import { deleteObject } from '../../lib/kube-objects.js';
import { finalizedPhase, phaseAnnotation, stateAnnotation } from '../../lib/node-state.js';
import { pollUntil } from '../../lib/poll.js';
import { ciliumTunnel } from '../../lib/tunnel.js';
import { newRunId } from '../../lib/run-id.js';
import type { KubeCluster } from '../cluster/cluster.js';
import type { Io } from '../context.js';
import { ciliumClusterCidrs, ciliumDaemonSetIn, readCiliumConfig } from '../migration/cilium-config.js';
import { readCluster, type ClusterSnapshot } from '../migration/cluster-view.js';
import { ciliumVersionFromImage, finalizeBlockers, readFinalizeRecord, stillInMigrationMode, writeFinalizeRecord, type FinalizeRecord } from '../migration/finalize.js';
import { valuesYaml } from '../migration/helm-values.js';
import type { LegacyKind, LegacyObject } from '../migration/legacy-cni.js';
import { legacyRemoval, objectName, readLegacyInventory } from '../migration/legacy-removal.js';
import { preferredNodeConfigVersion, servedNodeConfigVersions } from '../migration/node-config.js';
import { legacyCleanupHints, legacyCleanupScript, runHostScript } from './host-command.js';
import { describeSteps, Journal, runSteps, type Outcome, type Step, type StepResult } from './runner.js';
import { killHook, patientCluster, underLock } from './session.js';

export interface FinalizeOptions {
  labelKey: string;
  ciliumNamespace: string;
  /** The CiliumNodeConfig to delete. */
  nodeConfigName: string;
  /** For the final values; default: the cilium DaemonSet's image tag. */
  ciliumVersion?: string | undefined;
  /** Cilium's cluster-pool CIDR and tunnel port for the final values; default: cilium-config's (finalOverlay). */
  ciliumCidr?: string | undefined;
  tunnelPort?: number | undefined;
  /** Upgrade Cilium to its final values with helm and restart its agents. */
  apply: boolean;
  helmRelease: string;
  helmChart: string;
  /** The plugin's --kubeconfig and --context, passed on to helm so that it upgrades the same cluster. */
  helmTarget?: { kubeconfig?: string | undefined; context?: string | undefined } | undefined;
  rolloutTimeoutMs: number;
  cleanupNodes: boolean;
  cleanupTimeoutMs: number;
  hostImage: string;
  /** Delete the legacy CNI's objects (and, with cleanupNodes, clean the nodes). */
  yes: boolean;
  dryRun: boolean;
}

export interface FinalizeResult {
  steps: StepResult[];
  /** The legacy CNI's objects finalize identified: deleted, or to be deleted with --yes. */
  legacyObjects: string[];
  /** What finalize leaves on purpose, and what to do next. */
  notes: string[];
  /** What is left to do by hand on each node. */
  cleanup: string[];
}

const secondReboot =
  'optional, as Cilium\'s migration guide says: reboot every node once more, one at a time (drain it first), so that nothing the legacy CNI set up in memory (routes, rules, links) survives';

/** What finalize found when it started, and what its steps work with. */
interface FinalizeRun {
  opts: FinalizeOptions;
  kube: Kube;
  io: Io;
  signal: AbortSignal;
  runId: string;
  snap: ClusterSnapshot;
  /** The record as it stands. */
  record(): FinalizeRecord | undefined;
  /** The Cilium version of the final values, when it can be told. */
  version: string | undefined;
  ciliumDaemonSet: string;
  migrationMode: boolean;
  /** What the final values write (finalOverlay). */
  overlay: { ciliumCidr: string; tunnelPort: number };
  objects: LegacyObject[];
  kind: LegacyKind | undefined;
  nftables: boolean;
  /** The legacy CNI, for messages. */
  what: string;
  /** The cluster, every change fenced by the lock. */
  cluster: KubeCluster;
  /** Throws unless the lock is still ours for sure; before every change made outside `cluster`. */
  fence(what: string): void;
  /** Writes the record now (the legacy objects, before the first is deleted). */
  keep(fields: Partial<FinalizeRecord>): Promise<void>;
}

const checkStep: Step<FinalizeRun> = {
  name: 'check',
  readOnly: true,
  describe: () => ({ outcome: 'would-apply', message: 'check every node is migrated and no pod is on the legacy network' }),
  isDone: () => undefined,
  // The check holds the door only once: a resumed finalize finds the nodes' records already removed by its first run.
  async apply(run) {
    const began = run.record();
    if (began) return { outcome: 'done-before', message: `finalize began at ${began.startedAt} (${began.phase}); resuming` };
    const blockers = finalizeBlockers(run.snap);
    if (blockers.length) {
      throw new PreconditionError(`finalize refused: ${blockers.join('; ')}`, 'finish the migration first (kubectl cilium-migrate run; --restart-stragglers moves pods left behind), then rerun finalize');
    }
    return { outcome: 'applied', message: `all ${run.snap.nodes.length} nodes migrated; no pod on the legacy network` };
  },
};

/**
 * The cluster pool and tunnel port the final values write: the flags when given, else what Cilium
 * runs with now (cilium-config's cluster-pool-ipv4-cidr and tunnel-port), else the seed's. The
 * upgrade reuses the release's values and these override them: defaulting to the seed's would move a
 * cluster installed with others to 10.245.0.0/16 and UDP 8473.
 */
export function finalOverlay(opts: Pick<FinalizeOptions, 'ciliumCidr' | 'tunnelPort'>, config: Record<string, string> | undefined): { ciliumCidr: string; tunnelPort: number } {
  const configuredCidr = ciliumClusterCidrs(config).find((c) => !c.includes(':'));
  const configuredPort = config && ciliumTunnel(config).port;
  return { ciliumCidr: opts.ciliumCidr ?? configuredCidr ?? ciliumClusterCidr, tunnelPort: opts.tunnelPort ?? configuredPort ?? ciliumVxlanPort };
}

function finalValues(run: FinalizeRun): string {
  if (!run.version) throw new UsageError('cannot tell the Cilium version from the cilium DaemonSet\'s image', 'pass --cilium-version');
  const legacyTunnelPort = run.snap.legacy?.tunnels.find((t) => t.port !== undefined)?.port ?? 0;
  return valuesYaml({ phase: 'final', ciliumVersion: run.version, ...run.overlay, legacyTunnelPort });
}

const finalValuesDone = (run: FinalizeRun): Outcome | undefined => (run.migrationMode ? undefined : { outcome: 'done-before', message: 'Cilium runs with its final values (custom-cni-conf is not true)' });

const finalValuesStep: Step<FinalizeRun> = {
  name: 'final-values',
  describe(run) {
    const done = finalValuesDone(run);
    if (done) return done;
    finalValues(run);
    return { outcome: 'would-apply', message: `Cilium is still in migration mode (custom-cni-conf=true): ${run.opts.apply ? 'would upgrade it with helm' : 'apply the final values first (--apply does it with helm)'}` };
  },
  isDone: finalValuesDone,
  // Without --apply, the person applies the final values: printed, and nothing is recorded.
  refuse(run) {
    const values = finalValues(run);
    if (run.opts.apply) return;
    run.io.out(values);
    const { ciliumNamespace: ns, helmRelease, helmChart } = run.opts;
    throw new PreconditionError(
      'Cilium still runs with the migration\'s values (cilium-config custom-cni-conf=true): it must write its own CNI config before the CiliumNodeConfig and the legacy CNI go',
      `apply the final values printed above: helm upgrade -n ${ns} ${helmRelease} ${helmChart} --version ${run.version} --reuse-values -f values-final.yaml && kubectl -n ${ns} rollout restart ds/${run.ciliumDaemonSet}; or rerun with --apply`,
    );
  },
  async apply(run) {
    run.fence('the helm upgrade');
    await helmUpgrade(run, finalValues(run));
    await restartCilium(run);
    return { outcome: 'applied', message: `helm upgrade ${run.opts.helmRelease} to the final values of Cilium ${run.version}; cilium agents restarted` };
  },
};

const deleteNodeConfigStep: Step<FinalizeRun> = {
  name: 'delete-node-config',
  describe: (run) => ({ outcome: 'would-apply', message: `delete CiliumNodeConfig ${run.opts.ciliumNamespace}/${run.opts.nodeConfigName}` }),
  isDone: () => undefined,
  async apply(run) {
    const where = `${run.opts.ciliumNamespace}/${run.opts.nodeConfigName}`;
    const version = preferredNodeConfigVersion(await servedNodeConfigVersions(run.kube));
    run.fence('deleting the CiliumNodeConfig');
    const deleted = version ? await deleteObject(run.kube, { apiVersion: `cilium.io/${version}`, kind: 'CiliumNodeConfig', metadata: { name: run.opts.nodeConfigName, namespace: run.opts.ciliumNamespace } }) : false;
    return deleted ? { outcome: 'applied', message: `deleted CiliumNodeConfig ${where}` } : { outcome: 'done-before', message: `no CiliumNodeConfig ${where}` };
  },
};

const unlabelNodesStep: Step<FinalizeRun> = {
  name: 'unlabel-nodes',
  describe: (run) => ({ outcome: 'would-apply', message: `remove ${run.opts.labelKey} and the ${stateAnnotation} annotation from ${run.snap.nodes.length} nodes, and set ${phaseAnnotation}=${finalizedPhase}` }),
  isDone: () => undefined,
  async apply(run) {
    let unlabelled = 0;
    for (const n of run.snap.nodes) {
      if (!(run.opts.labelKey in n.labels) && n.annotations[phaseAnnotation] === finalizedPhase && !(stateAnnotation in n.annotations)) continue;
      // The phase stays, as "finalized": without the label it is what tells the plugin and the
      // agents that the node's pods belong on Cilium.
      await run.cluster.patchNode(n.name, { labels: { [run.opts.labelKey]: null }, annotations: { [phaseAnnotation]: finalizedPhase, [stateAnnotation]: null } });
      unlabelled++;
    }
    return unlabelled
      ? { outcome: 'applied', message: `removed the migration label and state from ${unlabelled} nodes (their phase is now ${finalizedPhase})` }
      : { outcome: 'done-before', message: 'no node carries them' };
  },
};

const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;

/** Nothing to do now: no legacy CNI, its objects deleted already, or (without --yes) left for a later run. */
function legacyRemovalDone(run: FinalizeRun): Outcome | undefined {
  if (run.objects.length === 0) return { outcome: 'done-before', message: 'no legacy CNI found' };
  const record = run.record();
  if (record?.phase === 'finalized') return { outcome: 'done-before', message: `the ${run.objects.length} objects of ${run.what} were deleted at ${record.finishedAt ?? 'an earlier run'}` };
  if (!run.opts.yes) return { outcome: 'skipped', message: `kept ${run.what}: rerun with --yes to delete the ${plural(run.objects.length, 'object')} listed below` };
  return undefined;
}

const removeLegacyStep: Step<FinalizeRun> = {
  name: 'remove-legacy-cni',
  describe(run) {
    const done = legacyRemovalDone(run);
    if (done?.outcome === 'skipped') return { outcome: 'skipped', message: `would need --yes to delete ${plural(run.objects.length, 'object')} of ${run.what} (listed below)` };
    return done ?? { outcome: 'would-apply', message: `delete ${plural(run.objects.length, 'object')} of ${run.what} (listed below)` };
  },
  isDone: legacyRemovalDone,
  async apply(run) {
    // Recorded before the first is deleted: a rerun deletes the rest, even once the DaemonSet that identified them is gone.
    if (!run.record()?.legacyObjects) await run.keep({ legacyObjects: run.objects, legacyKind: run.kind, legacyNftables: run.nftables });
    let gone = 0;
    for (const o of run.objects) {
      run.io.err(`deleting ${objectName(o)}\n`);
      run.fence(`deleting ${objectName(o)}`);
      if (await deleteObject(run.kube, { apiVersion: o.apiVersion, kind: o.kind, metadata: { name: o.name, ...(o.namespace ? { namespace: o.namespace } : {}) } })) gone++;
    }
    return gone
      ? { outcome: 'applied', message: `deleted ${plural(gone, 'object')} of ${run.what} (listed below)` }
      : { outcome: 'done-before', message: `the ${run.objects.length} objects of ${run.what} are gone already` };
  },
};

function cleanupNodesStep(kind: LegacyKind): Step<FinalizeRun> {
  return {
    name: 'cleanup-nodes',
    describe: (run) => ({ outcome: 'would-apply', message: `run a privileged pod of ${run.opts.hostImage} on each of ${run.snap.nodes.length} nodes that removes ${kind}'s links, firewall rules (iptables and nftables) and CNI files` }),
    isDone: () => undefined,
    async apply(run) {
      for (const n of run.snap.nodes) {
        run.io.err(`[${n.name}] cleaning up what ${kind} left\n`);
        await runHostScript(run.cluster, { namespace: run.opts.ciliumNamespace, node: n.name, purpose: 'cleanup', request: run.runId, image: run.opts.hostImage, script: legacyCleanupScript(kind), timeoutMs: run.opts.cleanupTimeoutMs, pollMs: 1000 }, systemClock, run.signal);
      }
      return { outcome: 'applied', message: `removed ${kind}'s links, firewall rules (iptables and nftables) and CNI files on ${run.snap.nodes.length} nodes` };
    },
  };
}

/** The steps of finalize: the node cleanup only when asked for, and only when the legacy CNI is known. */
export function finalizeSteps(opts: Pick<FinalizeOptions, 'cleanupNodes'>, kind: LegacyKind | undefined): Step<FinalizeRun>[] {
  return [checkStep, finalValuesStep, deleteNodeConfigStep, unlabelNodesStep, removeLegacyStep, ...(opts.cleanupNodes && kind ? [cleanupNodesStep(kind)] : [])];
}

/** Runs finalize (or, with dryRun, describes it); throws a typed error when it may not go on. */
export async function finalize(kube: Kube, opts: FinalizeOptions, io: Io, userSignal: AbortSignal): Promise<FinalizeResult> {
  const runId = newRunId();
  const log = (line: string) => io.err(`${line}\n`);
  const ns = opts.ciliumNamespace;
  const boundary = killHook();
  const look = async (cluster: KubeCluster, fence: (what: string) => void, signal: AbortSignal) => {
    const daemonSets = (await call(kube, 'list daemonsets', () => kube.apps.listDaemonSetForAllNamespaces())).items;
    const existing = await readFinalizeRecord(kube, ns);
    const config = await readCiliumConfig(kube, ns);
    const overlay = finalOverlay(opts, config);
    const snap = await readCluster(kube, { ciliumNamespace: ns, ciliumCidrs: [overlay.ciliumCidr] });
    const ciliumDs = ciliumDaemonSetIn(daemonSets, ns);
    const legacy = snap.legacy;
    // What the legacy CNI's manifest created, identified by what it is; a resumed run deletes what
    // the first one recorded, even once the DaemonSet that identified it is gone.
    const removal = legacy ? legacyRemoval(legacy, await readLegacyInventory(kube, legacy)) : { objects: [], notes: [] };
    const kind = legacy?.kind ?? existing?.legacyKind;
    const record = existing ?? { phase: 'finalizing', startedAt: new Date().toISOString(), nodes: snap.nodes.map((n) => n.name), legacyKind: legacy?.kind, legacyNftables: legacy?.nftables, steps: {} };
    const journal = new Journal<FinalizeRecord & { steps: NonNullable<FinalizeRecord['steps']> }>(
      { ...record, steps: record.steps ?? {} },
      async (r) => {
        fence('recording finalize\'s progress');
        await writeFinalizeRecord(kube, ns, r);
        began = true;
      },
      systemClock,
      (step, at) => boundary('finalize', step, at),
    );
    let began = existing !== undefined;
    const run: FinalizeRun = {
      opts, kube, io, signal, runId, snap, cluster, fence,
      record: () => (began ? journal.record : undefined),
      version: opts.ciliumVersion ?? ciliumVersionFromImage(ciliumDs?.spec?.template.spec?.containers.find((c) => c.name === 'cilium-agent')?.image ?? ciliumDs?.spec?.template.spec?.containers[0]?.image),
      ciliumDaemonSet: ciliumDs?.metadata?.name ?? 'cilium',
      migrationMode: stillInMigrationMode(config),
      overlay,
      objects: existing?.legacyObjects ?? removal.objects,
      kind,
      nftables: legacy?.nftables ?? existing?.legacyNftables ?? false,
      what: legacy ? `${legacy.kind}${legacy.installation ? ` (Tigera operator Installation ${legacy.installation})` : ''}` : kind ?? 'the legacy CNI',
      keep: async (fields) => {
        journal.note(fields);
        await journal.save();
      },
    };
    return { run, journal, removal, steps: finalizeSteps(opts, kind), legacyKnown: legacy !== undefined };
  };
  const report = { line: (_subject: string, text: string) => log(text), status: (_subject: string, text: string) => log(text) };
  const result = (run: FinalizeRun, steps: StepResult[], notes: string[], cleanup: string[]): FinalizeResult => ({ steps, legacyObjects: run.objects.map(objectName), notes, cleanup });

  if (opts.dryRun) {
    const { run, removal, steps } = await look(patientCluster(kube, log, userSignal), () => {}, userSignal);
    const described = await describeSteps(steps, { subject: 'finalize', done: (step) => Boolean(run.record()?.steps?.[step]?.done), observe: async () => run, report });
    return result(run, described, removal.notes, run.kind ? legacyCleanupHints(run.kind, run.nftables) : []);
  }

  // Finalize changes the cluster: it takes the migration lock as every run does, and checks it before each change.
  return underLock(kube, { namespace: ns, ttlMs: lockTtlSeconds * 1000, runId, log, signal: userSignal }, async ({ lock, cluster, signal }) => {
    const { run, journal, removal, steps, legacyKnown } = await look(cluster, (what) => lock.check(what), signal);
    const results = await runSteps(steps, {
      subject: 'finalize', journal, observe: async () => run, report, clock: systemClock, signal,
      stopped: (step) => new InterruptedError(`finalize stopped before ${step}; its progress is recorded`, 'rerun finalize to resume'),
    });
    const removed = results.find((s) => s.step === 'remove-legacy-cni')!.outcome !== 'skipped';
    if (removed && journal.record.phase !== 'finalized') {
      journal.note({ phase: 'finalized', finishedAt: new Date().toISOString() });
      await journal.save();
    } else {
      await journal.flush();
    }
    const cleaned = results.some((s) => s.step === 'cleanup-nodes');
    const cleanup = run.kind && !cleaned && (legacyKnown || journal.record.phase === 'finalizing') ? legacyCleanupHints(run.kind, run.nftables) : [];
    log(removed ? 'finalized: the cluster runs on Cilium only' : 'finalize is not complete: the legacy CNI still runs; rerun with --yes to remove it');
    return result(run, results, [...removal.notes, ...(removed && run.kind ? [secondReboot] : [])], cleanup);
  });
}

/**
 * helm's arguments for the upgrade to the final values. helm reads KUBECONFIG and its own current
 * context unless told: the plugin's --kubeconfig and --context go with it, or helm would upgrade
 * whatever cluster the environment names while the plugin checks and changes another.
 */
export function helmUpgradeArgs(opts: Pick<FinalizeOptions, 'ciliumNamespace' | 'helmRelease' | 'helmChart' | 'helmTarget'>, version: string, valuesFile: string): string[] {
  return [
    'upgrade', '--namespace', opts.ciliumNamespace, opts.helmRelease, opts.helmChart, '--version', version, '--reuse-values', '--values', valuesFile, '--wait',
    ...(opts.helmTarget?.kubeconfig ? ['--kubeconfig', opts.helmTarget.kubeconfig] : []),
    ...(opts.helmTarget?.context ? ['--kube-context', opts.helmTarget.context] : []),
  ];
}

async function helmUpgrade(run: FinalizeRun, values: string): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'cilium-migrate-values-'));
  const file = join(dir, 'values-final.yaml');
  try {
    await writeFile(file, values);
    const argv = helmUpgradeArgs(run.opts, run.version!, file);
    run.io.err(`running: helm ${argv.join(' ')}\n`);
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

/**
 * `kubectl rollout restart daemonset`: the restartedAt annotation of its pod template, as a merge
 * patch (client-node's default, a JSON patch, takes a list of operations: the API server refuses
 * this object with 400).
 */
export async function requestDaemonSetRestart(kube: Pick<Kube, 'apps' | 'server'>, namespace: string, name: string, at: Date): Promise<void> {
  await call(kube, `restart daemonset ${namespace}/${name}`, () =>
    kube.apps.patchNamespacedDaemonSet({ namespace, name, body: { spec: { template: { metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': at.toISOString() } } } } } }, mergePatch),
  );
}

async function restartCilium(run: FinalizeRun): Promise<void> {
  const { kube } = run;
  const namespace = run.opts.ciliumNamespace;
  const name = run.ciliumDaemonSet;
  run.fence(`restarting the DaemonSet ${name}`);
  await requestDaemonSetRestart(kube, namespace, name, new Date());
  await pollUntil(async () => {
    const ds = await call(kube, `get daemonset ${namespace}/${name}`, () => kube.apps.readNamespacedDaemonSet({ namespace, name }));
    const s = ds.status;
    const want = s?.desiredNumberScheduled ?? 0;
    if ((ds.metadata?.generation ?? 0) <= (s?.observedGeneration ?? 0) && s?.updatedNumberScheduled === want && s?.numberAvailable === want) return true;
    run.io.err(`waiting for the cilium agents to restart: ${s?.updatedNumberScheduled ?? 0} of ${want} updated, ${s?.numberAvailable ?? 0} available\n`);
    return undefined;
  }, {
    clock: systemClock, deadline: systemClock.now() + run.opts.rolloutTimeoutMs, intervalMs: 2000, signal: run.signal,
    stopped: () => new InterruptedError('stopped while the cilium agents restarted; nothing was removed', 'rerun finalize'),
    timedOut: () => new PreconditionError(`the cilium DaemonSet did not finish restarting in ${Math.round(run.opts.rolloutTimeoutMs / 1000)}s; nothing was removed`, `check: kubectl -n ${namespace} rollout status ds/${name}; then rerun finalize`),
  });
}
