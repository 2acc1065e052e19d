// OCI images without a container engine: a directory tree becomes a layer (an uncompressed tar
// made by GNU tar, deterministic: sorted, mtime 0), layers and a config become an image manifest,
// and manifests become an OCI image layout archive that `ctr -n k8s.io images import` takes, each
// manifest annotated with the name containerd stores it under (io.containerd.image.name).
//
// Blobs live in one content-addressed store (BLOBS/sha256/HEX), so a base layer that many images
// share is written, kept and archived once.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const mediaTypes = {
  layer: 'application/vnd.oci.image.layer.v1.tar',
  config: 'application/vnd.oci.image.config.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  index: 'application/vnd.oci.image.index.v1+json',
} as const;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string };
}

/** The runtime settings of an image (the OCI config's `config` section). */
export interface ImageConfig {
  Entrypoint?: string[];
  Cmd?: string[];
  Env?: string[];
  WorkingDir?: string;
  User?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
}

export class BlobStore {
  constructor(readonly root: string) {
    mkdirSync(join(root, 'sha256'), { recursive: true });
  }

  path(digest: string): string {
    return join(this.root, 'sha256', digest.replace(/^sha256:/, ''));
  }

  has(digest: string): boolean {
    return existsSync(this.path(digest));
  }

  /** Stores `data` and returns its descriptor. */
  putBytes(data: Buffer | string, mediaType: string): Descriptor {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    if (!this.has(digest)) atomicWrite(this.path(digest), bytes);
    return { mediaType, digest, size: bytes.length };
  }

  /** Moves the file at `file` into the store (same file system) and returns its descriptor. */
  async putFile(file: string, mediaType: string): Promise<Descriptor> {
    const digest = `sha256:${await sha256File(file)}`;
    const size = statSync(file).size;
    if (this.has(digest)) rmSync(file, { force: true });
    else renameSync(file, this.path(digest));
    return { mediaType, digest, size };
  }
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function atomicWrite(file: string, data: Buffer): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.tmp.${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, file);
}

/**
 * A layer from the tree under `dir`, stored as a blob. `rootOwned` makes every entry owned by
 * root (for files we place); otherwise owners are kept (a Debian root file system has a few
 * non-root directories). /dev, /proc and /sys stay empty: the runtime provides them.
 */
export async function layerFromDir(store: BlobStore, dir: string, opts: { rootOwned?: boolean } = {}): Promise<Descriptor> {
  const tmp = join(store.root, `layer.tmp.${process.pid}.${Date.now()}`);
  try {
    await run('tar', [
      '--create', `--file=${tmp}`, `--directory=${dir}`,
      '--sort=name', '--numeric-owner', '--mtime=@0', '--format=posix',
      '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime',
      ...(opts.rootOwned ? ['--owner=0', '--group=0'] : []),
      '--exclude=./dev/*', '--exclude=./proc/*', '--exclude=./sys/*',
      '.',
    ], { maxBuffer: 16 * 1024 * 1024 });
    return await store.putFile(tmp, mediaTypes.layer);
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** An image manifest for `layers` (bottom first) and `config`; returns the manifest's descriptor. */
export function writeImage(store: BlobStore, layers: Descriptor[], config: ImageConfig): Descriptor {
  const configBlob = store.putBytes(JSON.stringify({
    created: '1970-01-01T00:00:00Z',
    architecture: 'amd64',
    os: 'linux',
    config,
    // Uncompressed layers: each layer's diff ID is its digest.
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
  }), mediaTypes.config);
  return store.putBytes(JSON.stringify({
    schemaVersion: 2,
    mediaType: mediaTypes.manifest,
    config: configBlob,
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  }), mediaTypes.manifest);
}

/** The blobs a manifest refers to, itself included. */
export function blobsOf(store: BlobStore, manifest: Descriptor): string[] {
  const m = JSON.parse(readFileSync(store.path(manifest.digest), 'utf8')) as { config: Descriptor; layers: Descriptor[] };
  return [manifest.digest, m.config.digest, ...m.layers.map((l) => l.digest)];
}

/** A tagged image: the names containerd should store it under, and its manifest. */
export interface NamedImage {
  names: string[];
  manifest: Descriptor;
}

/**
 * Writes one OCI image layout archive holding every image in `images` (shared blobs once) to
 * `out`: `ctr -n k8s.io images import out` then stores each under each of its names.
 */
export async function writeArchive(store: BlobStore, images: NamedImage[], out: string): Promise<void> {
  const manifests: Descriptor[] = [];
  const blobs = new Set<string>();
  for (const image of images) {
    for (const d of blobsOf(store, image.manifest)) blobs.add(d);
    for (const name of image.names) {
      manifests.push({
        ...image.manifest,
        annotations: { 'io.containerd.image.name': name, 'org.opencontainers.image.ref.name': tagOf(name) },
        platform: { architecture: 'amd64', os: 'linux' },
      });
    }
  }
  const meta = mkdtempSync(join(dirname(out), '.layout-'));
  try {
    writeFileSync(join(meta, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    writeFileSync(join(meta, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: mediaTypes.index, manifests }));
    const tmp = `${out}.tmp.${process.pid}`;
    const blobPaths = [...blobs].map((d) => `blobs/sha256/${d.replace(/^sha256:/, '')}`);
    // The store's parent holds blobs/sha256/...: archive those paths as they are.
    await run('tar', ['--create', `--file=${tmp}`, '--owner=0', '--group=0', '--mtime=@0', `--directory=${meta}`, 'oci-layout', 'index.json', `--directory=${dirname(store.root)}`, ...blobPaths], { maxBuffer: 16 * 1024 * 1024 });
    renameSync(tmp, out);
  } finally {
    rmSync(meta, { recursive: true, force: true });
  }
}

/** The tag of a reference (`latest` when it has none); a digest-only reference has no tag. */
export function tagOf(reference: string): string {
  const withoutDigest = reference.split('@')[0]!;
  const lastSlash = withoutDigest.lastIndexOf('/');
  const colon = withoutDigest.lastIndexOf(':');
  return colon > lastSlash ? withoutDigest.slice(colon + 1) : 'latest';
}

/**
 * The full reference containerd's CRI stores an image under: `nginx` is
 * `docker.io/library/nginx:latest`, `alpine/curl` is `docker.io/alpine/curl:latest`.
 */
export function normalizeReference(reference: string): string {
  let [name, digest] = reference.split('@') as [string, string | undefined];
  const firstSlash = name.indexOf('/');
  const first = firstSlash < 0 ? '' : name.slice(0, firstSlash);
  const hasRegistry = first.includes('.') || first.includes(':') || first === 'localhost';
  if (!hasRegistry) name = `docker.io/${firstSlash < 0 ? `library/${name}` : name}`;
  const lastSlash = name.lastIndexOf('/');
  if (name.lastIndexOf(':') <= lastSlash && digest === undefined) name = `${name}:latest`;
  return digest === undefined ? name : `${name}@${digest}`;
}
