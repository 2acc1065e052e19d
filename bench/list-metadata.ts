// A list answer's own metadata read from its first and last bytes, for the benchmarks' load
// clients, which receive bodies without parsing them (the cost they measure is the API server's).

/**
 * The list's own metadata (resourceVersion, continue) from the first and last bytes of its answer,
 * without parsing it: a core list names it before its items, a custom resource's list after them.
 */
export function listMetadata(head: string, tail: string): { resourceVersion?: string; continue?: string } {
  const before = head.slice(0, Math.max(0, head.indexOf('"items":')));
  const meta = /"metadata":\{[^{}]*\}/.exec(before)?.[0] ?? tail.slice(tail.lastIndexOf('"metadata":{'));
  return { resourceVersion: /"resourceVersion":"([^"]+)"/.exec(meta)?.[1], continue: /"continue":"([^"]+)"/.exec(meta)?.[1] };
}
