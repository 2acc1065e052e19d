// `prepare`'s work: objects applied server-side in kubectl's order (namespaces and CRDs before what
// lives in them), under the migration lock so it never races a run or a finalize, each application
// fenced by it. A server-side dry run takes no lock.
import { type Kube } from '../../lib/kube.js';
import { applyObject, type ApplyOutcome, type ManifestObject } from '../../lib/kube-objects.js';
import { lockTtlSeconds } from '../../lib/defaults.js';
import { newRunId } from '../../lib/run-id.js';
import { underLock } from './session.js';

export interface Applied {
  kind: string;
  name: string;
  apiVersion: string;
  outcome: ApplyOutcome;
}

const key = (o: ManifestObject) => `${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`;

/** Applies `objects`; `log` hears of each as it goes. */
export async function applyObjects(kube: Kube, objects: ManifestObject[], opts: { ciliumNamespace: string; dryRun: boolean; force: boolean }, log: (line: string) => void, signal: AbortSignal): Promise<Applied[]> {
  const first = (o: ManifestObject) => (o.kind === 'Namespace' || o.kind === 'CustomResourceDefinition' ? 0 : 1);
  const apply = async (check: (what: string) => void) => {
    const results: Applied[] = [];
    for (const o of [...objects].sort((a, b) => first(a) - first(b))) {
      check(`applying ${o.kind} ${key(o)}`);
      const outcome = await applyObject(kube, o, { dryRun: opts.dryRun, force: opts.force });
      results.push({ kind: o.kind, name: key(o), apiVersion: o.apiVersion, outcome });
      log(`${o.kind} ${key(o)} ${outcome}`);
    }
    return results;
  };
  if (opts.dryRun) return apply(() => {});
  return underLock(kube, { namespace: opts.ciliumNamespace, ttlMs: lockTtlSeconds * 1000, runId: newRunId(), log, signal }, ({ lock }) => apply((what) => lock.check(what)));
}
