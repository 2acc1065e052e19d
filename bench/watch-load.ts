// Load for the API server: N probe agents' discovery, request for request, without N agents. Each
// simulated agent sends exactly the LISTs and WATCHes agent/kube-discovery.ts sends (same paths,
// query, Accept headers, LISTs in pages of the same size, one TLS connection per watch, as the
// agent's client opens them) and reads every byte the API server sends, but parses none: the cost
// measured is the API server's.
//
//   node --import tsx bench/watch-load.ts --kubeconfig FILE --agents 1000 --variant metadata|full
//
// --variant full sends the requests of the agent before nodes were watched as metadata only (every
// collection in full). Every second it prints one JSON line: watches open, LISTs done, watch events
// and bytes received so far, failures.
import { request, type RequestOptions } from 'node:https';
import { parseArgs } from 'node:util';
import { agentSelector } from '../agent/config.js';
import { discoveryWatches } from '../agent/kube-discovery.js';
import { liteCredentials } from '../lib/kube-lite.js';
import { agentNamespace } from '../lib/defaults.js';
import { listPageSize, metadataOnlyAccept } from '../lib/kube-watch.js';
import { listMetadata } from './list-metadata.js';

const { values } = parseArgs({ options: { kubeconfig: { type: 'string' }, agents: { type: 'string', default: '1000' }, variant: { type: 'string', default: 'metadata' }, 'list-concurrency': { type: 'string', default: '8' } } });
const creds = liteCredentials(values.kubeconfig);
const agents = Number(values.agents);
const watches = discoveryWatches(agentNamespace, agentSelector, 'cilium-migrate.io/phase').map((w) => ({ ...w, metadataOnly: values.variant === 'full' ? false : w.metadataOnly }));
const stats = { open: 0, lists: 0, events: 0, bytes: 0, failures: 0 };

function get(path: string, accept: string, onData: (chunk: Buffer) => void): Promise<number> {
  const url = new URL(path, creds.server);
  const options: RequestOptions = { method: 'GET', headers: { Accept: accept }, ca: creds.ca, cert: creds.cert, key: creds.key, agent: false };
  return new Promise((resolve, reject) => {
    const req = request(url, options, (res) => {
      res.on('data', onData);
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
      res.on('aborted', () => reject(new Error('aborted')));
    });
    req.on('error', reject);
    req.end();
  });
}

/** LIST once in pages as the agent does (lib/kube-watch.ts), then WATCH from its version for ever, resuming from the latest version seen. */
async function simulate(w: (typeof watches)[number], listSlot: () => Promise<() => void>): Promise<void> {
  let rv = '';
  for (;;) {
    if (!rv) {
      const release = await listSlot();
      try {
        let cont: string | undefined;
        do {
          const qs = new URLSearchParams({ ...(w.query ?? {}), limit: String(listPageSize), ...(cont ? { continue: cont } : {}) });
          let head = '';
          let tail = '';
          await get(`${w.path}?${qs}`, w.metadataOnly ? metadataOnlyAccept.list : 'application/json', (c) => {
            stats.bytes += c.length;
            if (head.length < 4096) head += c.toString('utf8', 0, Math.min(c.length, 4096));
            tail = (tail + c.toString('utf8', Math.max(0, c.length - 4096))).slice(-4096);
          });
          const meta = listMetadata(head, tail);
          cont = meta.continue;
          rv = meta.resourceVersion ?? '';
          stats.lists++;
        } while (cont);
      } catch {
        stats.failures++;
        rv = '';
        await new Promise((r) => setTimeout(r, 1000));
        continue;
      } finally {
        release();
      }
    }
    const params = new URLSearchParams({ ...(w.query ?? {}), watch: '1', resourceVersion: rv, allowWatchBookmarks: 'true' });
    stats.open++;
    // Lines are counted in the raw bytes; only the last complete one is kept, for its version.
    let partial: Buffer = Buffer.alloc(0);
    let lastLine: Buffer | undefined;
    try {
      await get(`${w.path}?${params}`, w.metadataOnly ? metadataOnlyAccept.watch : 'application/json', (c) => {
        stats.bytes += c.length;
        let from = 0;
        let nl = c.indexOf(10);
        let lastEnd = -1;
        let lastStart = 0;
        while (nl >= 0) {
          stats.events++;
          lastStart = from;
          lastEnd = nl;
          from = nl + 1;
          nl = c.indexOf(10, from);
        }
        if (lastEnd >= 0) {
          lastLine = lastStart === 0 && partial.length ? Buffer.concat([partial, c.subarray(0, lastEnd)]) : Buffer.from(c.subarray(lastStart, lastEnd));
          partial = Buffer.from(c.subarray(from));
        } else {
          partial = partial.length < 1 << 20 ? Buffer.concat([partial, c]) : partial;
        }
      });
    } catch {
      stats.failures++;
    }
    if (lastLine) {
      const line = lastLine.toString('utf8');
      if (line.includes('"code":410')) rv = '';
      else rv = /"resourceVersion":"(\d+)"/.exec(line)?.[1] ?? rv;
    }
    stats.open--;
  }
}

let running = 0;
const queue: (() => void)[] = [];
const limit = Number(values['list-concurrency']);
const listSlot = () =>
  new Promise<() => void>((resolve) => {
    const go = () => {
      running++;
      resolve(() => {
        running--;
        queue.shift()?.();
      });
    };
    if (running < limit) go();
    else queue.push(go);
  });

setInterval(() => process.stdout.write(`${JSON.stringify({ t: Date.now(), ...stats })}\n`), 1000);
for (let i = 0; i < agents; i++) for (const w of watches) void simulate(w, listSlot);
