// The lab's admin kubeconfig for the machine: self-contained (certificates inline), so that it works
// from any directory, for the plugin, kubectl and the tests alike.
import { readFileSync, writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import type { ControlPlane } from './control-plane.js';

/** Writes the admin kubeconfig of `cp` to `file` (mode 600), its cluster, user and context named as given. */
export function writeAdminKubeconfig(cp: ControlPlane, file: string, names: { cluster: string; user: string }): void {
  const source = readFileSync(cp.kubeconfig, 'utf8');
  const cert = /client-certificate: (.+)/.exec(source)?.[1]?.trim();
  const key = /client-key: (.+)/.exec(source)?.[1]?.trim();
  if (!cert || !key) throw new Error(`cannot read the admin credentials from ${cp.kubeconfig}`);
  const b64 = (f: string) => readFileSync(f).toString('base64');
  writeFileSync(file, stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: names.cluster, cluster: { server: cp.server, 'certificate-authority-data': b64(cp.pki.caCert) } }],
    users: [{ name: names.user, user: { 'client-certificate-data': b64(cert), 'client-key-data': b64(key) } }],
    contexts: [{ name: names.cluster, context: { cluster: names.cluster, user: names.user } }],
    'current-context': names.cluster,
  }), { mode: 0o600 });
}
