// The bundled plugin as users meet it: discovered by real kubectl on PATH, reading the global
// flags itself, failing clearly (and with the documented exit code) when it has no cluster.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ExitCode } from '../../lib/errors.js';
import { freePort } from '../../lab/control-plane.js';
import { sharedControlPlane } from '../harness/shared-cluster.js';
import { pluginPathDir, runKubectl, runPlugin } from '../harness/plugin.js';

describe('kubectl cilium-migrate through kubectl plugin discovery', () => {
  let path: ReturnType<typeof pluginPathDir>;
  let kubectl: string;
  let emptyHome: string;
  before(async () => {
    const cp = await sharedControlPlane();
    kubectl = join(cp.binDir, 'kubectl');
    path = pluginPathDir();
    emptyHome = mkdtempSync(join(tmpdir(), 'empty-home-'));
  });
  after(() => {
    path?.dispose();
    if (emptyHome) rmSync(emptyHome, { recursive: true, force: true });
  });
  // No kubeconfig anywhere unless a test passes one.
  const bareEnv = () => ({ PATH: process.env.PATH ?? '', HOME: emptyHome });

  it('is listed by kubectl plugin list', async () => {
    const r = await runKubectl(kubectl, ['plugin', 'list'], path.dir, bareEnv());
    assert.match(r.stdout, /kubectl-cilium_migrate/);
  });

  it('answers --help through kubectl with the commands and global flags', async () => {
    const r = await runKubectl(kubectl, ['cilium-migrate', '--help'], path.dir, bareEnv());
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^kubectl cilium-migrate <command>/);
    for (const flag of ['--kubeconfig', '--context', '--namespace', '--output', '--verbose']) assert.match(r.stdout, new RegExp(flag));
    assert.match(r.stdout, /Exit codes:/);
  });

  it('answers --version with the package version', async () => {
    const r = await runKubectl(kubectl, ['cilium-migrate', '--version'], path.dir, bareEnv());
    assert.equal(r.code, 0);
    assert.match(r.stdout.trim(), /^\d+\.\d+\.\d+/);
  });

  it('reads --kubeconfig after the plugin name and reports the server version', async () => {
    const cp = await sharedControlPlane();
    const r = await runKubectl(kubectl, ['cilium-migrate', 'version', '--kubeconfig', cp.kubeconfig, '-o', 'json'], path.dir, bareEnv());
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { serverVersion: string; server: string };
    assert.equal(report.serverVersion, 'v1.36.5');
    assert.equal(report.server, cp.server);
  });

  it('fails with exit code 3 and a clear message when there is no kubeconfig, instead of trying localhost:8080', async () => {
    const r = await runKubectl(kubectl, ['cilium-migrate', 'version'], path.dir, bareEnv());
    assert.equal(r.code, ExitCode.config);
    assert.match(r.stderr, /no kubeconfig found/);
    assert.doesNotMatch(r.stderr, /ECONNREFUSED|connect to|\n\s+at /, 'no connection attempted, no stack trace');
  });

  it('fails with exit code 3 for an unknown --context, naming the known ones', async () => {
    const cp = await sharedControlPlane();
    const r = await runKubectl(kubectl, ['cilium-migrate', 'version', '--kubeconfig', cp.kubeconfig, '--context', 'nope'], path.dir, bareEnv());
    assert.equal(r.code, ExitCode.config);
    assert.match(r.stderr, /context "nope" is not in the kubeconfig/);
    assert.match(r.stderr, /cilium-migrate-test/);
  });

  it('fails with exit code 4 and one line when the cluster is unreachable', async () => {
    const port = await freePort();
    const file = join(emptyHome, 'unreachable.kubeconfig');
    writeFileSync(file, `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:${port}", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`);
    const r = await runKubectl(kubectl, ['cilium-migrate', 'version', '--kubeconfig', file], path.dir, bareEnv());
    assert.equal(r.code, ExitCode.unreachable);
    assert.match(r.stderr, new RegExp(`cannot reach the API server at https://127.0.0.1:${port} \\(ECONNREFUSED\\)`));
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  });

  it('refuses bad input (exit 2, one line) before any connection: the bundled binary as users run it', async () => {
    // A kubeconfig pointing at a listener that counts connections and answers none.
    let connections = 0;
    const listener = createServer((socket) => {
      connections++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    const file = join(emptyHome, 'counting.kubeconfig');
    writeFileSync(file, `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:${(listener.address() as { port: number }).port}", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`);
    try {
      const cases: [string[], RegExp][] = [
        [['node', 'w1', '--parallelism', '10x'], /^error: --parallelism "10x": expected a whole number from 1 to 100\n$/],
        [['node', 'w1', '--grace-period', 'abc'], /^error: --grace-period "abc": expected a whole number from -1 to 86400\n$/],
        [['node', ''], /^error: node "": expected a node name \(a DNS-1123 subdomain[^\n]*\n$/],
        [['node', 'w1', '--drain-timeout=-5s'], /^error: --drain-timeout "-5s": expected a duration from 1s to 24h[^\n]*\n$/],
        [['run', '--restart', 'exec'], /^error: --restart exec needs --restart-command[^\n]*\n$/],
      ];
      for (const [args, message] of cases) {
        const r = await runPlugin(['--kubeconfig', file, ...args], { env: bareEnv() });
        assert.equal(r.code, ExitCode.usage, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, message);
      }
      assert.equal(connections, 0, 'no connection attempted');
      // The listener does see a command that gets past its input.
      const reached = await runPlugin(['--kubeconfig', file, 'node', 'w1', '--restart', 'none'], { env: bareEnv() });
      assert.equal(reached.code, ExitCode.unreachable, reached.stderr);
      assert.ok(connections > 0);
    } finally {
      listener.close();
    }
  });

  it('fails with exit code 2 for an unknown command', async () => {
    const r = await runKubectl(kubectl, ['cilium-migrate', 'migrate-everything-now'], path.dir, bareEnv());
    assert.equal(r.code, ExitCode.usage);
    assert.match(r.stderr, /error: /);
  });
});
