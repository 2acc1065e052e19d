// The seed's migration as a script over a running lab, shared by `make demo` and the end-to-end
// test: the workloads (nginx with 10 replicas, the probe agents), the plugin run as users run it,
// and a reading of the reachability matrix from the agents' rows.
import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { parseRow, cellFreshness, type Row } from '../lib/row.js';
import { agentNamespace, ciliumClusterCidr } from '../lib/defaults.js';
import { cidrContains } from '../lib/cidr.js';
import { nodePhase } from '../lib/node-state.js';
import { api, apiOrNotFound, labClient, type LabClient } from './lab-api.js';
import { probeAgentObjects, trafficCheckerObjects } from './lab-install.js';

export interface Scenario {
  kube: LabClient;
  kubeconfig: string;
  distDir: string;
  stateDir: string;
  /** kubectl from the binary cache, with the lab's kubeconfig. */
  kubectl(args: string[], input?: string): string;
  /** That kubectl's path. */
  kubectlPath: string;
  /** Runs the bundled plugin; its output goes to `echo` line by line as it comes. */
  plugin(args: string[], echo?: (line: string) => void): Promise<{ code: number; stdout: string; stderr: string }>;
  /** The restart flags for `node`: the lab's restart-node through --restart exec. */
  restartFlags(): string[];
}

export function scenario(o: { kubeconfig: string; distDir: string; stateDir: string }): Scenario {
  const binDir = execFileSync(join(o.distDir, '..', 'lab', 'bins', 'build.sh'), ['--dir'], { encoding: 'utf8' }).trim();
  const pluginJs = join(o.distDir, 'kubectl-cilium_migrate');
  const s: Scenario = {
    kube: labClient(o.kubeconfig),
    kubeconfig: o.kubeconfig,
    distDir: o.distDir,
    stateDir: o.stateDir,
    kubectlPath: join(binDir, 'kubectl'),
    kubectl: (args, input) => execFileSync(join(binDir, 'kubectl'), [`--kubeconfig=${o.kubeconfig}`, ...args], { encoding: 'utf8', ...(input !== undefined ? { input } : {}), stdio: ['pipe', 'pipe', 'pipe'] }),
    plugin: (args, echo) =>
      new Promise((resolve) => {
        const child = spawn(process.execPath, [pluginJs, '--kubeconfig', o.kubeconfig, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
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
    restartFlags: () => ['--restart', 'exec', '--restart-command', `${process.execPath} ${join(o.distDir, 'lab.js')} --state-dir ${o.stateDir} restart-node {node}`],
  };
  return s;
}

/** Applies objects with server-side apply (kubectl), as users would. */
export function apply(s: Scenario, objects: Record<string, unknown>[]): void {
  s.kubectl(['apply', '--server-side', '--field-manager=cilium-migrate-lab', '-f', '-'], objects.map((x) => JSON.stringify(x)).join('\n'));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `check` returns a value; `what` names it in the timeout error. */
export async function waitUntil<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 500): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}${last ? ` (${(last as Error).message})` : ''}`);
    await sleep(intervalMs);
  }
}

/** nginx (the seed's `kubectl create deployment nginx --image nginx --port 80 --replicas 10`) and the probe agents. */
export async function deployWorkloads(s: Scenario, opts: { nginxReplicas?: number; trafficResultsDir?: string } = {}): Promise<void> {
  let lastNotReady = '';
  s.kubectl(['create', 'deployment', 'nginx', '--image', 'nginx', '--port', '80', '--replicas', String(opts.nginxReplicas ?? 10)]);
  apply(s, probeAgentObjects());
  if (opts.trafficResultsDir !== undefined) apply(s, trafficCheckerObjects(opts.trafficResultsDir));
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

/** Every agent's row, read through the API server's pod proxy (the lab's egress). */
export async function agentRows(s: Scenario): Promise<{ pod: string; row: Row }[]> {
  const pods = await api<{ items: PodItem[] }>(s.kube, 'GET', `/api/v1/namespaces/${agentNamespace}/pods?labelSelector=app.kubernetes.io/name%3Dcilium-migrate-agent`);
  const rows = await Promise.all(pods.items.filter((p) => p.status.phase === 'Running' && p.status.podIP).map(async (p) => {
    try {
      return { pod: p.metadata.name, row: parseRow(await api(s.kube, 'GET', `/api/v1/namespaces/${agentNamespace}/pods/${p.metadata.name}:8080/proxy/v1/row`)) };
    } catch {
      return undefined;
    }
  }));
  return rows.filter((r): r is { pod: string; row: Row } => r !== undefined);
}

export type CellState = 'ok' | 'fail' | 'unknown';

export interface Matrix {
  agents: { node: string; overlay: string }[];
  cells: { src: string; dst: string; srcOverlay: string; dstOverlay: string; state: CellState; error?: string }[];
  /** Overlay pair -> ok/total cells. */
  pairs: Record<string, { ok: number; total: number }>;
  green: boolean;
}

/** The matrix the rows make: a cell is ok when its freshest ICMP and HTTP samples both succeeded. */
export function matrixOf(rows: { row: Row }[], now = Date.now()): Matrix {
  const cells: Matrix['cells'] = [];
  const pairs: Matrix['pairs'] = {};
  for (const { row } of rows) {
    for (const cell of row.cells) {
      let state: CellState = 'ok';
      let error: string | undefined;
      for (const st of cell.stats.filter((x) => x.protocol === 'icmp' || x.protocol === 'http')) {
        const fresh = cellFreshness(st, now, row.intervalMs, row.windowMs) === 'fresh';
        const okAt = st.lastSuccessAt ? Date.parse(st.lastSuccessAt) : 0;
        const badAt = st.lastFailureAt ? Date.parse(st.lastFailureAt) : 0;
        if (!fresh) state = state === 'fail' ? 'fail' : 'unknown';
        else if (badAt > okAt) {
          state = 'fail';
          error = `${st.protocol}: ${st.lastError ?? 'failed'}`;
        }
      }
      const key = `${row.identity.overlay}->${cell.peer.overlay}`;
      pairs[key] ??= { ok: 0, total: 0 };
      pairs[key].total += 1;
      if (state === 'ok') pairs[key].ok += 1;
      cells.push({ src: row.identity.node, dst: cell.peer.node, srcOverlay: row.identity.overlay, dstOverlay: cell.peer.overlay, state, ...(error ? { error } : {}) });
    }
  }
  const agents = rows.map((r) => ({ node: r.row.identity.node, overlay: r.row.identity.overlay })).sort((a, b) => a.node.localeCompare(b.node));
  const complete = agents.length > 1 && cells.length === agents.length * (agents.length - 1);
  return { agents, cells, pairs, green: complete && cells.every((c) => c.state === 'ok') };
}

/** The matrix as text: one line per source agent, a mark per destination, then the overlay pairs. */
export function renderMatrix(m: Matrix): string {
  const mark = { ok: 'ok', fail: 'FAIL', unknown: '?' } as const;
  const width = Math.max(12, ...m.agents.map((a) => `${a.node} (${a.overlay})`.length));
  const col = Math.max(6, ...m.agents.map((a) => a.node.length)) + 2;
  const lines = [`${'from \\ to'.padEnd(width)}  ${m.agents.map((a) => a.node.padEnd(col)).join('')}`];
  for (const src of m.agents) {
    const row = m.agents.map((dst) => (dst.node === src.node ? '-' : mark[m.cells.find((c) => c.src === src.node && c.dst === dst.node)?.state ?? 'unknown']).padEnd(col)).join('');
    lines.push(`${`${src.node} (${src.overlay})`.padEnd(width)}  ${row}`);
  }
  const pairs = Object.entries(m.pairs).sort().map(([k, v]) => `${k} ${v.ok}/${v.total}`).join(', ');
  lines.push(`overlay pairs: ${pairs || 'none yet'}; ${m.green ? 'GREEN' : 'NOT GREEN'}`);
  for (const c of m.cells.filter((x) => x.state === 'fail')) lines.push(`  failing: ${c.src} -> ${c.dst}: ${c.error ?? ''}`);
  return lines.join('\n');
}

/** Waits for a green matrix (fresh probes everywhere after a step), returning it. */
export async function greenMatrix(s: Scenario, timeoutMs = 60_000): Promise<Matrix> {
  let last: Matrix | undefined;
  try {
    return await waitUntil('a green reachability matrix', async () => {
      last = matrixOf(await agentRows(s));
      return last.green ? last : undefined;
    }, timeoutMs, 1000);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${last ? renderMatrix(last) : 'no agent answered'}`);
  }
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
        continue;
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

/** Pods with an address, by overlay (host-network pods aside). */
export async function podsPerOverlay(s: Scenario, selector?: string): Promise<{ legacy: number; cilium: number; pods: { name: string; ip: string; node: string }[] }> {
  const q = selector ? `?labelSelector=${encodeURIComponent(selector)}` : '';
  const pods = await api<{ items: PodItem[] }>(s.kube, 'GET', `/api/v1/pods${q}`);
  const withIp = pods.items.filter((p) => !p.spec.hostNetwork && p.status.podIP && p.status.phase === 'Running');
  const cilium = withIp.filter((p) => cidrContains(ciliumClusterCidr, p.status.podIP!));
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
