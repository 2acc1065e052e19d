// Inotify instances are one budget for every process of a user on the machine
// (fs.inotify.max_user_instances, often 128), and the lab's nodes all run as root: each node's
// kubelet takes about 7, containerd 2, kube-proxy and the Cilium agent 1 each, the control plane
// about 10. When the budget runs out, containerd starts without its CRI plugin ("failed to create
// fsnotify watcher: too many open files") and the node never becomes Ready. The lab never changes
// the machine's sysctls, so `lab up` checks the room first and says what to do.
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';

/** Instances a lab takes: per node, and once for its control plane (measured on 3-node labs here, rounded up). */
export const inotifyPerNode = 13;
export const inotifyControlPlane = 12;

/** The inotify instances the processes of `uid` hold now (an instance shared by several processes counts once per process). */
export function inotifyInUse(uid = 0): number {
  let used = 0;
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (statSync(`/proc/${pid}`).uid !== uid) continue;
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        try {
          if (readlinkSync(`/proc/${pid}/fd/${fd}`) === 'anon_inode:inotify') used++;
        } catch {
          // closed meanwhile
        }
      }
    } catch {
      // the process ended meanwhile
    }
  }
  return used;
}

export function inotifyLimit(): number | undefined {
  try {
    return Number(readFileSync('/proc/sys/fs/inotify/max_user_instances', 'utf8').trim());
  } catch {
    return undefined;
  }
}

/** Why a lab of `nodes` nodes would run out of inotify instances; undefined when it has room. Pure. */
export function inotifyShortage(nodes: number, limit: number | undefined, used: number): { message: string; hint: string } | undefined {
  if (limit === undefined) return undefined;
  const need = inotifyControlPlane + nodes * inotifyPerNode;
  if (limit - used >= need) return undefined;
  return {
    message: `this machine allows root ${limit} inotify instances (fs.inotify.max_user_instances) and ${used} are in use: a lab of ${nodes} node${nodes === 1 ? '' : 's'} needs about ${need}, and without them containerd starts without its CRI plugin ("too many open files") and the nodes never become Ready`,
    hint: `stop other labs or programs that hold inotify instances, or raise the limit on this machine yourself (sysctl -w fs.inotify.max_user_instances=512, as kind's documentation advises); the lab never changes the machine's sysctls`,
  };
}
