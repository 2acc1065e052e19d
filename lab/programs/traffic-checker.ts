// A traffic checker for the lab's end-to-end runs: keeps requesting every Ready pod matching a
// selector (nginx) from inside its own pod, and appends one JSON line per request to
// RESULTS_DIR/<pod>.jsonl: when, from where (pod, IP, node) to where, and whether it worked.
// It learns its targets by watching the API, as a client behind a Service would.
//
//   traffic-checker --selector app=nginx --namespace default --results DIR [--interval 500ms]
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { labClient } from '../lab-api.js';
import { reflect, type KubeObject } from '../../lib/kube-watch.js';

interface PodObject extends KubeObject {
  metadata?: KubeObject['metadata'] & { uid?: string; deletionTimestamp?: string };
  spec?: { nodeName?: string };
  status?: { podIP?: string; conditions?: { type: string; status: string }[] };
}

export interface TrafficRecord {
  t: string;
  src: string;
  srcIp: string;
  srcNode: string;
  dst: string;
  dstUid: string;
  dstIp: string;
  dstNode: string;
  ok: boolean;
  ms: number;
  error?: string;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { selector: { type: 'string', default: 'app=nginx' }, namespace: { type: 'string', default: 'default' }, results: { type: 'string' }, interval: { type: 'string', default: '500' } } });
  if (!values.results) throw new Error('--results DIR is required');
  const intervalMs = Number(values.interval.replace(/ms$/, ''));
  const self = { src: process.env.POD_NAME ?? 'checker', srcIp: process.env.POD_IP ?? '', srcNode: process.env.NODE_NAME ?? '' };
  mkdirSync(values.results, { recursive: true });
  const file = join(values.results, `${self.src}.jsonl`);
  const kube = labClient(process.env.KUBECONFIG).lite;
  let pods = new Map<string, KubeObject>();
  const r = reflect(kube, `/api/v1/namespaces/${values.namespace}/pods`, { query: { labelSelector: values.selector }, onChange: (items) => (pods = items), onError: (l) => process.stderr.write(`${l}\n`) });
  while (!r.synced()) await new Promise((res) => setTimeout(res, 50));
  if (process.env.LAB_READY_FILE) writeFileSync(process.env.LAB_READY_FILE, 'ready\n');
  let stop = false;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => (stop = true));
  while (!stop) {
    const started = Date.now();
    const targets = [...pods.values() as Iterable<PodObject>].filter((p) => p.status?.podIP && !p.metadata?.deletionTimestamp && p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
    const lines = await Promise.all(targets.map(async (p) => {
      const t0 = Date.now();
      const rec: TrafficRecord = { t: new Date(t0).toISOString(), ...self, dst: p.metadata?.name ?? '', dstUid: p.metadata?.uid ?? '', dstIp: p.status!.podIP!, dstNode: p.spec?.nodeName ?? '', ok: false, ms: 0 };
      try {
        // Two seconds: generous for a pod next door, short enough that an outage shows (two cores, shared).
        const res = await fetch(`http://${rec.dstIp}/`, { signal: AbortSignal.timeout(2000), headers: { connection: 'close' } });
        const body = await res.text();
        // nginx's own page: a 200 from something else at that address is not nginx answering.
        rec.ok = res.status === 200 && body.includes('Welcome to nginx');
        if (!rec.ok) rec.error = `HTTP ${res.status}${body.includes('Welcome to nginx') ? '' : ', not nginx\'s page'}`;
      } catch (err) {
        rec.error = (err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message;
      }
      rec.ms = Date.now() - t0;
      return JSON.stringify(rec);
    }));
    if (lines.length > 0 && !stop) appendFileSync(file, lines.join('\n') + '\n');
    await new Promise((res) => setTimeout(res, Math.max(0, intervalMs - (Date.now() - started))));
  }
  r.stop();
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stderr.write(`traffic-checker: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
