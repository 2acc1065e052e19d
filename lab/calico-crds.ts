// Calico's real CRDs (IPPool, FelixConfiguration, and the Tigera operator's Installation) for the
// tests, taken at test time from the projectcalico/calico Go module, which carries them
// (libcalico-go/config/crd/, charts/tigera-operator/crds/); nothing of Calico is copied into the
// repository. The module proxy refuses Calico's release tags (v3.x: "403 Forbidden: This module
// version is not available", the module path has no /v3 suffix) but serves commits by pseudo-version:
// this one is a master commit of 2025-08-13, pinned with its checksum.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ControlPlane } from './control-plane.js';
import { waitEstablished } from './cluster-objects.js';
import { waitUntil } from './wait.js';

const execFileAsync = promisify(execFile);

export const calicoModule = {
  path: 'github.com/projectcalico/calico',
  version: 'v1.11.0-cni-plugin.0.20250813170300-a0db560f0520',
  sum: 'h1:TXnPEzx4pLWgwzCetIO/VJuz4iBZZrOdNSv16a50YqE=',
};

/** The CRD files, as paths inside the module. */
export const calicoCrdFiles = [
  'libcalico-go/config/crd/crd.projectcalico.org_ippools.yaml',
  'libcalico-go/config/crd/crd.projectcalico.org_felixconfigurations.yaml',
  'charts/tigera-operator/crds/operator.tigera.io_installations_crd.yaml',
];

/**
 * The module's directory in the Go module cache (outside the repository), downloading it (about
 * 9 MB) the first time; throws with go's own words when the proxy refuses it.
 */
export async function calicoModuleDir(): Promise<string> {
  const ref = `${calicoModule.path}@${calicoModule.version}`;
  let out: string;
  try {
    // GOFLAGS from the caller (-mod=readonly for the wrapper modules) means nothing outside a module.
    ({ stdout: out } = await execFileAsync('go', ['mod', 'download', '-json', ref], { env: { ...process.env, GOFLAGS: '', GOTOOLCHAIN: 'local' }, cwd: '/', timeout: 600_000, maxBuffer: 16 * 1024 * 1024 }));
  } catch (err) {
    const e = err as { stdout?: string; message: string };
    const reported = /"Error":\s*"([^"]*)"/.exec(e.stdout ?? '')?.[1];
    throw new Error(`go mod download ${ref} failed: ${reported ?? e.message}`);
  }
  const info = JSON.parse(out) as { Dir?: string; Sum?: string; Error?: string };
  if (info.Error || !info.Dir) throw new Error(`go mod download ${ref} failed: ${info.Error ?? 'no directory'}`);
  if (info.Sum !== calicoModule.sum) throw new Error(`go mod download ${ref}: checksum ${info.Sum}, expected ${calicoModule.sum}`);
  return info.Dir;
}

/** Applies Calico's CRDs to the control plane and waits until they are served. */
export async function installCalicoCrds(cp: ControlPlane): Promise<void> {
  const dir = await calicoModuleDir();
  for (const file of calicoCrdFiles) await cp.kubectl(['apply', '--server-side', '-f', join(dir, file)]);
  await waitEstablished(cp, ['ippools.crd.projectcalico.org', 'felixconfigurations.crd.projectcalico.org', 'installations.operator.tigera.io']);
  // Established comes before the API server's cache of a new resource is filled (until then a LIST
  // answers 429 "storage is (re)initializing"), the more so for the Installation's 1.3 MB schema.
  await waitUntil('Calico\'s resources to be listable', async () => {
    await cp.kubectl(['get', 'ippools.crd.projectcalico.org,felixconfigurations.crd.projectcalico.org,installations.operator.tigera.io']);
    return true;
  }, 60_000, 250);
}
