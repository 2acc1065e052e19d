// The reachability matrix as both `connectivity` and the engine's gate see it: read (one LIST of
// nodes, one LIST of agent pods and one GET per agent through the API server's pod proxy, with
// bounded concurrency and a limit per GET), assembled and judged by the one gate
// (lib/connectivity-gate.ts). The transport is a RowSource, so the logic is tested with an
// in-memory one.
import { Agent as HttpsAgent } from 'node:https';
import { CliError, ExitCode } from '../../lib/errors.js';
import { maxRowBytes } from '../../lib/defaults.js';
import { k8s, rawRequest, ResponseTooLargeError, translateKubeError, type Kube } from '../../lib/kube.js';
import { evaluateGate, type GateEvaluation, type GateInput, type GatePolicy } from '../../lib/connectivity-gate.js';
import { defaultConnectivity } from '../../lib/defaults.js';
import { expectedOverlay, phaseAnnotation } from '../../lib/node-state.js';
import { assembleMatrix, type AgentRead, type Matrix, type MatrixRead, type NodeFacts } from '../../lib/reachability.js';
import { parseRow, type Row } from '../../lib/row.js';
import { toNodeView } from '../cluster/kube-cluster.js';

/** An agent pod as the API lists it. */
export interface AgentPodRef {
  node: string;
  pod: string;
  namespace: string;
  ip: string;
  ready: boolean;
}

/** How the matrix is read and judged, as the flags say (cmd/flags/matrix.ts). */
export interface MatrixSettings {
  policy: GatePolicy;
  concurrency: number;
  timeoutMs: number;
  /** The agents' rows through the API server's pod proxy; `labelKey` says which overlay each node should be on. */
  source: (kube: Kube, labelKey: string) => RowSource & { close(): void };
}

/** Where rows come from. */
export interface RowSource {
  nodes(): Promise<NodeFacts[]>;
  agents(): Promise<AgentPodRef[]>;
  /** The agent's row limited to samples since `since`; throws an Error saying why not. */
  row(agent: AgentPodRef, since: Date, timeoutMs: number): Promise<Row>;
}

export interface ReadOptions {
  since: Date;
  concurrency: number;
  timeoutMs: number;
  now: () => number;
  /** Told how long each phase took (for -v). */
  timing?: (phase: string, ms: number) => void;
}

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return out;
}

/** Rejects after `ms` unless `p` settles first. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms / 1000}s`)), ms);
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

/**
 * Reads every agent's row: 2 LISTs and one GET per Ready agent pod. A GET that fails leaves the
 * agent without a row (its cells become UNKNOWN); only a lack of rights stops the read.
 */
export async function readMatrix(source: RowSource, opts: ReadOptions): Promise<MatrixRead> {
  const started = opts.now();
  const [nodes, pods] = await Promise.all([source.nodes(), source.agents()]);
  const listed = opts.now();
  opts.timing?.(`list ${nodes.length} nodes and ${pods.length} agent pods`, listed - started);
  const agents = await mapLimit(pods, opts.concurrency, async (pod): Promise<AgentRead> => {
    const base = { node: pod.node, pod: pod.pod, ip: pod.ip, ready: pod.ready };
    if (!pod.ready || !pod.ip) return { ...base, error: pod.ip ? 'pod is not Ready' : 'pod has no IP yet' };
    try {
      return { ...base, row: await within(source.row(pod, opts.since, opts.timeoutMs), opts.timeoutMs, `GET row of ${pod.pod}`) };
    } catch (err) {
      if (err instanceof CliError && err.exitCode === ExitCode.forbidden) throw err;
      return { ...base, error: err instanceof Error ? err.message : String(err) };
    }
  });
  const readAt = opts.now();
  opts.timing?.(`read ${agents.filter((a) => a.row).length} of ${pods.length} rows, ${opts.concurrency} at once`, readAt - listed);
  return { nodes, agents, since: opts.since.getTime(), readAt };
}

/** How one round reads and judges the matrix. */
export interface RoundOptions extends ReadOptions, Omit<GateInput, 'matrix'> {}

/**
 * One round of the gate: every agent's row read, the matrix assembled (stale rows and cells
 * without fresh samples UNKNOWN, `focus` marked) and judged. `connectivity` and the engine's gate
 * both judge the matrix this way, and only this way.
 */
export async function matrixRound(source: RowSource, opts: RoundOptions): Promise<{ matrix: Matrix; evaluation: GateEvaluation }> {
  const read = await readMatrix(source, opts);
  const started = opts.now();
  const matrix = assembleMatrix(read, { staleRowMs: defaultConnectivity.staleRowSeconds * 1000, focus: opts.focus });
  const evaluation = evaluateGate({ matrix, focus: opts.focus, baseline: opts.baseline, policy: opts.policy, exclude: opts.exclude, tunnels: opts.tunnels });
  opts.timing?.(`assemble ${matrix.cells.length} cells and judge them`, opts.now() - started);
  return { matrix, evaluation };
}

export interface KubeRowSourceOptions {
  namespace: string;
  selector: string;
  port: number;
  labelKey: string;
  concurrency: number;
}

/** Rows through the API server's pod proxy: GET /api/v1/namespaces/NS/pods/NAME:PORT/proxy/v1/row. */
export function kubeRowSource(kube: Kube, opts: KubeRowSourceOptions): RowSource & { close(): void } {
  const agent = new HttpsAgent({ keepAlive: true, maxSockets: opts.concurrency });
  return {
    close: () => agent.destroy(),
    async nodes() {
      const list = await listJson<k8s.V1NodeList>(kube, 'list nodes', '/api/v1/nodes', agent);
      return list.items.map(toNodeView).map((n) => ({ name: n.name, ready: n.ready, expectedOverlay: expectedOverlay(n.labels, opts.labelKey, n.annotations[phaseAnnotation]) }));
    },
    async agents() {
      const path = `/api/v1/namespaces/${encodeURIComponent(opts.namespace)}/pods?labelSelector=${encodeURIComponent(opts.selector)}`;
      const list = await listJson<k8s.V1PodList>(kube, `list agent pods in ${opts.namespace}`, path, agent);
      return list.items
        .filter((p) => p.spec?.nodeName && !p.metadata?.deletionTimestamp)
        .map((p) => ({
          node: p.spec!.nodeName!,
          pod: p.metadata?.name ?? '',
          namespace: p.metadata?.namespace ?? opts.namespace,
          ip: p.status?.podIP ?? '',
          ready: p.status?.phase === 'Running' && (p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false),
        }));
    },
    async row(pod, since, timeoutMs) {
      const path = `/api/v1/namespaces/${encodeURIComponent(pod.namespace)}/pods/${encodeURIComponent(pod.pod)}:${opts.port}/proxy/v1/row?since=${encodeURIComponent(since.toISOString())}`;
      // The caller's limit (readMatrix) fires first; this one only frees the socket afterwards.
      let res: Awaited<ReturnType<typeof rawRequest>>;
      try {
        res = await rawRequest(kube, 'GET', path, undefined, timeoutMs + 1000, 'application/json', agent, maxRowBytes);
      } catch (err) {
        // A row that large is no agent's: its cells become UNKNOWN rather than the plugin's memory.
        if (err instanceof ResponseTooLargeError) throw new Error(`its row is larger than ${maxRowBytes} bytes; not read`);
        throw err;
      }
      if (res.status === 401 || res.status === 403) {
        throw new CliError(`get pods/proxy of ${pod.namespace}/${pod.pod}: ${res.status === 401 ? 'the API server refused the credentials' : 'forbidden'}`, res.status === 401 ? ExitCode.unreachable : ExitCode.forbidden, 'reading the matrix needs get on pods/proxy, list on pods and list on nodes (see README "Permissions")');
      }
      if (res.status !== 200) {
        const text = typeof res.body === 'string' ? res.body : (res.body as { message?: string; error?: string } | undefined)?.message ?? (res.body as { error?: string } | undefined)?.error ?? '';
        throw new Error(`proxy answered ${res.status}${text ? `: ${String(text).trim().slice(0, 200)}` : ''}`);
      }
      return parseRow(res.body);
    },
  };
}

/**
 * A LIST as plain JSON. client-node's model deserialisation of a thousand nodes costs seconds of
 * CPU; the fields read here have the same names in the JSON (times stay strings, which
 * toNodeView accepts).
 */
async function listJson<T>(kube: Kube, what: string, path: string, agent: HttpsAgent): Promise<T> {
  const res = await rawRequest(kube, 'GET', path, undefined, 60_000, 'application/json', agent);
  if (res.status !== 200) {
    const message = (res.body as { message?: string } | undefined)?.message ?? `HTTP ${res.status}`;
    throw translateKubeError(new k8s.ApiException(res.status, message, res.body, res.headers as Record<string, string>), what, kube.server);
  }
  return res.body as T;
}
