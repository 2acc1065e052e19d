// The bundled plugin as users meet it: discovered by real kubectl on PATH, reading the global
// flags itself, failing clearly (and with the documented exit code) when it has no cluster.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ExitCode } from '../../lib/errors.js';
import { freePort } from '../../lab/control-plane.js';
import { sharedControlPlane } from '../harness/shared-cluster.js';
import { pluginPathDir, runKubectl } from '../harness/plugin.js';

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

  it('fails with exit code 2 for an unknown command', async () => {
    const r = await runKubectl(kubectl, ['cilium-migrate', 'migrate-everything-now'], path.dir, bareEnv());
    assert.equal(r.code, ExitCode.usage);
    assert.match(r.stderr, /error: /);
  });
});
