#!/usr/bin/env bash
# Builds the Cilium images described in lab/cilium/images.def as OCI image archives, one per image,
# for `ctr -n k8s.io images import` (no registry, no container engine): a Debian bookworm rootfs
# made with mmdebstrap, the binaries and module files of lab/bins/build-cilium.sh, one layer.
# They land in a versioned cache directory outside the repository and are reused while the
# definitions, this script and the binaries are unchanged.
#
#   lab/cilium/build-images.sh          build (or reuse); the last line is the directory, which
#                                       holds <file>.tar per image and images.txt (NAME FILE lines)
#   lab/cilium/build-images.sh --dir    only print the directory
#
# Quiet: one line per image on stderr; full logs under $root/logs. Needs root (mmdebstrap in root
# mode, in a private mount namespace so that none of its mounts is seen outside it).
# IMAGE_CACHE overrides the cache root; BIN_CACHE is passed on to build-cilium.sh.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../bins/cilium/module.env"
defs="$here/images.def"
bins_dir=$("$here/../bins/build-cilium.sh" --dir cilium)
fingerprint=$(cat "$defs" "$here/build-images.sh" <(basename "$bins_dir") | sha256sum | cut -c1-12)
root=${IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-cilium-migrate/images}
dir="$root/cilium-$CILIUM_VERSION-$fingerprint"
logs="$root/logs/$(basename "$dir")"
# Downloaded .deb files, kept across builds so that a rebuild does not fetch them again.
debs="$root/debs"
suite=bookworm
mirrors=(
  "deb http://deb.debian.org/debian $suite main"
  "deb http://deb.debian.org/debian $suite-updates main"
  "deb http://deb.debian.org/debian-security $suite-security main"
)

if [[ "${1:-}" == "--dir" ]]; then
  echo "$dir"
  exit 0
fi
if [[ -f "$dir/.complete" ]]; then
  echo "cilium images $CILIUM_VERSION: cached in $dir" >&2
  echo "$dir"
  exit 0
fi

say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
[[ $(id -u) == 0 ]] || { echo "error: building the Cilium images needs root (mmdebstrap)" >&2; exit 1; }
if ! command -v mmdebstrap >/dev/null; then
  say "installing mmdebstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
fi
bins_dir=$("$here/../bins/build-cilium.sh" cilium | tail -n 1)

mkdir -p "$root" "$debs"
rm -rf "$logs"
mkdir -p "$logs"
tmp="$dir.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
started=$SECONDS

# JSON string of $1.
json_str() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "$s"
}
# JSON array of strings of the arguments.
json_arr() {
  local out="" a
  for a in "$@"; do out+="${out:+,}$(json_str "$a")"; done
  printf '[%s]' "$out"
}
sha() { sha256sum "$1" | cut -d' ' -f1; }
slug() { local s=${1#*/}; s=${s//\//-}; echo "${s/:/-}"; }

# rootfs_debian ROOTFS PACKAGE...: a minimal bookworm (its Essential packages) plus PACKAGES and
# their dependencies, without recommends, documentation, manual pages or translations.
rootfs_debian() {
  local rootfs=$1
  shift
  local include
  include=$(IFS=,; echo "$*")
  unshare --mount --propagation private --fork -- mmdebstrap --mode=root --variant=essential \
    --include="$include" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --skip=essential/unlink \
    --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
    --setup-hook="sync-in $debs /var/cache/apt/archives/" \
    --customize-hook="sync-out /var/cache/apt/archives $debs" \
    --customize-hook='rm -f "$1"/var/cache/apt/archives/*.deb' \
    "$suite" "$rootfs" "${mirrors[@]}"
}

# oci_archive ROOTFS NAME OUT CONFIG_JSON: ROOTFS as a one-layer OCI image layout in a tar
# archive. The layer is uncompressed: it is read once per node on import, and gzip would cost
# more CPU than the bytes it saves on a local disk.
oci_archive() {
  local rootfs=$1 name=$2 out=$3 config=$4 layout layer entries
  layout=$(mktemp -d "$tmp/layout.XXXXXX")
  mkdir -p "$layout/blobs/sha256"
  layer="$layout/layer.tar"
  mapfile -t entries < <(cd "$rootfs" && ls -A)
  tar --sort=name --mtime=@0 --numeric-owner --pax-option=delete=atime,delete=ctime \
    -C "$rootfs" -cf "$layer" "${entries[@]}"
  local layer_sha layer_size config_sha config_size manifest manifest_sha manifest_size
  layer_sha=$(sha "$layer")
  layer_size=$(stat -c %s "$layer")
  mv "$layer" "$layout/blobs/sha256/$layer_sha"
  config=${config/@DIFF_ID@/sha256:$layer_sha}
  printf '%s' "$config" >"$layout/config.json"
  config_sha=$(sha "$layout/config.json")
  config_size=$(stat -c %s "$layout/config.json")
  mv "$layout/config.json" "$layout/blobs/sha256/$config_sha"
  manifest="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$config_sha\",\"size\":$config_size},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:$layer_sha\",\"size\":$layer_size}]}"
  printf '%s' "$manifest" >"$layout/manifest.json"
  manifest_sha=$(sha "$layout/manifest.json")
  manifest_size=$(stat -c %s "$layout/manifest.json")
  mv "$layout/manifest.json" "$layout/blobs/sha256/$manifest_sha"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":%s,"org.opencontainers.image.ref.name":%s}}]}' \
    "$manifest_sha" "$manifest_size" "$(json_str "$name")" "$(json_str "${name##*:}")" >"$layout/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$layout" -cf "$out" oci-layout index.json blobs
  rm -rf "$layout"
}

# build_image NAME STATEMENTS...: one image from its statements in images.def.
build_image() {
  local name=$1
  shift
  local s rootfs="$tmp/$(slug "$name")" env=() cmd=() workdir=/ verb rest
  for s in "$@"; do
    read -r verb rest <<<"$s"
    case $verb in
      debian) read -ra pkgs <<<"$rest"; rootfs_debian "$rootfs" "${pkgs[@]}" ;;
    esac
  done
  mkdir -p "$rootfs"
  for s in "$@"; do
    read -r verb rest <<<"$s"
    local a=()
    read -ra a <<<"$rest"
    case $verb in
      debian) ;;
      copy)
        mkdir -p "$rootfs$(dirname "${a[1]}")"
        rm -rf "${rootfs:?}${a[1]}"
        cp -r "$bins_dir/${a[0]}" "$rootfs${a[1]}"
        [[ -z "${a[2]:-}" ]] || chmod "${a[2]}" "$rootfs${a[1]}"
        ;;
      copy-from)
        mkdir -p "$rootfs$(dirname "${a[2]}")"
        cp "$tmp/$(slug "${a[0]}")${a[1]}" "$rootfs${a[2]}"
        ;;
      link) mkdir -p "$rootfs$(dirname "${a[0]}")"; ln -sfn "${a[1]}" "$rootfs${a[0]}" ;;
      dir) mkdir -p "$rootfs${a[0]}"; [[ -z "${a[1]:-}" ]] || chmod "${a[1]}" "$rootfs${a[0]}" ;;
      chroot) chroot "$rootfs" "${a[@]}" ;;
      env) env+=("$rest") ;;
      workdir) workdir=$rest ;;
      cmd) cmd=("${a[@]}") ;;
      *) echo "images.def: unknown statement: $s" >&2; return 1 ;;
    esac
  done
  local config
  config="{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Env\":$(json_arr "${env[@]}"),\"Cmd\":$(json_arr "${cmd[@]}"),\"WorkingDir\":$(json_str "$workdir")},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"@DIFF_ID@\"]},\"history\":[{\"created_by\":\"lab/cilium/build-images.sh\"}]}"
  oci_archive "$rootfs" "$name" "$tmp/out/$(slug "$name").tar" "$config"
  if [[ -d "$rootfs/var/lib/dpkg" ]]; then
    chroot "$rootfs" dpkg-query -W -f '${Package} ${Version}\n' >"$tmp/out/$(slug "$name").packages"
  fi
  echo "$name $(slug "$name").tar" >>"$tmp/out/images.txt"
}

# Reads images.def into one statement list per image, in order, and builds each.
mkdir -p "$tmp/out"
names=()
declare -A stmts=()
while IFS= read -r line; do
  line=${line%%#*}
  line=$(sed -E 's/^[[:space:]]+|[[:space:]]+$//g' <<<"$line")
  [[ -n "$line" ]] || continue
  line=${line//'${CILIUM_VERSION}'/$CILIUM_VERSION}
  if [[ $line == image\ * ]]; then
    names+=("${line#image }")
    continue
  fi
  ((${#names[@]})) || { echo "images.def: a statement before the first image: $line" >&2; exit 1; }
  stmts[${names[-1]}]+="$line"$'\n'
done <"$defs"

for name in "${names[@]}"; do
  mapfile -t list < <(printf '%s' "${stmts[$name]}")
  log="$logs/$(slug "$name").log"
  t0=$SECONDS
  if build_image "$name" "${list[@]}" >"$log" 2>&1; then
    size=$(du -m "$tmp/out/$(slug "$name").tar" | cut -f1)
    say "$name (${size} MiB, $((SECONDS - t0))s)"
  else
    say "FAILED: $name after $((SECONDS - t0))s; the end of $log:"
    tail -n 25 "$log" | sed 's/^/    /' >&2
    exit 1
  fi
done

for name in "${names[@]}"; do rm -rf "${tmp:?}/$(slug "$name")"; done
mv "$tmp/out"/* "$tmp/"
rmdir "$tmp/out"
touch "$tmp/.complete"
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
say "cilium images $CILIUM_VERSION built in $((SECONDS - started))s into $dir"
echo "$dir"
