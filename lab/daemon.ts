// What the lab daemon (lab/kind-daemon.ts) shares with its clients (`lab` commands, the demo, tests
// and benchmarks): where a lab keeps its state, the files and sockets in it, and the status the
// control socket answers with.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LabLayout } from './layout.js';

/** Default state directory: sockets, the kubeconfig, the nodes' files (on disk: real nodes hold their images there). */
export const defaultStateDir = '/var/lib/cilium-migrate-lab';

export interface LabStatus {
  ready: boolean;
  runtime: 'real';
  /** The lab's resource prefix (lab/node/lab-resources.ts). */
  prefix: string;
  pid: number;
  kubeconfig: string;
  server: string;
  startedAt: string;
  /** The namespace of the underlay bridge. */
  underlayNetns: string;
  /** The pod CIDRs, tunnel ports and Cilium's namespace the lab was brought up with. */
  layout: LabLayout;
  /** The legacy CNI the lab runs (lab up --legacy); flannel when absent. */
  legacy?: 'flannel' | 'calico';
  nodes: { name: string; netns: string; role: string; internalIp: string; ready: boolean; bootID: string; podCIDR: string; cni: string; pods: { legacy: number; cilium: number; host: number } }[];
}

/** Paths inside a state directory. */
export function statePaths(stateDir: string) {
  return {
    control: join(stateDir, 'control.sock'),
    kubeconfig: join(stateDir, 'kubeconfig'),
    pid: join(stateDir, 'daemon.pid'),
    log: join(stateDir, 'daemon.log'),
    /** kubectl's and helm's discovery cache (KUBECACHEDIR) for what the lab runs, not ~/.kube/cache. */
    kubeCache: join(stateDir, 'kube-cache'),
  };
}

/** The directory holding the bundled programs, next to the running lab bundle or built from the repository. */
export function defaultDistDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  // dist/lab.js runs from dist/; lab/daemon.ts (tests, tsx) from lab/.
  return here.endsWith('/dist') ? here : join(here, '..', 'dist');
}
