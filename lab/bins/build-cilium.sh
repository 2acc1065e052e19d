#!/usr/bin/env bash
# Builds what the lab needs to run real Cilium, from the Go module proxy, into a versioned cache
# directory outside the repository, and skips the build when it is there:
#   bin/       every Cilium binary the chart's pods run (as in images/cilium/Dockerfile's
#              build-container + the operator image), the CNI loopback plugin, and helm
#   module/    the parts of the cilium module the images and the install need: bpf/ (the agent
#              compiles its datapath from these at start), the Helm chart, the init scripts
#
#   lab/bins/build-cilium.sh          build (or reuse) and print the directory on the last line
#   lab/bins/build-cilium.sh --dir    only print the directory
#
# Quiet: one line per binary on stderr; each build's full output goes to a log file under
# $root/logs/<directory name>/, whose tail is printed when it fails. BIN_CACHE overrides the cache root.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=cilium/module.env
source "$here/cilium/module.env"
helm_version=$(sed -nE 's#^[[:space:]]*(require[[:space:]]+)?helm.sh/helm/v3 (v[^ ]+).*#\2#p' "$here/helm/go.mod" | head -n 1)
# The directory name changes whenever a version, a go.sum or this script changes.
fingerprint=$(cat "$here/cilium/module.env" "$here"/helm/go.{mod,sum} "$here/build-cilium.sh" | sha256sum | cut -c1-12)
root=${BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-cilium-migrate/bins}
dir="$root/cilium-$CILIUM_VERSION-helm-$helm_version-$fingerprint"
logs="$root/logs/$(basename "$dir")"

if [[ "${1:-}" == "--dir" ]]; then
  echo "$dir"
  exit 0
fi
if [[ -f "$dir/.complete" ]]; then
  echo "cilium $CILIUM_VERSION and helm $helm_version: cached in $dir" >&2
  echo "$dir"
  exit 0
fi

command -v go >/dev/null || { echo "error: Go is needed to build Cilium and helm (apt-get install golang, or see go.dev)" >&2; exit 1; }

export CGO_ENABLED=0 GOTOOLCHAIN=local
rm -rf "$logs"
mkdir -p "$root" "$logs"
tmp="$dir.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp/bin" "$tmp/module" "$tmp/src"
trap 'rm -rf "$tmp"' EXIT
started=$SECONDS

say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
# run LABEL LOG CMD...: runs CMD with its output in LOG; prints one line; on failure the log's tail.
# (The same helpers as lab/bins/build.sh, so that this can become one of its groups.)
run() {
  local label=$1 log=$2 t0=$SECONDS
  shift 2
  if "$@" >"$log" 2>&1; then
    say "$label ($((SECONDS - t0))s)"
  else
    say "FAILED: $label after $((SECONDS - t0))s; the end of $log:"
    tail -n 25 "$log" | sed 's/^/    /' >&2
    exit 1
  fi
}

# The module's zip carries no vendor/ and the module has replace directives of its own, so it is
# built as its own main module: from a writable copy, with -mod=mod resolving its dependencies
# against its own go.mod and go.sum. Its hash is checked here against the pin instead of the
# checksum database, so the build does not depend on sum.golang.org answering.
fetch_cilium() {
  local json got src
  json=$(cd "$tmp" && GOFLAGS=-mod=mod GONOSUMDB="$CILIUM_MODULE" go mod download -json "$CILIUM_MODULE@$CILIUM_VERSION")
  got=$(sed -nE 's/^[[:space:]]*"Sum": "([^"]+)".*/\1/p' <<<"$json")
  src=$(sed -nE 's/^[[:space:]]*"Dir": "([^"]+)".*/\1/p' <<<"$json")
  echo "$json"
  if [[ "$got" != "$CILIUM_SUM" ]]; then
    echo "error: $CILIUM_MODULE@$CILIUM_VERSION has hash $got, lab/bins/cilium/module.env pins $CILIUM_SUM" >&2
    return 1
  fi
  cp -r "$src" "$tmp/src/cilium"
  chmod -R u+w "$tmp/src/cilium"
}
run "cilium module $CILIUM_VERSION" "$logs/cilium-module.log" fetch_cilium

version=${CILIUM_VERSION#v}
ldflags="-s -w -X 'github.com/cilium/cilium/pkg/version.ciliumVersion=$version modproxy'"
# cilium NAME PACKAGE [EXTRA_TAGS]: Cilium's Makefile.defs builds every binary with CGO off and the
# osusergo tag; the operator variants add their IPAM provider tag.
cilium() {
  local tags=osusergo${3:+,$3}
  run "$1 $CILIUM_VERSION" "$logs/$1.log" env -C "$tmp/src/cilium" GOFLAGS=-mod=mod \
    go build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$tmp/bin/$1" "$2"
}
# The agent first: it is most of the work (10+ minutes cold on 2 cores), the rest reuse its packages.
cilium cilium-agent ./daemon
cilium cilium-dbg ./cilium-dbg
cilium cilium-health ./cilium-health
cilium cilium-health-responder ./cilium-health/responder
cilium cilium-bugtool ./bugtool
cilium cilium-mount ./tools/mount
cilium cilium-sysctlfix ./tools/sysctlfix
cilium cilium-cni ./plugins/cilium-cni
cilium cilium-operator-generic ./operator ipam_provider_operator

run "CNI loopback $CNI_PLUGINS_VERSION" "$logs/loopback.log" env GOBIN="$tmp/bin" GOFLAGS=-mod=mod \
  go install -trimpath -ldflags "-s -w" "$CNI_PLUGINS_MODULE/plugins/main/loopback@$CNI_PLUGINS_VERSION"

# helm reports the Kubernetes version it was built against as the default for `helm template`
# (.Capabilities.KubeVersion); without these flags it says v1.20, below the chart's kubeVersion.
client_go=$(cd "$here/helm" && GOFLAGS=-mod=readonly go list -m -f '{{.Version}}' k8s.io/client-go)
k8s_minor=$(cut -d. -f2 <<<"$client_go")
hl="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  hl+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
done
run "helm $helm_version" "$logs/helm.log" env -C "$here/helm" GOFLAGS=-mod=readonly \
  go build -trimpath -ldflags "$hl" -o "$tmp/bin/helm" helm.sh/helm/v3/cmd/helm

# What the images and the install take from the module besides the binaries.
src="$tmp/src/cilium"
mkdir -p "$tmp/module/install/kubernetes" "$tmp/module/images/cilium" "$tmp/module/plugins/cilium-cni"
cp -r "$src/bpf" "$tmp/module/bpf"
cp -r "$src/install/kubernetes/cilium" "$tmp/module/install/kubernetes/cilium"
cp "$src/images/cilium/init-container.sh" "$tmp/module/images/cilium/"
cp "$src/plugins/cilium-cni/install-plugin.sh" "$src/plugins/cilium-cni/cni-uninstall.sh" \
  "$src/plugins/cilium-cni/05-cilium-cni.conf" "$tmp/module/plugins/cilium-cni/"
cp "$src/images/runtime/iptables-wrapper-installer.sh" "$tmp/module/images/"
rm -rf "$tmp/src"

touch "$tmp/.complete"
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
say "cilium $CILIUM_VERSION and helm $helm_version: built in $((SECONDS - started))s into $dir"
echo "$dir"
