// The CiliumNodeConfig of the migration (the seed's): nodes labelled `<label>=true` get Cilium as
// their CNI when their Cilium agent restarts. manifests/ciliumnodeconfig.yaml is the same object for
// people who apply it by hand; a unit test keeps the two equal.
import { parse } from 'yaml';
import { ciliumNamespace, ciliumNodeConfigName, migrationLabel } from '../../lib/defaults.js';
import { PreconditionError } from '../../lib/errors.js';
import { call, statusCode, type Kube } from '../../lib/kube.js';
import { type ManifestObject } from '../../lib/kube-objects.js';

export interface NodeConfigOptions {
  /** The served CiliumNodeConfig version: v2 from Cilium 1.16, v2alpha1 for 1.13 to 1.15. */
  version: string;
  name?: string;
  namespace?: string;
  labelKey?: string;
}

/** The CiliumNodeConfig object. */
export function ciliumNodeConfig(o: NodeConfigOptions): ManifestObject {
  return {
    apiVersion: `cilium.io/${o.version}`,
    kind: 'CiliumNodeConfig',
    metadata: { namespace: o.namespace ?? ciliumNamespace, name: o.name ?? ciliumNodeConfigName },
    spec: {
      nodeSelector: { matchLabels: { [o.labelKey ?? migrationLabel]: 'true' } },
      defaults: {
        // Cilium writes its CNI config only once it is ready on the node, and (cni-exclusive)
        // renames the legacy one to *.cilium_bak, so new pods get Cilium addresses from then on.
        'write-cni-conf-when-ready': '/host/etc/cni/net.d/05-cilium.conflist',
        'custom-cni-conf': 'false',
        'cni-chaining-mode': 'none',
        'cni-exclusive': 'true',
      },
    },
  };
}

/** The version to use among the served ones: v2 when served, else the newest alpha. */
export function preferredNodeConfigVersion(served: string[]): string | undefined {
  if (served.includes('v2')) return 'v2';
  return [...served].sort().reverse()[0];
}

/** The served versions of ciliumnodeconfigs.cilium.io; empty when the CRD is not installed. */
export async function servedNodeConfigVersions(kube: Kube): Promise<string[]> {
  const crd = await call(kube, 'get crd ciliumnodeconfigs.cilium.io', async () => {
    try {
      return await kube.extensions.readCustomResourceDefinition({ name: 'ciliumnodeconfigs.cilium.io' });
    } catch (err) {
      if (statusCode(err) === 404) return undefined;
      throw err;
    }
  });
  return crd?.spec.versions.filter((v) => v.served).map((v) => v.name) ?? [];
}

/** The served version, or a precondition error saying Cilium (1.13+) must be installed first. */
export async function nodeConfigVersion(kube: Kube): Promise<string> {
  const version = preferredNodeConfigVersion(await servedNodeConfigVersions(kube));
  if (version === undefined) {
    throw new PreconditionError('the CiliumNodeConfig API (ciliumnodeconfigs.cilium.io) is not served', 'install Cilium 1.13 or newer in migration mode first (kubectl cilium-migrate values --phase initial)');
  }
  return version;
}

/** Every object in a multi-document YAML text, for applying; a clear error for what is not one. */
export function parseManifests(text: string, source: string): ManifestObject[] {
  const out: ManifestObject[] = [];
  let docs: unknown[];
  try {
    docs = text.split(/^---\s*$/m).map((d) => parse(d) as unknown);
  } catch (err) {
    throw new PreconditionError(`${source}: not valid YAML: ${(err as Error).message}`);
  }
  for (const doc of docs) {
    if (doc === null || doc === undefined) continue;
    const o = doc as Partial<ManifestObject> & { items?: unknown[] };
    if (o.kind === 'List' && Array.isArray(o.items)) {
      out.push(...parseManifests(o.items.map((i) => JSON.stringify(i)).join('\n---\n'), source));
      continue;
    }
    if (typeof o.apiVersion !== 'string' || typeof o.kind !== 'string' || typeof o.metadata?.name !== 'string') {
      throw new PreconditionError(`${source}: a document without apiVersion, kind and metadata.name`, 'pass the output of `kubectl kustomize manifests/agent` (or manifests/monitoring) or plain manifests');
    }
    out.push(o as ManifestObject);
  }
  return out;
}
