// Builds the lab's images (lab/images/catalog.ts) into the cache outside the repository and writes
// the one archive every node imports. Quiet: one line per base and per image; mmdebstrap's and
// tar's output goes to log files under the cache, whose last lines are shown when a step fails.
//
//   node --import tsx lab/images/build.ts      (make images; `lab up` does the same when needed)
//
// Caching: a base is rebuilt only when its package list or suite changes; an image only when its
// spec, its base layer or one of its files changes (file contents are hashed); the archive only
// when an image in it changed. IMAGE_CACHE overrides the cache root.
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, cpSync, createWriteStream, existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labBases, labImages, labNodeImage, type DebianBase, type FileSource, type ImageSpec } from './catalog.js';
import { BlobStore, layerFromDir, sha256File, writeArchive, writeImage, type Descriptor, type NamedImage } from './oci.js';

/** Changes whenever the way images are put together changes, so caches built the old way are not reused. */
const builderVersion = 'lab-images-1';

export interface ImageBuildOptions {
  /** Cache root (default ~/.cache/kubectl-cilium-migrate/images, or IMAGE_CACHE). */
  cacheRoot?: string;
  /** The node binary cache (lab/bins/build.sh --dir node). */
  nodeBinDir: string;
  /** The Cilium binary cache (lab/bins/build.sh --dir cilium), for images with `cilium` files. */
  ciliumBinDir?: string;
  /** The repository's dist/ (make build); the repository is its parent. */
  distDir: string;
  bases?: DebianBase[];
  images?: ImageSpec[];
  progress?: (line: string) => void;
}

export interface BuiltImages {
  /** The OCI archive holding every image: `ctr -n k8s.io images import ARCHIVE`. */
  archive: string;
  /** The blob store the images' blobs are in (BLOBS/sha256/HEX), for the lab's registry mirror. */
  blobs: string;
  images: { names: string[]; digest: string }[];
}

export class ImageBuildError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImageBuildError';
  }
}

const here = dirname(fileURLToPath(import.meta.url));

export function defaultImageCache(): string {
  return process.env.IMAGE_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'kubectl-cilium-migrate', 'images');
}

const hash = (...parts: string[]) => createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, 16);
const stamp = () => new Date().toTimeString().slice(0, 8);

interface Builder {
  root: string;
  store: BlobStore;
  logs: string;
  progress: (line: string) => void;
  baseLayers: Map<string, Descriptor>;
  o: ImageBuildOptions;
}

function builder(o: ImageBuildOptions): Builder {
  const root = o.cacheRoot ?? defaultImageCache();
  const logs = join(root, 'logs');
  mkdirSync(logs, { recursive: true });
  return {
    root, logs, o,
    store: new BlobStore(join(root, 'blobs')),
    progress: o.progress ?? ((line: string) => process.stderr.write(`[${stamp()}] ${line}\n`)),
    baseLayers: new Map(),
  };
}

/** Builds what is missing and returns the archive of every image. */
export async function buildImages(o: ImageBuildOptions): Promise<BuiltImages> {
  const b = builder(o);
  const built: NamedImage[] = [];
  for (const spec of o.images ?? labImages(join(o.distDir, '..'))) built.push({ names: spec.names, manifest: await buildImage(b, spec) });
  const archiveKey = hash(builderVersion, ...built.map((i) => `${i.names.join(',')}=${i.manifest.digest}`));
  const archive = join(b.root, 'archives', `lab-images-${archiveKey}.oci.tar`);
  if (existsSync(archive)) touch(archive);
  pruneCache(b.root);
  if (!existsSync(archive)) {
    mkdirSync(dirname(archive), { recursive: true });
    await writeArchive(b.store, built, archive);
    b.progress(`images archive: ${archive} (${(statSync(archive).size / 1024 / 1024).toFixed(0)} MiB)`);
  } else {
    b.progress(`${built.length} lab images: cached in ${archive}`);
  }
  return { archive, blobs: b.store.root, images: built.map((i) => ({ names: i.names, digest: i.manifest.digest })) };
}

/**
 * The node image (catalog's labNodeImage) unpacked into a directory of the cache, read-only from
 * then on: every lab node mounts an overlay of its own on top of it.
 */
export async function buildNodeRootfs(o: ImageBuildOptions & { node?: ImageSpec }): Promise<string> {
  const b = builder(o);
  const manifest = await buildImage(b, o.node ?? labNodeImage());
  const dir = join(b.root, 'rootfs', manifest.digest.replace(/^sha256:/, '').slice(0, 24));
  if (existsSync(join(dir, '.complete'))) {
    touch(dir);
    return join(dir, 'root');
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'root'), { recursive: true });
  const m = JSON.parse(readFileSync(b.store.path(manifest.digest), 'utf8')) as { layers: Descriptor[] };
  for (const layer of m.layers) await runLogged(join(b.logs, 'node-rootfs.log'), 'tar', ['--extract', '--same-owner', '--numeric-owner', `--file=${b.store.path(layer.digest)}`, `--directory=${join(dir, 'root')}`], 'unpacking the node image');
  writeFileSync(join(dir, '.complete'), '');
  b.progress(`node root file system: ${join(dir, 'root')}`);
  return join(dir, 'root');
}

async function buildImage(b: Builder, spec: ImageSpec): Promise<Descriptor> {
  const { store, root, o, progress } = b;
  const t0 = Date.now();
  let baseLayer: Descriptor | undefined;
  if (spec.base !== undefined) {
    baseLayer = b.baseLayers.get(spec.base);
    if (!baseLayer) {
      const bases = o.bases ?? labBases;
      const base = bases.find((x) => x.name === spec.base);
      if (!base) throw new ImageBuildError(`the image ${spec.names[0]} names the base "${spec.base}", which is not defined (bases: ${bases.map((x) => x.name).join(', ')})`);
      baseLayer = await buildBase(store, root, b.logs, base, progress);
      b.baseLayers.set(spec.base, baseLayer);
    }
  }
  const sources = spec.files.map((f) => ({ ...f, file: resolveSource(f.from, o) }));
  const fileHashes = await Promise.all(sources.map(async (s) => (s.file === undefined ? hash(String((s.from as { text: string }).text)) : statSync(s.file).isDirectory() ? treeHash(s.file) : sha256File(s.file))));
  const key = hash(builderVersion, JSON.stringify(spec), baseLayer?.digest ?? 'scratch', ...fileHashes);
  const record = join(root, 'manifests', `${key}.json`);
  if (existsSync(record)) {
    const manifest = JSON.parse(readFileSync(record, 'utf8')) as Descriptor;
    if (store.has(manifest.digest)) {
      touch(record);
      return manifest;
    }
  }
  const layers = baseLayer ? [baseLayer] : [];
  if (sources.length > 0) {
    const stage = mkdtempSync(join(root, '.stage-'));
    try {
      for (const s of sources) {
        const target = join(stage, s.path);
        mkdirSync(dirname(target), { recursive: true });
        if (s.file !== undefined && statSync(s.file).isDirectory()) {
          cpSync(s.file!, target, { recursive: true, preserveTimestamps: false });
          continue;
        }
        if (s.file === undefined) writeFileSync(target, (s.from as { text: string }).text);
        else copyFileSync(s.file, target);
        chmodSync(target, s.mode ?? ('text' in s.from || 'dist' in s.from || 'repo' in s.from ? 0o644 : 0o755));
      }
      layers.push(await layerFromDir(store, stage, { rootOwned: true }));
    } finally {
      rmSync(stage, { recursive: true, force: true });
    }
  }
  const manifest = writeImage(store, layers, spec.config);
  mkdirSync(dirname(record), { recursive: true });
  writeFileSync(record, JSON.stringify(manifest));
  progress(`image ${spec.names[0]}: built (${((Date.now() - t0) / 1000).toFixed(0)}s)`);
  return manifest;
}

/** A directory's content hash: every file's path, mode and content, in order. */
async function treeHash(dir: string): Promise<string> {
  const parts: string[] = [];
  const walk = async (d: string, rel: string): Promise<void> => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p, `${rel}${e.name}/`);
      else if (e.isFile()) parts.push(`${rel}${e.name}:${statSync(p).mode.toString(8)}:${await sha256File(p)}`);
      else if (e.isSymbolicLink()) parts.push(`${rel}${e.name}->${readlinkSync(p)}`);
    }
  };
  await walk(dir, '');
  return hash(...parts);
}

/** Marks a cached item as used now (pruneCache keeps what was used recently). */
function touch(path: string): void {
  const now = new Date();
  try {
    utimesSync(path, now, now);
  } catch {
    // gone meanwhile: it is rebuilt when needed
  }
}

/**
 * A hard link to the archive for a lab to boot its nodes from, so that pruning the cache (another
 * build) never takes it from a running lab; the original path where a link cannot be made (another
 * file system).
 */
export function holdArchive(archive: string, link: string): string {
  try {
    rmSync(link, { force: true });
    linkSync(archive, link);
    return link;
  } catch {
    return archive;
  }
}

/** How long a cached image or root file system is kept after its last use. */
const keepUnusedMs = 2 * 24 * 3_600_000;
/**
 * Archives are only the images' blobs put together again (seconds to rewrite) but 1.4 GB each, and
 * every change to the agent makes a new one: the newest few stay, others go after an hour unused.
 * A running lab holds its own by a hard link (kind-lab.ts), so removing it here breaks no node.
 */
const keepArchives = 3;
const keepUnusedArchiveMs = 3_600_000;

/**
 * Removes what no build has used for two days (other checkouts build other versions, so nothing
 * recent goes): unpacked node root file systems, image records, and then every blob no remaining
 * image record or base refers to; archives past the newest three after an hour.
 */
export function pruneCache(root: string, now = Date.now()): void {
  const mtime = (p: string) => {
    try {
      return statSync(p).mtimeMs;
    } catch {
      return now;
    }
  };
  const old = (p: string) => now - mtime(p) > keepUnusedMs;
  const entries = (d: string) => (existsSync(d) ? readdirSync(d).map((e) => join(d, e)) : []);
  for (const p of [...entries(join(root, 'rootfs')), ...entries(join(root, 'manifests')), ...entries(join(root, 'bases'))]) {
    if (old(p)) rmSync(p, { recursive: true, force: true });
  }
  const archives = entries(join(root, 'archives')).map((p) => ({ p, t: mtime(p) })).sort((a, b) => b.t - a.t);
  for (const { p, t } of archives.slice(keepArchives)) if (now - t > keepUnusedArchiveMs) rmSync(p, { force: true });
  const store = join(root, 'blobs', 'sha256');
  if (!existsSync(store)) return;
  const live = new Set<string>();
  const read = (f: string) => JSON.parse(readFileSync(f, 'utf8')) as Descriptor;
  for (const f of entries(join(root, 'bases')).filter((x) => x.endsWith('.json'))) live.add(read(f).digest);
  for (const f of entries(join(root, 'manifests'))) {
    const m = read(f);
    live.add(m.digest);
    const blob = join(store, m.digest.replace(/^sha256:/, ''));
    if (!existsSync(blob)) continue;
    const manifest = read(blob) as unknown as { config: Descriptor; layers: Descriptor[] };
    live.add(manifest.config.digest);
    for (const l of manifest.layers) live.add(l.digest);
  }
  for (const f of readdirSync(store)) {
    // Temporary files of a build under way are not blobs yet.
    if (/^[0-9a-f]{64}$/.test(f) && !live.has(`sha256:${f}`) && old(join(store, f))) rmSync(join(store, f), { force: true });
  }
}

function resolveSource(from: FileSource, o: ImageBuildOptions): string | undefined {
  let file: string;
  if ('bin' in from) file = join(o.nodeBinDir, from.bin);
  else if ('dist' in from) file = join(o.distDir, from.dist);
  else if ('host' in from) file = from.host;
  else if ('repo' in from) file = join(o.distDir, '..', from.repo);
  else if ('tree' in from) file = from.tree;
  else if ('cilium' in from) {
    if (o.ciliumBinDir === undefined) throw new ImageBuildError(`an image needs ${from.cilium} of the Cilium binaries, and no Cilium binary directory was given (lab/bins/build.sh --dir cilium)`);
    file = join(o.ciliumBinDir, from.cilium);
  } else return undefined;
  if (!existsSync(file)) {
    const how = 'bin' in from || 'cilium' in from ? 'build the binaries: make bins' : 'dist' in from ? 'build it: make build' : 'repo' in from ? 'a file of the repository' : 'it is a file of this machine';
    throw new ImageBuildError(`${file} is missing (${how})`);
  }
  return file;
}

/** The base's layer, built with mmdebstrap when it is not cached. */
async function buildBase(store: BlobStore, root: string, logs: string, base: DebianBase, progress: (line: string) => void): Promise<Descriptor> {
  const key = hash(builderVersion, base.suite, ...[...base.packages].sort());
  const record = join(root, 'bases', `${base.name}-${key}.json`);
  if (existsSync(record)) {
    const layer = JSON.parse(readFileSync(record, 'utf8')) as Descriptor;
    if (store.has(layer.digest)) {
      touch(record);
      return layer;
    }
  }
  const t0 = Date.now();
  const log = join(logs, `base-${base.name}.log`);
  const rootfs = join(root, 'bases', `.rootfs-${base.name}-${key}-${process.pid}`);
  rmSync(rootfs, { recursive: true, force: true });
  mkdirSync(dirname(rootfs), { recursive: true });
  if (!onPath('mmdebstrap')) throw new ImageBuildError(`base ${base.name}: mmdebstrap is not installed (make system-deps, or apt-get install mmdebstrap)`);
  // Downloaded packages, kept across builds (and bases) so that a rebuild fetches nothing twice.
  const debs = join(root, 'debs');
  mkdirSync(debs, { recursive: true });
  try {
    // In a mount namespace of its own: mmdebstrap's root mode mounts /proc, /sys and /dev into
    // the new root while it runs; nothing of that is seen by the machine, or left if it dies.
    await runLogged(log, 'unshare', ['--mount', '--propagation', 'private', '--fork', '--', 'mmdebstrap',
      '--mode=root', '--variant=essential', `--include=${base.packages.join(',')}`,
      // Documentation, manuals and translations: no container reads them.
      ...['/usr/share/man/*', '/usr/share/doc/*', '/usr/share/info/*', '/usr/share/locale/*', '/usr/share/lintian/*'].map((p) => `--dpkgopt=path-exclude=${p}`),
      '--dpkgopt=path-include=/usr/share/doc/*/copyright',
      '--aptopt=Acquire::Retries "3"',
      '--skip=essential/unlink',
      '--setup-hook=mkdir -p "$1"/var/cache/apt/archives/',
      `--setup-hook=sync-in ${debs} /var/cache/apt/archives/`,
      `--customize-hook=sync-out /var/cache/apt/archives ${debs}`,
      '--customize-hook=rm -f "$1"/var/cache/apt/archives/*.deb',
      base.suite, rootfs,
    ], `base ${base.name}: mmdebstrap`);
    const layer = await layerFromDir(store, rootfs);
    writeFileSync(record, JSON.stringify(layer));
    progress(`base ${base.name} (Debian ${base.suite}, ${base.packages.length} packages): built (${((Date.now() - t0) / 1000).toFixed(0)}s, ${(layer.size / 1024 / 1024).toFixed(0)} MiB)`);
    return layer;
  } finally {
    rmSync(rootfs, { recursive: true, force: true });
  }
}

function onPath(command: string): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => d !== '' && existsSync(join(d, command)));
}

function runLogged(log: string, file: string, args: string[], what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const out = createWriteStream(log);
    const child = execFile(file, args, { maxBuffer: 1024 * 1024 * 1024 });
    child.stdout?.pipe(out, { end: false });
    child.stderr?.pipe(out, { end: false });
    child.on('error', (err) => reject(new ImageBuildError(`${what}: ${err.message}`)));
    child.on('exit', (code) => {
      out.end(() => {
        if (code === 0) return resolve();
        const tail = readFileSync(log, 'utf8').trimEnd().split('\n').slice(-15).map((l) => `    ${l.slice(0, 300)}`).join('\n');
        reject(new ImageBuildError(`${what} failed (exit ${code}); the end of ${log}:\n${tail}`));
      });
    });
  });
}

async function main(): Promise<void> {
  const dir = (group: string) => execFileSync(join(here, '..', 'bins', 'build.sh'), ['--dir', group], { encoding: 'utf8' }).trim();
  const o = { nodeBinDir: dir('node'), ciliumBinDir: dir('cilium'), distDir: join(here, '..', '..', 'dist') };
  const rootfs = await buildNodeRootfs(o);
  const built = await buildImages(o);
  process.stdout.write(`${rootfs}\n${built.archive}\n`);
}

if (process.argv[1] !== undefined && /lab[/\\]images[/\\]build\.ts$/.test(process.argv[1])) {
  main().catch((err: Error) => {
    process.stderr.write(`error: ${err.message}\n`);
    process.exit(1);
  });
}
