#!/usr/bin/env bash
# Builds what the lab needs to run real Cilium, from the Go module proxy, into versioned cache
# directories outside the repository, and skips what is there already. Two groups:
#   chart   helm (helm.sh/helm/v3, the wrapper module lab/bins/helm) and Cilium's Helm chart
#           (install/kubernetes/cilium of the cilium module): helm, chart/
#   cilium  every Cilium binary the chart's pods run, as upstream's images/cilium/Dockerfile
#           (build-container) and images/operator/Dockerfile build them, and the CNI loopback
#           plugin upstream's runtime image ships: bin/; the parts of the module the images need:
#           module/bpf (the agent compiles its datapath from these at every start) and the init
#           scripts
#
#   lab/bins/build-cilium.sh [GROUP...]      build (or reuse) the groups (default: both); the last
#                                            line of stdout is the directory of the last group
#   lab/bins/build-cilium.sh --dir [GROUP]   only print the directory of GROUP (default: cilium)
#
# Quiet: one line per binary on stderr; each tool's full output goes to a log file under
# $root/logs/<directory name>/, whose tail is printed when a step fails (the same helpers and
# layout as lab/bins/build.sh). BIN_CACHE overrides the cache root.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=${BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-cilium-migrate/bins}
groups=(chart cilium)
# shellcheck source=cilium/module.env
source "$here/cilium/module.env"
helm_version=$(sed -nE 's#^[[:space:]]*(require[[:space:]]+)?helm.sh/helm/v3 (v[^ ]+).*#\2#p' "$here/helm/go.mod" | head -n 1)

# A group's directory name changes whenever one of its inputs (a version, a go.sum, this script)
# changes.
fingerprint() { cat "$@" "$here/build-cilium.sh" | sha256sum | cut -c1-12; }
group_dir() {
  case $1 in
    chart) echo "$root/cilium-chart-$CILIUM_VERSION-helm-$helm_version-$(fingerprint "$here/cilium/module.env" "$here"/helm/go.{mod,sum})" ;;
    cilium) echo "$root/cilium-$CILIUM_VERSION-$(fingerprint "$here/cilium/module.env")" ;;
    *) echo "unknown group $1 (one of: ${groups[*]})" >&2; return 2 ;;
  esac
}

if [[ "${1:-}" == "--dir" ]]; then
  group_dir "${2:-cilium}"
  exit 0
fi
wanted=("$@")
((${#wanted[@]})) || wanted=("${groups[@]}")
for g in "${wanted[@]}"; do group_dir "$g" >/dev/null; done

say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
# run LABEL LOG CMD...: runs CMD with its output in LOG; prints one line; on failure the log's tail.
run() {
  local label=$1 log=$2 t0=$SECONDS
  shift 2
  if "$@" >"$log" 2>&1; then
    say "$label ($((SECONDS - t0))s)"
  else
    say "FAILED: $label after $((SECONDS - t0))s; the end of $log:"
    tail -n 25 "$log" | sed 's/^/    /' >&2
    return 1
  fi
}

command -v go >/dev/null || { echo "error: Go is needed to build Cilium and helm (see go.dev/doc/install)" >&2; exit 1; }
export CGO_ENABLED=0 GOTOOLCHAIN=local

# The cilium module's directory in the module cache, its hash checked against the pin instead of
# against the checksum database, so the build does not depend on sum.golang.org answering.
module_dir() {
  local json got
  json=$(cd "$root" && GOFLAGS=-mod=mod GONOSUMDB="$CILIUM_MODULE" go mod download -json "$CILIUM_MODULE@$CILIUM_VERSION")
  got=$(sed -nE 's/^[[:space:]]*"Sum": "([^"]+)".*/\1/p' <<<"$json")
  if [[ "$got" != "$CILIUM_SUM" ]]; then
    echo "error: $CILIUM_MODULE@$CILIUM_VERSION has hash ${got:-?}, lab/bins/cilium/module.env pins $CILIUM_SUM" >&2
    echo "$json" >&2
    return 1
  fi
  sed -nE 's/^[[:space:]]*"Dir": "([^"]+)".*/\1/p' <<<"$json"
}

build_chart() {
  local tmp=$1 log=$2 src
  run "cilium module $CILIUM_VERSION" "$log/cilium-module.log" module_dir
  src=$(tail -n 1 "$log/cilium-module.log")
  cp -r "$src/install/kubernetes/cilium" "$tmp/chart"
  chmod -R u+w "$tmp/chart"
  # helm reports the Kubernetes version it was built against as the default for `helm template`
  # (.Capabilities.KubeVersion); without these flags it says v1.20, below the chart's kubeVersion.
  local client_go minor ldflags pkg
  client_go=$(cd "$here/helm" && GOFLAGS=-mod=readonly go list -m -f '{{.Version}}' k8s.io/client-go)
  minor=$(cut -d. -f2 <<<"$client_go")
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$minor"
  done
  run "helm $helm_version" "$log/helm.log" env -C "$here/helm" GOFLAGS=-mod=readonly \
    go build -trimpath -ldflags "$ldflags" -o "$tmp/helm" helm.sh/helm/v3/cmd/helm
}

build_cilium() {
  local tmp=$1 log=$2 src copy="$1/src"
  run "cilium module $CILIUM_VERSION" "$log/cilium-module.log" module_dir
  src=$(tail -n 1 "$log/cilium-module.log")
  # The module's zip carries no vendor/ and the module has replace directives of its own, so it is
  # built as its own main module: from a writable copy, with -mod=mod resolving its dependencies
  # against its own go.mod and go.sum.
  cp -r "$src" "$copy"
  chmod -R u+w "$copy"
  mkdir -p "$tmp/bin"
  local ldflags="-s -w -X 'github.com/cilium/cilium/pkg/version.ciliumVersion=${CILIUM_VERSION#v} modproxy'"
  # cilium NAME PACKAGE [EXTRA_TAGS]: as Cilium's Makefile.defs, with CGO off and the osusergo tag;
  # the operator variants add their IPAM provider's tag.
  cilium() {
    run "$1 $CILIUM_VERSION" "$log/$1.log" env -C "$copy" GOFLAGS=-mod=mod \
      go build -trimpath -tags "osusergo${3:+,$3}" -ldflags "$ldflags" -o "$tmp/bin/$1" "$2"
  }
  # The agent first: it is most of the work (10-20 minutes cold on 2 cores), the rest reuse its packages.
  say "cilium-agent $CILIUM_VERSION: building (the first build takes 10-20 minutes on 2 cores)"
  cilium cilium-agent ./daemon
  cilium cilium-dbg ./cilium-dbg
  cilium cilium-health ./cilium-health
  cilium cilium-health-responder ./cilium-health/responder
  cilium cilium-bugtool ./bugtool
  cilium cilium-mount ./tools/mount
  cilium cilium-sysctlfix ./tools/sysctlfix
  cilium cilium-cni ./plugins/cilium-cni
  cilium cilium-operator-generic ./operator ipam_provider_operator
  run "CNI loopback $CNI_PLUGINS_VERSION" "$log/loopback.log" env GOBIN="$tmp/bin" GOFLAGS=-mod=mod \
    go install -trimpath -ldflags "-s -w" "$CNI_PLUGINS_MODULE/plugins/main/loopback@$CNI_PLUGINS_VERSION"
  # What the images take from the module besides the binaries.
  local m="$tmp/module"
  mkdir -p "$m/images/cilium" "$m/images/runtime" "$m/plugins/cilium-cni"
  cp -r "$copy/bpf" "$m/bpf"
  cp "$copy/images/cilium/init-container.sh" "$m/images/cilium/"
  cp "$copy/images/runtime/iptables-wrapper-installer.sh" "$m/images/runtime/"
  cp "$copy"/plugins/cilium-cni/{install-plugin.sh,cni-uninstall.sh,05-cilium-cni.conf} "$m/plugins/cilium-cni/"
  rm -rf "$copy"
}

for g in "${wanted[@]}"; do
  dir=$(group_dir "$g")
  if [[ -f "$dir/.complete" ]]; then
    say "$g: cached in $dir"
    continue
  fi
  tmp="$dir.tmp.$$"
  log="$root/logs/$(basename "$dir")"
  rm -rf "$tmp" "$log"
  mkdir -p "$tmp" "$log"
  trap 'rm -rf "$tmp"' EXIT
  started=$SECONDS
  say "$g: building into $dir (logs in $log)"
  "build_$g" "$tmp" "$log"
  touch "$tmp/.complete"
  rm -rf "$dir"
  mv "$tmp" "$dir"
  trap - EXIT
  say "$g: built in $((SECONDS - started))s"
done
group_dir "${wanted[-1]}"
