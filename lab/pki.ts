// The certificates a private control plane needs: a CA, the API server's serving certificate and
// client certificates for users, made with the openssl command line (OpenSSL 3).
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Pki {
  dir: string;
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  /** Key pair that signs and verifies service account tokens. */
  saKey: string;
  saPub: string;
}

export interface ClientCert {
  cert: string;
  key: string;
}

const keyArgs = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args);
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new Error(`openssl ${args[0]} failed: ${stderr.trim() || String(err)}`);
  }
}

/** Creates a CA, a serving certificate for `serverIps`/`serverNames` and the service account keys. */
export async function createPki(dir: string, serverIps: string[], serverNames: string[]): Promise<Pki> {
  const pki: Pki = {
    dir,
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    serverCert: join(dir, 'apiserver.crt'),
    serverKey: join(dir, 'apiserver.key'),
    saKey: join(dir, 'sa.key'),
    saPub: join(dir, 'sa.pub'),
  };
  await openssl(['req', '-x509', ...keyArgs, '-keyout', pki.caKey, '-out', pki.caCert, '-days', '3650', '-subj', '/CN=cilium-migrate-test-ca']);
  const san = [...serverIps.map((ip) => `IP:${ip}`), ...serverNames.map((n) => `DNS:${n}`)].join(',');
  await openssl([
    'req', '-x509', ...keyArgs, '-CA', pki.caCert, '-CAkey', pki.caKey,
    '-keyout', pki.serverKey, '-out', pki.serverCert, '-days', '3650', '-subj', '/CN=kube-apiserver',
    '-addext', `subjectAltName=${san}`, '-addext', 'extendedKeyUsage=serverAuth', '-addext', 'basicConstraints=critical,CA:FALSE',
  ]);
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  await writeFile(pki.saKey, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  await writeFile(pki.saPub, publicKey.export({ type: 'spki', format: 'pem' }));
  return pki;
}

/**
 * etcd's own certificates, from a CA of its own (so no Kubernetes client certificate opens etcd):
 * a serving certificate (which is also its peer certificate) for the loopback, and the one client
 * certificate the API server uses. etcd then requires a certificate from this CA for every client
 * and peer connection (issue: the lab's etcd must not be an unauthenticated TCP port).
 */
export interface EtcdPki {
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

export async function createEtcdPki(dir: string, serverIps: string[]): Promise<EtcdPki> {
  const f = (name: string) => join(dir, name);
  const pki: EtcdPki = { caCert: f('etcd-ca.crt'), serverCert: f('etcd-server.crt'), serverKey: f('etcd-server.key'), clientCert: f('etcd-client.crt'), clientKey: f('etcd-client.key') };
  const caKey = f('etcd-ca.key');
  await openssl(['req', '-x509', ...keyArgs, '-keyout', caKey, '-out', pki.caCert, '-days', '3650', '-subj', '/CN=cilium-migrate-etcd-ca']);
  await openssl([
    'req', '-x509', ...keyArgs, '-CA', pki.caCert, '-CAkey', caKey,
    '-keyout', pki.serverKey, '-out', pki.serverCert, '-days', '3650', '-subj', '/CN=etcd',
    '-addext', `subjectAltName=${[...serverIps.map((ip) => `IP:${ip}`), 'DNS:localhost'].join(',')}`,
    '-addext', 'extendedKeyUsage=serverAuth,clientAuth', '-addext', 'basicConstraints=critical,CA:FALSE',
  ]);
  await openssl([
    'req', '-x509', ...keyArgs, '-CA', pki.caCert, '-CAkey', caKey,
    '-keyout', pki.clientKey, '-out', pki.clientCert, '-days', '3650', '-subj', '/CN=kube-apiserver-etcd-client',
    '-addext', 'extendedKeyUsage=clientAuth', '-addext', 'basicConstraints=critical,CA:FALSE',
  ]);
  return pki;
}

/** Issues a client certificate for user `name` in `groups` (O= fields), signed by the CA. */
export async function issueClientCert(pki: Pki, name: string, groups: string[]): Promise<ClientCert> {
  const base = join(pki.dir, `user-${name.replace(/[^a-zA-Z0-9_.-]/g, '_')}`);
  const subject = `/CN=${name}` + groups.map((g) => `/O=${g}`).join('');
  const out = { cert: `${base}.crt`, key: `${base}.key` };
  await openssl([
    'req', '-x509', ...keyArgs, '-CA', pki.caCert, '-CAkey', pki.caKey,
    '-keyout', out.key, '-out', out.cert, '-days', '3650', '-subj', subject,
    '-addext', 'extendedKeyUsage=clientAuth', '-addext', 'basicConstraints=critical,CA:FALSE',
  ]);
  return out;
}
