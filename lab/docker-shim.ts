// `docker` for the lab's nodes, so that the plugin's `--restart kind` (which runs `docker restart
// NODE`, and `docker inspect` for when it started) works against the lab unchanged: put the lab's
// bin directory (STATE_DIR/bin, which holds a `docker` script calling this) first on PATH.
// It knows `restart`, `inspect` (with -f/--format '{{.Path.To.Field}}'), `exec` (without a
// terminal) and `ps`, for lab nodes only, and answers the way docker does, including its "No such
// container" error.
import { request } from 'node:http';
import { join } from 'node:path';

interface Inspect {
  Id: string;
  Name: string;
  State: { Status: string; Running: boolean; Pid: number; StartedAt: string; FinishedAt: string };
  Config: { Hostname: string; Image: string };
  NetworkSettings: { Networks: Record<string, { IPAddress: string }> };
}

function call<T>(stateDir: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: join(stateDir, 'control.sock'), method, path, timeout: 300_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d)).on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as T });
        } catch (err) {
          reject(err as Error);
        }
      });
    });
    req.on('error', (err) => reject(new Error(`Cannot connect to the lab at ${join(stateDir, 'control.sock')} (${err.message}). Is the lab running?`)));
    req.on('timeout', () => req.destroy(new Error('the lab did not answer in time')));
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** Evaluates the field paths of a Go template such as `{{.State.StartedAt}}` or `{{json .State}}`. */
export function formatTemplate(template: string, value: unknown): string {
  return template.replace(/\{\{\s*(json\s+)?\.([A-Za-z0-9_.]*)\s*\}\}/g, (_m, json: string | undefined, path: string) => {
    let v: unknown = value;
    for (const key of path.split('.').filter(Boolean)) v = (v as Record<string, unknown> | undefined)?.[key];
    if (json) return JSON.stringify(v ?? null);
    return v === undefined || v === null ? '<no value>' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  });
}

export async function dockerMain(argv: string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  let stateDir = process.env.CILIUM_MIGRATE_LAB_DIR ?? '/var/lib/cilium-migrate-lab';
  const args = [...argv];
  if (args[0] === '--state-dir') {
    stateDir = args[1] ?? stateDir;
    args.splice(0, 2);
  }
  const [command, ...rest] = args;
  if (command === 'exec') {
    // docker exec [-i] [-t] NODE CMD...: the first operand is the node, the rest its command.
    const at = rest.findIndex((a) => !a.startsWith('-'));
    const [node, ...argv] = at < 0 ? [] : rest.slice(at);
    if (!node || argv.length === 0) return err('"docker exec" requires at least 2 arguments.'), 1;
    const r = await call<{ code?: number; stdout?: string; stderr?: string; error?: string }>(stateDir, 'POST', `/exec?node=${encodeURIComponent(node)}`, argv);
    if (r.status === 404) return err(`Error response from daemon: No such container: ${node}`), 1;
    if (r.status !== 200) return err(`Error response from daemon: ${r.body.error ?? `HTTP ${r.status}`}`), 1;
    if (r.body.stdout) process.stdout.write(r.body.stdout);
    if (r.body.stderr) process.stderr.write(r.body.stderr);
    return r.body.code ?? 0;
  }
  const names: string[] = [];
  let format: string | undefined;
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (a === '-f' || a === '--format') format = rest[++i];
    else if (a.startsWith('--format=')) format = a.slice(9);
    else if (a === '-t' || a === '--time' || a === '--type') i++;
    else if (a.startsWith('-')) continue;
    else names.push(a);
  }
  const noSuch = (n: string) => err(`Error response from daemon: No such container: ${n}`);
  switch (command) {
    case 'restart': {
      if (names.length === 0) return err('"docker restart" requires at least 1 argument.'), 1;
      let code = 0;
      for (const n of names) {
        const r = await call<{ error?: string }>(stateDir, 'POST', `/restart-node?node=${encodeURIComponent(n)}`);
        if (r.status === 404) (noSuch(n), (code = 1));
        else if (r.status !== 200) (err(`Error response from daemon: Cannot restart container ${n}: ${r.body.error ?? `HTTP ${r.status}`}`), (code = 1));
        else out(n);
      }
      return code;
    }
    case 'inspect': {
      if (names.length === 0) return err('"docker inspect" requires at least 1 argument.'), 1;
      const found: Inspect[] = [];
      let code = 0;
      for (const n of names) {
        const r = await call<Inspect | { error: string }>(stateDir, 'GET', `/inspect?node=${encodeURIComponent(n)}`);
        if (r.status === 200) found.push(r.body as Inspect);
        else (noSuch(n), (code = 1));
      }
      if (format !== undefined) for (const f of found) out(formatTemplate(format, f));
      else out(JSON.stringify(found, null, 4));
      return code;
    }
    case 'ps': {
      const r = await call<{ nodes: { name: string; running: boolean; startedAt: string }[] }>(stateDir, 'GET', '/status');
      out('CONTAINER ID   IMAGE                                    STATUS    NAMES');
      for (const n of r.body.nodes) out(`${n.name.padEnd(14).slice(0, 14)} localhost/cilium-migrate-lab/node       ${n.running ? 'Up      ' : 'Exited  '}  ${n.name}`);
      return 0;
    }
    default:
      err(`docker (cilium-migrate lab): only restart, inspect, exec and ps of lab nodes are supported, not "${command ?? ''}"`);
      return 1;
  }
}

if (process.argv[1] !== undefined && /docker(-shim)?\.(ts|js)$/.test(process.argv[1])) {
  void dockerMain(process.argv.slice(2), (s) => process.stdout.write(`${s}\n`), (s) => process.stderr.write(`${s}\n`)).then(
    (code) => process.exit(code),
    (e: Error) => {
      process.stderr.write(`${e.message}\n`);
      process.exit(1);
    },
  );
}
