#!/usr/bin/env bash
# Builds the real Kubernetes binaries the tests and the lab run, from their Go modules, into
# versioned cache directories outside the repository, and skips what is there already.
#
#   control-plane  etcd, kwok, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
#   node           what a lab node runs: kubelet, kube-proxy, containerd, containerd-shim-runc-v2,
#                  ctr, the CNI plugins (bridge, host-local, loopback, portmap, and the lab's
#                  flannel delegate), flanneld and install-conf, pause (for the pause image), and
#                  Flannel's own kube-flannel.yml from its module (manifests/)
#
#   lab/bins/build.sh [GROUP...]   build (or reuse) the groups (default: all); the last line of
#                                  stdout is the control-plane directory (for scripts)
#   lab/bins/build.sh --dir [GROUP]  only print the directory of GROUP (default: control-plane)
#
# Quiet on purpose: one line per binary on stderr; every tool's full output goes to a log file
# under the cache (logs/), whose last lines are printed when a build fails.
# BIN_CACHE overrides the cache root (default: $XDG_CACHE_HOME or ~/.cache).
# runc is Debian's package (lab/install-system-deps.sh installs it), not built here.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=${BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-cilium-migrate/bins}
groups=(control-plane node)

# The version a wrapper module requires of MODULE, read from its go.mod.
modver() { sed -nE "s#^[[:space:]]*(require[[:space:]]+)?$2 (v[^ ]+).*#\\2#p" "$here/$1/go.mod" | head -n 1; }
k8s_version=$(modver kubernetes k8s.io/kubernetes)
etcd_version=$(modver etcd go.etcd.io/etcd/server/v3)
kwok_version=$(modver kwok sigs.k8s.io/kwok)
containerd_version=$(modver containerd github.com/containerd/containerd/v2)
cni_version=$(modver cni github.com/containernetworking/plugins)
flannel_version=$(modver flannel github.com/flannel-io/flannel)

say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
logs="$root/logs"

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

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly

minor=${k8s_version#v1.}; minor=${minor%%.*}
kv="k8s.io/component-base/version"
k8s_ldflags="-s -w -X $kv.gitVersion=$k8s_version -X $kv.gitMajor=1 -X $kv.gitMinor=$minor -X $kv.gitTreeState=clean -X $kv.buildDate=1970-01-01T00:00:00Z"
k8s_ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"

# go build in a wrapper module: gobuild MODULE_DIR OUT_DIR ARGS...
gobuild() { (cd "$here/$1" && go build -trimpath -o "$2/" "${@:3}"); }

build_control_plane() {
  local tmp=$1 log=$2
  run "etcd $etcd_version" "$log/etcd.log" gobuild etcd "$tmp" -ldflags "-s -w" .
  run "kwok $kwok_version" "$log/kwok.log" gobuild kwok "$tmp" -ldflags "-s -w" sigs.k8s.io/kwok/cmd/kwok
  # kwok needs Stage configs to move nodes and pods along; the defaults ship inside its module.
  local kwok_src
  kwok_src=$(cd "$here/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
  mkdir -p "$tmp/kwok-stages"
  cp "$kwok_src"/kustomize/stage/node/fast/node-initialize.yaml \
    "$kwok_src"/kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    "$kwok_src"/kustomize/stage/pod/fast/pod-*.yaml "$tmp/kwok-stages/"
  say "kube-apiserver, kube-controller-manager, kube-scheduler, kubectl $k8s_version: building (the first build takes 15-30 minutes on 2 cores)"
  run "kube-apiserver, kube-controller-manager, kube-scheduler, kubectl $k8s_version" "$log/kubernetes-control-plane.log" \
    gobuild kubernetes "$tmp" -ldflags "$k8s_ldflags" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
}

# flanneld is the one binary not built from its module as published: its main package imports the
# tencentvpc backend, whose SDK module the Go proxy refuses to serve (HTTP 403), so it is built
# from a copy of the module's directory with that one import line dropped; every other line and
# the module's own go.sum stay as published. The lab uses the vxlan backend.
build_flanneld() {
  local out=$1 src copy
  src=$(cd "$here/flannel" && go list -m -f '{{.Dir}}' github.com/flannel-io/flannel)
  copy=$(mktemp -d)
  cp -r "$src/." "$copy/"
  chmod -R u+w "$copy"
  sed -i '\#^[[:space:]]*_ "github.com/flannel-io/flannel/pkg/backend/tencentvpc"$#d' "$copy/main.go"
  if grep -q tencentvpc "$copy/main.go"; then echo "the tencentvpc import is still in flannel's main.go: update build.sh" >&2; rm -rf "$copy"; return 1; fi
  # As flannel's Makefile builds it on amd64: with cgo (the UDP backend), linked statically.
  (cd "$copy" && CGO_ENABLED=1 go build -trimpath -o "$out/flanneld" \
    -ldflags "-s -w -X github.com/flannel-io/flannel/pkg/version.Version=$flannel_version -extldflags -static" .)
  local rc=$?
  rm -rf "$copy"
  return $rc
}

# pause, for the pause image: kubernetes' own build/pause/linux/pause.c, linked statically as its
# Makefile does.
build_pause() {
  local out=$1 src
  src=$(cd "$here/kubernetes" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)
  command -v gcc >/dev/null || { echo "gcc is needed for the pause binary (apt-get install gcc libc6-dev)" >&2; return 1; }
  gcc -Os -Wall -Werror -static -DVERSION="$k8s_version" -o "$out/pause" "$src/build/pause/linux/pause.c" && strip "$out/pause"
}

build_node() {
  local tmp=$1 log=$2
  local cv="github.com/containerd/containerd/v2/version"
  run "kubelet, kube-proxy $k8s_version" "$log/kubernetes-node.log" \
    gobuild kubernetes "$tmp" -ldflags "$k8s_ldflags" k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy
  run "containerd, containerd-shim-runc-v2, ctr $containerd_version" "$log/containerd.log" \
    gobuild containerd "$tmp" -tags no_btrfs -ldflags "-s -w -X $cv.Version=$containerd_version -X $cv.Revision=module -X $cv.Package=github.com/containerd/containerd/v2" \
    github.com/containerd/containerd/v2/cmd/containerd github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
    github.com/containerd/containerd/v2/cmd/ctr
  mkdir -p "$tmp/cni"
  run "CNI plugins bridge, host-local, loopback, portmap $cni_version and the lab's flannel delegate" "$log/cni.log" \
    gobuild cni "$tmp/cni" -ldflags "-s -w" \
    github.com/containernetworking/plugins/plugins/main/bridge github.com/containernetworking/plugins/plugins/ipam/host-local \
    github.com/containernetworking/plugins/plugins/main/loopback github.com/containernetworking/plugins/plugins/meta/portmap \
    ./flannel
  run "install-conf $flannel_version" "$log/install-conf.log" gobuild flannel "$tmp" -ldflags "-s -w" github.com/flannel-io/flannel/cmd/install_conf
  mv "$tmp/install_conf" "$tmp/install-conf"
  run "flanneld $flannel_version" "$log/flanneld.log" build_flanneld "$tmp"
  mkdir -p "$tmp/manifests"
  cp "$(cd "$here/flannel" && go list -m -f '{{.Dir}}' github.com/flannel-io/flannel)/Documentation/kube-flannel.yml" "$tmp/manifests/"
  run "pause" "$log/pause.log" build_pause "$tmp"
}

# A group's directory name changes whenever one of its inputs changes: a version, a go.mod or
# go.sum, our own sources, or the shell functions that build it (not the rest of this script).
# shellcheck disable=SC2086 # $1 is a list of function names
fingerprint() { { cat "${@:2}"; declare -f $1; } | sha256sum | cut -c1-12; }
group_dir() {
  case $1 in
    control-plane) echo "$root/k8s-$k8s_version-etcd-$etcd_version-kwok-$kwok_version-$(fingerprint "build_control_plane gobuild" "$here"/{kubernetes,etcd,kwok}/go.{mod,sum} "$here"/etcd/main.go)" ;;
    node) echo "$root/node-k8s-$k8s_version-containerd-$containerd_version-cni-$cni_version-flannel-$flannel_version-$(fingerprint "build_node build_flanneld build_pause gobuild" "$here"/{kubernetes,containerd,cni,flannel}/go.{mod,sum} "$here"/cni/flannel/main.go)" ;;
    *) echo "unknown group $1 (one of: ${groups[*]})" >&2; return 2 ;;
  esac
}

if [[ "${1:-}" == "--dir" ]]; then
  group_dir "${2:-control-plane}"
  exit 0
fi
wanted=("$@")
((${#wanted[@]})) || wanted=("${groups[@]}")
for g in "${wanted[@]}"; do group_dir "$g" >/dev/null; done
mkdir -p "$logs"
command -v go >/dev/null || { echo "error: Go is needed to build the Kubernetes binaries (see go.dev/doc/install)" >&2; exit 1; }

for g in "${wanted[@]}"; do
  dir=$(group_dir "$g")
  if [[ -f "$dir/.complete" ]]; then
    say "$g binaries: cached in $dir"
    continue
  fi
  tmp="$dir.tmp.$$"
  log="$logs/$(basename "$dir")"
  rm -rf "$tmp" "$log"
  mkdir -p "$tmp" "$log"
  trap 'rm -rf "$tmp"' EXIT
  started=$SECONDS
  say "$g binaries: building into $dir (logs in $log)"
  "build_${g//-/_}" "$tmp" "$log"
  touch "$tmp/.complete"
  rm -rf "$dir"
  mv "$tmp" "$dir"
  trap - EXIT
  say "$g binaries: built in $((SECONDS - started))s"
done
group_dir control-plane
