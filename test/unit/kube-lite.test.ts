// The agent's small Kubernetes client: where its credentials come from.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { liteCredentials } from '../../lib/kube-lite.js';
import { ExitCode, type CliError } from '../../lib/errors.js';

describe('liteCredentials', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kube-lite-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const kubeconfig = (name: string, user: Record<string, unknown>, cluster: Record<string, unknown> = { server: 'https://127.0.0.1:6443', 'certificate-authority': 'ca.crt' }) => {
    const file = join(dir, name);
    writeFileSync(file, stringify({ 'current-context': 'c', contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }], clusters: [{ name: 'k', cluster }], users: [{ name: 'u', user }] }));
    return file;
  };
  writeFileSync(join(dir, 'ca.crt'), 'CA');
  writeFileSync(join(dir, 'client.crt'), 'CERT');
  writeFileSync(join(dir, 'client.key'), 'KEY');
  writeFileSync(join(dir, 'token'), 'file-token\n');

  it('reads a client certificate by paths relative to the kubeconfig', () => {
    const c = liteCredentials(kubeconfig('certs.yaml', { 'client-certificate': 'client.crt', 'client-key': join(dir, 'client.key') }), {});
    assert.equal(c.server, 'https://127.0.0.1:6443');
    assert.equal(c.ca?.toString(), 'CA');
    assert.equal(c.cert?.toString(), 'CERT');
    assert.equal(c.key?.toString(), 'KEY');
    assert.equal(c.token, undefined);
  });

  it('reads inline data and tokens, a token file on every request', () => {
    const data = liteCredentials(kubeconfig('data.yaml', { token: 'inline' }, { server: 'https://k:443', 'certificate-authority-data': Buffer.from('CA2').toString('base64') }), {});
    assert.equal(data.ca?.toString(), 'CA2');
    assert.equal(data.token?.(), 'inline');
    const file = liteCredentials(kubeconfig('tokenfile.yaml', { tokenFile: 'token' }), {});
    assert.equal(file.token?.(), 'file-token');
    writeFileSync(join(dir, 'token'), 'rotated\n');
    assert.equal(file.token?.(), 'rotated');
  });

  it('takes $KUBECONFIG\'s first file when no path is given', () => {
    const c = liteCredentials(undefined, { KUBECONFIG: `${kubeconfig('env.yaml', { token: 't' })}:/nonexistent` });
    assert.equal(c.token?.(), 't');
  });

  it('uses the pod\'s service account in a pod', () => {
    const sa = join(dir, 'sa');
    mkdirSync(sa);
    writeFileSync(join(sa, 'ca.crt'), 'SA-CA');
    writeFileSync(join(sa, 'token'), 'sa-token\n');
    const c = liteCredentials(undefined, { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }, sa);
    assert.equal(c.server, 'https://10.96.0.1:443');
    assert.equal(c.ca?.toString(), 'SA-CA');
    assert.equal(c.token?.(), 'sa-token');
  });

  it('refuses exec credentials and a context without a cluster, as configuration errors', () => {
    assert.throws(() => liteCredentials(kubeconfig('exec.yaml', { exec: { command: 'aws' } }), {}), (e: CliError) => e.exitCode === ExitCode.config && /exec and auth-provider/.test(e.message));
    const broken = join(dir, 'broken.yaml');
    writeFileSync(broken, stringify({ 'current-context': 'missing' }));
    assert.throws(() => liteCredentials(broken, {}), (e: CliError) => e.exitCode === ExitCode.config && /names no cluster/.test(e.message));
  });
});
