// Keeping a local copy of a collection with LIST once (in pages) and WATCH from then on (a
// reflector): the watch is resumed from the last resourceVersion after it closes or the API server
// goes away, and the collection is listed again only when the server says that version is gone
// (410). A reflector may ask for metadata only (PartialObjectMetadata: name, labels, annotations,
// versions; no spec or status), and may keep a smaller copy of each object than the server sent.
import type { LiteKube } from './kube-lite.js';

/** Objects per page of a reflector's LIST (limit/continue). */
export const listPageSize = 100;

/** Accept headers that make the API server answer with PartialObjectMetadata(List), falling back to the full objects. */
export const metadataOnlyAccept = {
  list: 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json',
  watch: 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json',
} as const;

export interface KubeObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

export interface Reflector {
  stop(): void;
  /** True once the first LIST has arrived. */
  synced(): boolean;
}

export interface ReflectOptions {
  /** Query parameters of the LIST and WATCH (labelSelector, fieldSelector). */
  query?: Record<string, string>;
  /** Called with the whole collection after the first LIST and after every change. */
  onChange(items: Map<string, KubeObject>): void;
  /** Told about failures worth a log line (the reflector retries by itself). */
  onError?(message: string): void;
  /** Back-off bounds between attempts after a failure. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Objects per page of the LIST (default 100). */
  pageSize?: number;
  /** Ask for metadata only: for a collection of which only names, labels and annotations matter. */
  metadataOnly?: boolean;
  /** What to keep of each object (default: all of it); it must keep metadata.name and namespace. */
  keep?(obj: KubeObject): KubeObject;
}

const keyOf = (o: KubeObject) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

/** Reflects the collection at `path` (e.g. /api/v1/nodes) until stopped. */
export function reflect(kube: LiteKube, path: string, opts: ReflectOptions): Reflector {
  let stopped = false;
  let isSynced = false;
  let current: AbortController | undefined;
  let wake: (() => void) | undefined;
  const minBackoff = opts.minBackoffMs ?? 500;
  const maxBackoff = opts.maxBackoffMs ?? 30_000;
  const sleep = (ms: number) => new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    wake = () => {
      clearTimeout(t);
      resolve();
    };
  });
  const query = opts.query ?? {};
  const keep = opts.keep ?? ((o: KubeObject) => o);

  // The LIST in pages: a page's text and parsed objects are garbage once its kept copies are taken,
  // where one answer for the whole collection (13 MB of JSON for 1,000 nodes' agent pods, Nodes and
  // CiliumNodes) made the agent's heap, and so its RSS, grow by several times that for good.
  const pageSize = opts.pageSize ?? listPageSize;
  const list = async (): Promise<{ items: Map<string, KubeObject>; rv: string }> => {
    const items = new Map<string, KubeObject>();
    let cont = '';
    for (;;) {
      const params = new URLSearchParams({ ...query, limit: String(pageSize), ...(cont ? { continue: cont } : {}) });
      const res = await kube.request('GET', `${path}?${params.toString()}`, opts.metadataOnly ? { accept: metadataOnlyAccept.list } : {});
      // 410 on a later page: the snapshot the pages come from was compacted away; list again.
      if (res.status === 410 && cont) throw new Error(`list ${path}: the continue token expired (HTTP 410)`);
      if (res.status !== 200) throw new Error(`list ${path}: HTTP ${res.status}`);
      const body = res.body as { items?: KubeObject[]; metadata?: { resourceVersion?: string; continue?: string } };
      for (const o of body.items ?? []) items.set(keyOf(o), keep(o));
      cont = body.metadata?.continue ?? '';
      if (!cont) return { items, rv: body.metadata?.resourceVersion ?? '' };
    }
  };

  const run = async () => {
    let backoff = minBackoff;
    while (!stopped) {
      // LIST
      let items: Map<string, KubeObject>;
      let rv: string;
      try {
        ({ items, rv } = await list());
      } catch (err) {
        opts.onError?.(`list ${path} failed (${(err as Error).message}); retrying in ${Math.round(backoff / 1000)}s`);
        await sleep(backoff);
        backoff = Math.min(backoff * 2, maxBackoff);
        continue;
      }
      isSynced = true;
      opts.onChange(items);

      // WATCH, resumed from the last version seen, until the server says it is gone.
      let gone = false;
      while (!stopped && !gone) {
        const ctl = new AbortController();
        current = ctl;
        if (stopped) ctl.abort();
        const params = new URLSearchParams({ ...query, watch: '1', resourceVersion: rv, allowWatchBookmarks: 'true' });
        let outcome: 'closed' | 'error' = 'closed';
        let reason = '';
        try {
          await kube.watch(`${path}?${params.toString()}`, (event) => {
            const { type, object: obj } = event as { type: string; object: KubeObject & { code?: number } };
            if (type === 'ERROR') {
              if (obj.code === 410) {
                gone = true;
                ctl.abort();
              }
              return;
            }
            if (obj.metadata?.resourceVersion) rv = obj.metadata.resourceVersion;
            if (type === 'BOOKMARK') return;
            if (type === 'DELETED') items.delete(keyOf(obj));
            else items.set(keyOf(obj), keep(obj));
            backoff = minBackoff;
            opts.onChange(items);
          }, ctl.signal, opts.metadataOnly ? { accept: metadataOnlyAccept.watch } : {});
        } catch (err) {
          outcome = 'error';
          reason = (err as Error).message;
        }
        if (stopped) return;
        if (gone) break;
        if (outcome === 'error') {
          opts.onError?.(`watch ${path} broke (${reason}); resuming from resourceVersion ${rv} in ${Math.round(backoff / 1000)}s`);
          await sleep(backoff);
          backoff = Math.min(backoff * 2, maxBackoff);
        }
      }
      if (gone) opts.onError?.(`watch ${path}: resourceVersion ${rv} is gone; listing again`);
    }
  };
  void run();
  return {
    stop() {
      stopped = true;
      current?.abort();
      wake?.();
    },
    synced: () => isSynced,
  };
}
