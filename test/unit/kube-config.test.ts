// Kubeconfig discovery: kubectl's order, and a clear ConfigError wherever client-node would
// silently fall back to http://localhost:8080.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError, ExitCode } from '../../lib/errors.js';
import { connect, k8s, loadKubeConfig, translateKubeError, type KubeEnvironment } from '../../lib/kube.js';

const dir = mkdtempSync(join(tmpdir(), 'kubeconfig-unit-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function kubeconfig(name: string, contexts: { name: string; server: string; namespace?: string }[], current?: string): string {
  const file = join(dir, name);
  const doc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: contexts.map((c) => ({ name: c.name, cluster: { server: c.server } })),
    users: [{ name: 'u', user: { token: 't' } }],
    contexts: contexts.map((c) => ({ name: c.name, context: { cluster: c.name, user: 'u', ...(c.namespace ? { namespace: c.namespace } : {}) } })),
    ...(current ? { 'current-context': current } : {}),
  };
  writeFileSync(file, JSON.stringify(doc));
  return file;
}

const env = (vars: NodeJS.ProcessEnv, home = join(dir, 'no-home')): KubeEnvironment => ({
  env: vars,
  home,
  exists: existsSync,
});

describe('loadKubeConfig', () => {
  const a = kubeconfig('a.yaml', [{ name: 'a', server: 'https://a.example:6443', namespace: 'team-a' }, { name: 'b', server: 'https://b.example:6443' }], 'a');
  const c = kubeconfig('c.yaml', [{ name: 'c', server: 'https://c.example:6443' }], 'c');

  it('uses --kubeconfig first, ignoring KUBECONFIG', () => {
    const kc = loadKubeConfig({ kubeconfig: a }, env({ KUBECONFIG: c }));
    assert.equal(kc.getCurrentCluster()?.server, 'https://a.example:6443');
  });

  it('merges KUBECONFIG files, the first file\'s current context winning', () => {
    const kc = loadKubeConfig({}, env({ KUBECONFIG: `${c}:${a}` }));
    assert.equal(kc.getCurrentContext(), 'c');
    assert.deepEqual(kc.getContexts().map((x) => x.name).sort(), ['a', 'b', 'c']);
  });

  it('skips KUBECONFIG entries that do not exist', () => {
    const kc = loadKubeConfig({}, env({ KUBECONFIG: `${join(dir, 'missing')}:${a}` }));
    assert.equal(kc.getCurrentContext(), 'a');
  });

  it('falls back to ~/.kube/config', () => {
    const home = join(dir, 'home');
    mkdirSync(join(home, '.kube'), { recursive: true });
    writeFileSync(join(home, '.kube', 'config'), readFileSync(c));
    const kc = loadKubeConfig({}, env({}, home));
    assert.equal(kc.getCurrentContext(), 'c');
  });

  it('refuses, instead of using localhost:8080, when there is no kubeconfig at all', () => {
    assert.throws(() => loadKubeConfig({}, env({})), (err: unknown) => err instanceof ConfigError && /no kubeconfig found/.test(err.message) && err.exitCode === ExitCode.config);
  });

  it('refuses a --kubeconfig that does not exist', () => {
    assert.throws(() => loadKubeConfig({ kubeconfig: join(dir, 'nope') }, env({})), /kubeconfig .*nope does not exist/);
  });

  it('refuses a KUBECONFIG whose files are all missing', () => {
    assert.throws(() => loadKubeConfig({}, env({ KUBECONFIG: join(dir, 'x') })), /none of the files in KUBECONFIG exists/);
  });

  it('refuses a file that is not a kubeconfig', () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, '{{{ not yaml');
    assert.throws(() => loadKubeConfig({ kubeconfig: bad }, env({})), (err: unknown) => err instanceof ConfigError && /cannot read kubeconfig/.test(err.message));
  });

  it('switches to --context, and names the known contexts when it is unknown', () => {
    assert.equal(loadKubeConfig({ kubeconfig: a, context: 'b' }, env({})).getCurrentCluster()?.server, 'https://b.example:6443');
    assert.throws(() => loadKubeConfig({ kubeconfig: a, context: 'zz' }, env({})), (err: unknown) => err instanceof ConfigError && /"zz"/.test(err.message) && /a, b/.test(err.hint ?? ''));
  });

  it('refuses a kubeconfig without a current context', () => {
    const none = kubeconfig('none.yaml', [{ name: 'n', server: 'https://n.example' }]);
    assert.throws(() => loadKubeConfig({ kubeconfig: none }, env({})), /no current context/);
  });

  it('takes the namespace from -n, then the context, then "default"', () => {
    assert.equal(connect({ kubeconfig: a, namespace: 'x' }, env({})).namespace, 'x');
    assert.equal(connect({ kubeconfig: a }, env({})).namespace, 'team-a');
    assert.equal(connect({ kubeconfig: a, context: 'b' }, env({})).namespace, 'default');
  });
});

describe('translateKubeError', () => {
  it('maps refused connections to the unreachable exit code with the server named', () => {
    const err = Object.assign(new Error('request failed'), { code: 'ECONNREFUSED' });
    const typed = translateKubeError(err, 'get nodes', 'https://x:6443');
    assert.equal(typed.exitCode, ExitCode.unreachable);
    assert.match(typed.message, /get nodes: cannot reach the API server at https:\/\/x:6443 \(ECONNREFUSED\)/);
  });

  it('finds a network code nested in error causes', () => {
    const err = new Error('fetch failed', { cause: Object.assign(new Error('inner'), { code: 'ENOTFOUND' }) });
    assert.equal(translateKubeError(err, 'get', 's').exitCode, ExitCode.unreachable);
  });

  it('maps API statuses: 401 unreachable, 403 forbidden, 404 not found, with the server\'s message', () => {
    const api = (code: number) => new k8s.ApiException(code, 'x', JSON.stringify({ kind: 'Status', message: `the message ${code}` }), {});
    const cases: [number, number, RegExp][] = [
      [401, ExitCode.unreachable, /refused the credentials \(401\)/],
      [403, ExitCode.forbidden, /forbidden: the message 403/],
      [404, ExitCode.notFound, /not found: the message 404/],
      [500, ExitCode.unreachable, /answered 500: the message 500/],
    ];
    for (const [code, exit, message] of cases) {
      const typed = translateKubeError(api(code), 'get node n', 'https://s');
      assert.equal(typed.exitCode, exit, `HTTP ${code}`);
      assert.match(typed.message, message);
    }
  });

  it('treats an unknown error as a bug', () => {
    assert.equal(translateKubeError(new Error('weird'), 'get', 's').exitCode, ExitCode.internal);
  });
});
