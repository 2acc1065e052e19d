// The lab's registry mirror: a read-only OCI distribution endpoint serving the images the lab built
// (lab/images), so that a pull, which imagePullPolicy Always asks for (the default for `:latest`,
// as in the seed's `kubectl create deployment nginx --image nginx` and `kubectl run --image
// alpine`), finds the same image that was imported, without any registry outside the lab. Every
// node's containerd sends every registry's pulls here (/etc/containerd/certs.d/_default); an image
// the lab did not build is answered 404, so it fails as an unreachable registry would.
//
//   registry.js --listen 172.18.0.1:5000 --blobs DIR --index FILE   (inside the lab's underlay)
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

/** reference (as containerd names it: registry/repository:tag) -> manifest digest. */
export type RegistryIndex = Record<string, string>;

const manifestType = 'application/vnd.oci.image.manifest.v1+json';

/** Serves `index` from the blob store `blobs` (BLOBS/sha256/HEX). */
export function registryServer(blobs: string, index: RegistryIndex): Server {
  const blobPath = (digest: string) => (/^sha256:[0-9a-f]{64}$/.test(digest) ? join(blobs, 'sha256', digest.slice(7)) : undefined);
  const digests = new Set(Object.values(index));
  return createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://registry');
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && !head) return void res.writeHead(405).end();
    res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
    if (url.pathname === '/v2/' || url.pathname === '/v2') return void res.writeHead(200, { 'content-type': 'application/json' }).end(head ? undefined : '{}');
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname);
    if (!m) return void res.writeHead(404).end();
    const [, repository, kind, ref] = m as unknown as [string, string, string, string];
    // containerd names the registry a mirror stands in for with ?ns=.
    const registry = url.searchParams.get('ns') ?? 'docker.io';
    let digest: string | undefined;
    if (kind === 'manifests') digest = ref.startsWith('sha256:') ? (digests.has(ref) ? ref : undefined) : index[`${registry}/${repository}:${ref}`];
    else digest = ref;
    const file = digest === undefined ? undefined : blobPath(digest);
    if (file === undefined || !existsSync(file)) {
      return void res.writeHead(404, { 'content-type': 'application/json' }).end(head ? undefined : JSON.stringify({ errors: [{ code: kind === 'manifests' ? 'MANIFEST_UNKNOWN' : 'BLOB_UNKNOWN', message: `${registry}/${repository} ${ref}: not built by the lab` }] }));
    }
    const headers = {
      'content-type': kind === 'manifests' ? manifestType : 'application/octet-stream',
      'content-length': String(statSync(file).size),
      'docker-content-digest': digest!,
    };
    res.writeHead(200, headers);
    if (head) return void res.end();
    createReadStream(file).pipe(res);
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { listen: { type: 'string' }, blobs: { type: 'string' }, index: { type: 'string' } } });
  const m = /^(.+):(\d+)$/.exec(values.listen ?? '');
  if (!m || !values.blobs || !values.index) {
    process.stderr.write('usage: registry --listen HOST:PORT --blobs DIR --index FILE\n');
    process.exit(2);
  }
  const server = registryServer(values.blobs, JSON.parse(readFileSync(values.index, 'utf8')) as RegistryIndex);
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(Number(m[2]), m[1], resolve));
  process.stdout.write(`registry mirror on ${values.listen}\n`);
  const stop = () => server.close(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (process.argv[1] !== undefined && /registry\.(ts|js)$/.test(process.argv[1])) void main();
