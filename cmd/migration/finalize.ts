// finalize's judgement (pure) and the cluster-wide record of it. The record is a ConfigMap in the
// Cilium namespace: written with "finalizing" before finalize changes anything, "finalized" after,
// so a rerun resumes, and rollback refuses once the migration's scaffolding started to go.
import { annotationPrefix } from '../../lib/defaults.js';
import { call, statusCode, type Kube } from '../../lib/kube.js';
import { applyObject } from '../../lib/kube-objects.js';
import { legacyOutsidePools, podOverlay, type ClusterSnapshot } from './cluster-view.js';
import { nodePhase, type StepRecord } from '../../lib/node-state.js';
import type { LegacyKind, LegacyObject } from './legacy-cni.js';

export const finalizeRecordName = 'cilium-migrate-finalize';

export interface FinalizeRecord {
  phase: 'finalizing' | 'finalized';
  startedAt: string;
  finishedAt?: string;
  /** The nodes found migrated when finalize began. */
  nodes: string[];
  /** The legacy CNI found when finalize began (what the node cleanup is for). */
  legacyKind?: LegacyKind | undefined;
  legacyNftables?: boolean | undefined;
  /** The legacy CNI's objects, recorded before the first is deleted, so a rerun deletes the rest. */
  legacyObjects?: LegacyObject[] | undefined;
  /** Each step's intent and result (records of earlier versions have none: their steps are judged by what the cluster shows). */
  steps?: Partial<Record<string, StepRecord>> | undefined;
}

/** Why finalize may not start: nodes not migrated, pods still on the legacy network (anything outside Cilium's CIDRs, lib/overlay.ts). Pure. */
export function finalizeBlockers(snap: ClusterSnapshot): string[] {
  const blockers: string[] = [];
  const notMigrated = snap.nodes.filter((n) => nodePhase(n.annotations) !== 'migrated').map((n) => `${n.name} (${nodePhase(n.annotations)})`);
  if (notMigrated.length) blockers.push(`not migrated: ${notMigrated.join(', ')}`);
  const legacyPods = snap.pods.filter((p) => !p.hostNetwork && p.ip && podOverlay(snap, p.node, p.ip) === 'legacy');
  if (legacyPods.length) {
    const shown = legacyPods.slice(0, 10).map((p) => `${p.namespace}/${p.name} (${p.ip} on ${p.node})`);
    blockers.push(`${legacyPods.length} pod${legacyPods.length === 1 ? '' : 's'} still on the legacy network: ${shown.join(', ')}${legacyPods.length > 10 ? ', ...' : ''}`);
    const outside = legacyOutsidePools(snap, legacyPods);
    if (outside) blockers.push(outside);
  }
  return blockers;
}

/** Whether cilium-config still has the migration's values (Cilium writes no CNI config by itself). */
export function stillInMigrationMode(ciliumConfig: Record<string, string> | undefined): boolean {
  return ciliumConfig?.['custom-cni-conf'] === 'true';
}

/** The Cilium version of the cilium DaemonSet's agent image (quay.io/cilium/cilium:v1.16.3@sha256:...). */
export function ciliumVersionFromImage(image: string | undefined): string | undefined {
  const m = /:v?(\d+\.\d+(?:\.\d+)?)(?:@|$)/.exec(image ?? '');
  return m?.[1];
}

export async function readFinalizeRecord(kube: Kube, namespace: string): Promise<FinalizeRecord | undefined> {
  const cm = await call(kube, `get configmap ${namespace}/${finalizeRecordName}`, async () => {
    try {
      return await kube.core.readNamespacedConfigMap({ namespace, name: finalizeRecordName });
    } catch (err) {
      if (statusCode(err) === 404) return undefined;
      throw err;
    }
  });
  const raw = cm?.data?.['record'];
  if (!raw) return undefined;
  try {
    return JSON.parse(raw) as FinalizeRecord;
  } catch {
    return { phase: 'finalizing', startedAt: cm?.metadata?.creationTimestamp?.toISOString?.() ?? '', nodes: [] };
  }
}

/**
 * Writes the record by server-side apply: its creation names the ConfigMap too, so the plugin's
 * Role may create exactly this one ConfigMap and no other (manifests/rbac).
 */
export async function writeFinalizeRecord(kube: Kube, namespace: string, record: FinalizeRecord): Promise<void> {
  await applyObject(kube, {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: finalizeRecordName, namespace, labels: { 'app.kubernetes.io/managed-by': 'kubectl-cilium-migrate' }, annotations: { [`${annotationPrefix}/note`]: 'written by kubectl cilium-migrate finalize; rollback refuses while it exists' } },
    data: { record: JSON.stringify(record) },
  }, { force: true });
}
