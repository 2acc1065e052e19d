// Groups the plugin's requests (bench/request-trace.mjs's lines) by what they do: the verb (WATCH
// for ?watch=true, LIST for a GET of a collection) and the resource, its subresource, whether it
// names one object. Node and pod names are what differ between runs, so they are left out.

/** `GET /api/v1/namespaces/kube-system/pods?labelSelector=...` → `LIST pods`; `PATCH /api/v1/nodes/n1` → `PATCH nodes/NAME`. */
export function requestKind(line: string): string {
  const [method = '', target = ''] = line.split(' ');
  const [path = '', query = ''] = target.split('?');
  const parts = path.split('/').filter((p) => p.length > 0);
  // /api/v1/... or /apis/GROUP/VERSION/...; anything else (/version, /openapi) as it is.
  const rest = parts[0] === 'api' ? parts.slice(2) : parts[0] === 'apis' ? parts.slice(3) : undefined;
  if (!rest) return `${method} ${path}`;
  const scoped = rest[0] === 'namespaces' && rest.length > 2 ? rest.slice(2) : rest;
  const [resource = '', name, ...sub] = scoped;
  const watch = /(^|&)watch=(true|1)(&|$)/.test(query);
  const verb = watch ? 'WATCH' : method === 'GET' && name === undefined ? 'LIST' : method;
  return `${verb} ${resource}${name !== undefined ? '/NAME' : ''}${sub.length ? `/${sub.join('/')}` : ''}`;
}

/** Counts per kind, divided by `per` (the nodes of the run), largest first. */
export function requestKinds(lines: string[], per = 1): [string, number][] {
  const counts = new Map<string, number>();
  for (const l of lines) {
    if (!l.trim()) continue;
    const kind = requestKind(l.trim());
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
  }
  return [...counts].map(([k, n]) => [k, n / per] as [string, number]).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
}
