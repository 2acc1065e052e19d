// Which pods a drain evicts, skips or refuses: kubectl drain's filters, in kubectl's order
// (k8s.io/kubectl/pkg/drain/filters.go), as a pure function so the rules are tested as a table.

/** What the drain needs to know about a pod on the node. */
export interface DrainPod {
  namespace: string;
  name: string;
  uid: string;
  phase?: string | undefined;
  /** metadata.deletionTimestamp, when the pod is already being deleted. */
  deletionTimestamp?: Date | undefined;
  /** The controller owner reference, if any. */
  controller?: { kind: string; name: string } | undefined;
  /** A static pod's mirror (annotation kubernetes.io/config.mirror). */
  mirror: boolean;
  /** Has an emptyDir volume, whose data the eviction destroys. */
  emptyDir: boolean;
}

/** kubectl drain's flags that decide what may be evicted. */
export interface DrainFlags {
  /** Leave DaemonSet pods where they are (kubectl --ignore-daemonsets); default true here. */
  ignoreDaemonSets: boolean;
  /** Evict pods with emptyDir volumes, losing the data (--delete-emptydir-data). */
  deleteEmptyDirData: boolean;
  /** Evict pods without a controller, which nothing recreates (--force). */
  force: boolean;
  /** Skip pods deleted longer ago than this (--skip-wait-for-delete-timeout); 0 = never. */
  skipWaitForDeleteTimeoutSeconds: number;
}

export const defaultDrainFlags: DrainFlags = { ignoreDaemonSets: true, deleteEmptyDirData: false, force: false, skipWaitForDeleteTimeoutSeconds: 0 };

export type DrainAction = 'evict' | 'skip' | 'refuse';

export interface DrainDecision {
  pod: DrainPod;
  action: DrainAction;
  /** Why the pod is skipped or refused, or what evicting it costs (a warning). */
  reason?: string;
}

/** The flag that would let a refused pod be evicted, for the error message. */
export interface Refusal {
  pod: DrainPod;
  reason: string;
  flag: string;
}

/** kubectl's rule: a pod deleted more than `limitSeconds` ago (whole seconds) is no longer waited for. */
export function deletedLongAgo(pod: Pick<DrainPod, 'deletionTimestamp'>, limitSeconds: number, now: number): boolean {
  return limitSeconds > 0 && pod.deletionTimestamp !== undefined && Math.floor((now - pod.deletionTimestamp.getTime()) / 1000) > limitSeconds;
}

const finished = (pod: DrainPod) => pod.phase === 'Succeeded' || pod.phase === 'Failed';

type FilterResult = { delete: boolean; error?: { reason: string; flag: string }; warning?: string };

/**
 * Decides for every pod, as `kubectl drain` does. `daemonSetExists` answers whether the DaemonSet
 * that controls a pod still exists (kubectl looks it up; an orphan needs --force).
 */
export function classifyDrainPods(pods: DrainPod[], flags: DrainFlags, daemonSetExists: (namespace: string, name: string) => boolean, now: Date): DrainDecision[] {
  const filters: ((pod: DrainPod) => FilterResult)[] = [
    // Pods deleted long enough ago are not waited for.
    (pod) => {
      if (deletedLongAgo(pod, flags.skipWaitForDeleteTimeoutSeconds, now.getTime())) {
        return { delete: false, warning: 'deleted long ago; not waited for' };
      }
      return { delete: true };
    },
    (pod) => {
      if (pod.controller?.kind !== 'DaemonSet' || finished(pod)) return { delete: true };
      if (!daemonSetExists(pod.namespace, pod.controller.name)) {
        return flags.force
          ? { delete: true, warning: `its DaemonSet ${pod.controller.name} does not exist` }
          : { delete: false, error: { reason: `its DaemonSet ${pod.controller.name} does not exist`, flag: '--force' } };
      }
      return flags.ignoreDaemonSets
        ? { delete: false, warning: 'DaemonSet-managed; stays on the node' }
        : { delete: false, error: { reason: 'managed by a DaemonSet', flag: '--ignore-daemonsets' } };
    },
    (pod) => (pod.mirror ? { delete: false } : { delete: true }),
    (pod) => {
      if (!pod.emptyDir || finished(pod)) return { delete: true };
      return flags.deleteEmptyDirData
        ? { delete: true, warning: 'its emptyDir data is deleted' }
        : { delete: false, error: { reason: 'uses emptyDir (local data would be lost)', flag: '--delete-emptydir-data' } };
    },
    (pod) => {
      if (finished(pod) || pod.controller) return { delete: true };
      return flags.force
        ? { delete: true, warning: 'not managed by a controller; nothing recreates it' }
        : { delete: false, error: { reason: 'not managed by a controller (nothing would recreate it)', flag: '--force' } };
    },
  ];

  return pods.map((pod) => {
    let result: FilterResult = { delete: true };
    let warning: string | undefined;
    for (const filter of filters) {
      result = filter(pod);
      warning = result.warning ?? warning;
      if (!result.delete) break;
    }
    if (result.error) return { pod, action: 'refuse', reason: `${result.error.reason}; needs ${result.error.flag}` };
    if (!result.delete) return { pod, action: 'skip', ...(warning ? { reason: warning } : { reason: 'mirror pod of a static pod' }) };
    return { pod, action: 'evict', ...(warning ? { reason: warning } : {}) };
  });
}
