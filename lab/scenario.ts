// The seed's migration as a script over a running lab, shared by `make demo` and the end-to-end
// test: the workloads (nginx with 10 replicas, the probe agents) and the plugin run as users run
// it. The reachability matrix is the plugin's own (`connectivity`): the lab has no model of its own.
import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { agentNamespace } from '../lib/defaults.js';
import { cidrContains } from '../lib/cidr.js';
import { nodePhase } from '../lib/node-state.js';
import { api, apiOrNotFound, labClient, type LabClient } from './lab-api.js';
import { statePaths } from './daemon.js';
import { agentImageReference } from './images/catalog.js';
import { probeAgentObjects, trafficCheckerObjects } from './lab-install.js';
import { defaultLayout, pluginLayoutFlags, type LabLayout } from './layout.js';
import { waitUntil } from './wait.js';

export interface Scenario {
  kube: LabClient;
  kubeconfig: string;
  distDir: string;
  stateDir: string;
  /** The lab's pod CIDRs, tunnel ports and Cilium's namespace. */
  layout: LabLayout;
  /** kubectl from the binary cache, with the lab's kubeconfig. */
  kubectl(args: string[], input?: string): string;
  /** That kubectl's path. */
  kubectlPath: string;
  /**
   * Runs the bundled plugin; its output goes to `echo` line by line as it comes. The lab's bin
   * directory is first on its PATH: `docker` for the lab's nodes (the default `--restart kind`) and
   * `helm` for Cilium's release (`finalize --apply`), as `lab up` tells users to set it. The
   * command gets the lab's layout flags first (lab/layout.ts: --cilium-namespace, and the CIDRs and
   * ports for values and finalize), as a user of this lab would pass them; flags in `args` come later and win.
   */
  plugin(args: string[], echo?: (line: string) => void): Promise<{ code: number; stdout: string; stderr: string }>;
  /** The lab's `lab ...` command line (dist/lab.js with this state directory), for --restart-command. */
  labCommand: string;
}

/** The environment of the scenario's kubectl and plugin (and the helm it runs): their discovery cache in the lab's state directory unless KUBECACHEDIR says where. */
export function kubectlEnv(stateDir: string, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...env, KUBECACHEDIR: env.KUBECACHEDIR || statePaths(stateDir).kubeCache };
}

export function scenario(o: { kubeconfig: string; distDir: string; stateDir: string; layout?: LabLayout }): Scenario {
  const layout = o.layout ?? defaultLayout;
  const binDir = execFileSync(join(o.distDir, '..', 'lab', 'bins', 'build.sh'), ['--dir'], { encoding: 'utf8' }).trim();
  const pluginJs = join(o.distDir, 'kubectl-cilium_migrate');
  const s: Scenario = {
    kube: labClient(o.kubeconfig),
    kubeconfig: o.kubeconfig,
    distDir: o.distDir,
    stateDir: o.stateDir,
    layout,
    kubectlPath: join(binDir, 'kubectl'),
    // kubectl's and helm's discovery cache stays with the lab (lab down removes it), not in ~/.kube/cache.
    kubectl: (args, input) => execFileSync(join(binDir, 'kubectl'), [`--kubeconfig=${o.kubeconfig}`, ...args], { encoding: 'utf8', env: kubectlEnv(o.stateDir), ...(input !== undefined ? { input } : {}), stdio: ['pipe', 'pipe', 'pipe'] }),
    plugin: (args, echo) =>
      new Promise((resolve) => {
        // helm (finalize --apply) keeps a discovery cache as kubectl does: the same place.
        const env = { ...kubectlEnv(o.stateDir), PATH: `${join(o.stateDir, 'bin')}:${process.env.PATH ?? ''}` };
        const [command, ...rest] = args;
        const withLayout = command === undefined ? [] : [command, ...pluginLayoutFlags(layout, command), ...rest];
        const child = spawn(process.execPath, [pluginJs, '--kubeconfig', o.kubeconfig, ...withLayout], { stdio: ['ignore', 'pipe', 'pipe'], env });
        let stdout = '';
        let stderr = '';
        const lines = (sink: (t: string) => void) => {
          let partial = '';
          return (d: string) => {
            sink(d);
            partial += d;
            const parts = partial.split('\n');
            partial = parts.pop() ?? '';
            for (const l of parts) echo?.(l);
          };
        };
        child.stdout.setEncoding('utf8').on('data', lines((d) => (stdout += d)));
        child.stderr.setEncoding('utf8').on('data', lines((d) => (stderr += d)));
        child.on('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
      }),
    labCommand: `${process.execPath} ${join(o.distDir, 'lab.js')} --state-dir ${o.stateDir}`,
  };
  return s;
}

/** Applies objects with server-side apply (kubectl), as users would. */
export function apply(s: Scenario, objects: Record<string, unknown>[]): void {
  s.kubectl(['apply', '--server-side', '--field-manager=cilium-migrate-lab', '-f', '-'], objects.map((x) => JSON.stringify(x)).join('\n'));
}

/**
 * nginx (the seed's `kubectl create deployment nginx --image nginx --port 80 --replicas 10`; the
 * real lab's `lab up` has made it already) and the probe agents; with `trafficChecker`, a traffic
 * checker on every node (run from the agent's image).
 */
export async function deployWorkloads(s: Scenario, opts: { nginxReplicas?: number; trafficChecker?: boolean } = {}): Promise<void> {
  let lastNotReady = '';
  if ((await apiOrNotFound(s.kube, 'GET', '/apis/apps/v1/namespaces/default/deployments/nginx')) === undefined) {
    s.kubectl(['create', 'deployment', 'nginx', '--image', 'nginx', '--port', '80', '--replicas', String(opts.nginxReplicas ?? 10)]);
  }
  apply(s, probeAgentObjects(agentNamespace, agentImageReference(join(s.distDir, '..')), { legacyCidrs: [s.layout.legacyCidr], ciliumCidrs: [s.layout.ciliumCidr] }));
  if (opts.trafficChecker) apply(s, trafficCheckerObjects(agentImageReference(join(s.distDir, '..'))));
  await waitUntil('nginx and the probe agents Ready', async () => {
    lastNotReady = await notReadyPods(s);
    const d = await api<{ spec: { replicas: number }; status: { readyReplicas?: number } }>(s.kube, 'GET', '/apis/apps/v1/namespaces/default/deployments/nginx');
    const ds = await api<{ status: { numberReady?: number; desiredNumberScheduled?: number } }>(s.kube, 'GET', `/apis/apps/v1/namespaces/${agentNamespace}/daemonsets/cilium-migrate-agent`);
    return d.status.readyReplicas === d.spec.replicas && (ds.status.desiredNumberScheduled ?? 0) > 0 && ds.status.numberReady === ds.status.desiredNumberScheduled ? true : undefined;
  }, 120_000).catch((err: Error) => {
    throw new Error(`${err.message}; not Ready: ${lastNotReady || 'none'}`);
  });
}

/** Pods that are not Ready, with their phase, node and IP: what a failed wait reports. */
export async function notReadyPods(s: Scenario): Promise<string> {
  const pods = await api<{ items: (PodItem & { status: { conditions?: { type: string; status: string; message?: string }[] } })[] }>(s.kube, 'GET', '/api/v1/pods');
  return pods.items
    .filter((p) => !p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') && p.status.phase !== 'Succeeded')
    .map((p) => `${p.metadata.namespace}/${p.metadata.name} ${p.status.phase ?? '?'} on ${p.spec.nodeName ?? 'no node'} ${p.status.podIP ?? ''} ${p.status.conditions?.map((c) => c.message).filter(Boolean).join(' ') ?? ''}`.trim())
    .join('; ');
}

interface PodItem {
  metadata: { name: string; namespace: string; uid: string; labels?: Record<string, string> };
  spec: { nodeName?: string; hostNetwork?: boolean };
  status: { podIP?: string; phase?: string };
}

/** Sums the agents' probe counters across restarts (a restarted agent starts from zero). */
export class ProbeTally {
  private readonly last = new Map<string, { sent: number; failed: number }>();
  private carried = { sent: 0, failed: 0 };

  async sample(s: Scenario): Promise<void> {
    const pods = await api<{ items: PodItem[] }>(s.kube, 'GET', `/api/v1/namespaces/${agentNamespace}/pods?labelSelector=app.kubernetes.io/name%3Dcilium-migrate-agent`);
    for (const p of pods.items.filter((x) => x.status.phase === 'Running')) {
      let text: string;
      try {
        text = String(await api(s.kube, 'GET', `/api/v1/namespaces/${agentNamespace}/pods/${p.metadata.name}:8080/proxy/metrics`));
      } catch {
        // The real lab's API server has no route to pod addresses (it runs beside the nodes, not
        // on one): ask the agent from inside its pod, with its own node.
        try {
          text = s.kubectl(['-n', agentNamespace, 'exec', p.metadata.name, '--', 'node', '-e', "fetch('http://127.0.0.1:8080/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))"]);
        } catch {
          continue;
        }
      }
      let sent = 0;
      let failed = 0;
      for (const m of text.matchAll(/^cilium_migrate_probes_total\{([^}]*)\} (\d+)/gm)) {
        sent += Number(m[2]);
        if (m[1]!.includes('result="failure"')) failed += Number(m[2]);
      }
      const key = p.metadata.name;
      const before = this.last.get(key);
      if (before && sent < before.sent) this.carried = { sent: this.carried.sent + before.sent, failed: this.carried.failed + before.failed };
      this.last.set(key, { sent, failed });
    }
  }

  totals(): { sent: number; failed: number } {
    let sent = this.carried.sent;
    let failed = this.carried.failed;
    for (const v of this.last.values()) {
      sent += v.sent;
      failed += v.failed;
    }
    return { sent, failed };
  }
}

/** Pods with an address, by overlay (host-network pods aside): on Cilium when inside the layout's Cilium CIDR. */
export async function podsPerOverlay(s: Scenario, selector?: string): Promise<{ legacy: number; cilium: number; pods: { name: string; ip: string; node: string }[] }> {
  const q = selector ? `?labelSelector=${encodeURIComponent(selector)}` : '';
  const pods = await api<{ items: PodItem[] }>(s.kube, 'GET', `/api/v1/pods${q}`);
  const withIp = pods.items.filter((p) => !p.spec.hostNetwork && p.status.podIP && p.status.phase === 'Running');
  const cilium = withIp.filter((p) => cidrContains(s.layout.ciliumCidr, p.status.podIP!));
  return { legacy: withIp.length - cilium.length, cilium: cilium.length, pods: withIp.map((p) => ({ name: p.metadata.name, ip: p.status.podIP!, node: p.spec.nodeName ?? '' })) };
}

/** Nodes the plugin has marked migrated. */
export async function migratedNodes(s: Scenario): Promise<string[]> {
  const nodes = await api<{ items: { metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> } }[] }>(s.kube, 'GET', '/api/v1/nodes');
  return nodes.items.filter((n) => nodePhase(n.metadata.annotations ?? {}) === 'migrated').map((n) => n.metadata.name);
}

/** Whether Flannel is still installed (its DaemonSet). */
export async function flannelInstalled(s: Scenario): Promise<boolean> {
  return (await apiOrNotFound(s.kube, 'GET', '/apis/apps/v1/namespaces/kube-flannel/daemonsets/kube-flannel-ds')) !== undefined;
}
