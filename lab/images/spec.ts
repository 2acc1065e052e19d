// The shape of an image as the lab describes it (lab/images/catalog.ts, lab/images/cilium.ts) and
// lab/images/build.ts builds it.
import type { ImageConfig } from './oci.js';

/** A root file system from Debian packages (mmdebstrap --variant=essential plus `packages`). */
export interface DebianBase {
  name: string;
  suite: string;
  packages: string[];
}

/** Where a file placed into an image comes from. */
export type FileSource =
  /** The node binary cache (lab/bins/build.sh node), e.g. `kube-proxy` or `cni/flannel`. */
  | { bin: string }
  /** The repository's dist/ (make build), e.g. `agent.js`. */
  | { dist: string }
  /** A file of this machine, by absolute path. */
  | { host: string }
  /** Literal content. */
  | { text: string }
  /** A file of the repository, relative to its root, e.g. `lab/node/node-init.sh`. */
  | { repo: string }
  /** A whole directory of this machine, copied with its modes. */
  | { tree: string }
  /** The Cilium binary cache (lab/bins/build.sh cilium), e.g. `bin/cilium-agent`; a directory (`module/bpf`) is copied whole. */
  | { cilium: string };

export interface ImageFile {
  /** Absolute path inside the image (for a `tree`, the directory it becomes). */
  path: string;
  from: FileSource;
  /** Default: 0755 for binaries and host files, 0644 for dist files and text; a directory keeps its own. */
  mode?: number;
}

export interface ImageSpec {
  /** Every reference the image is stored under (normalised when the spec is made). */
  names: string[];
  /** A base's name; none means the image holds only its files (scratch). */
  base?: string;
  files: ImageFile[];
  config: ImageConfig;
}
