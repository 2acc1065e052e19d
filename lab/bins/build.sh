#!/usr/bin/env bash
# Builds the real control-plane binaries the tests and the lab run (kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, etcd, kwok) from their Go modules into a
# versioned cache directory outside the repository, and skips the build when they are there.
#
#   lab/bins/build.sh          build (or reuse) and print the directory on the last line
#   lab/bins/build.sh --dir    only print the directory the binaries live in
#
# BIN_CACHE overrides the cache root (default: $XDG_CACHE_HOME or ~/.cache).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The version a wrapper module requires of MODULE, read from its go.mod.
modver() { sed -nE "s#^[[:space:]]*(require[[:space:]]+)?$2 (v[^ ]+).*#\\2#p" "$here/$1/go.mod" | head -n 1; }
k8s_version=$(modver kubernetes k8s.io/kubernetes)
etcd_version=$(modver etcd go.etcd.io/etcd/server/v3)
kwok_version=$(modver kwok sigs.k8s.io/kwok)
# The directory name changes whenever a version, a go.sum or this script changes.
fingerprint=$(cat "$here"/{kubernetes,etcd,kwok}/go.{mod,sum} "$here"/etcd/main.go "$here/build.sh" | sha256sum | cut -c1-12)
root=${BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-cilium-migrate/bins}
dir="$root/k8s-$k8s_version-etcd-$etcd_version-kwok-$kwok_version-$fingerprint"

if [[ "${1:-}" == "--dir" ]]; then
  echo "$dir"
  exit 0
fi
if [[ -f "$dir/.complete" ]]; then
  echo "control-plane binaries: cached in $dir" >&2
  echo "$dir"
  exit 0
fi

command -v go >/dev/null || { echo "error: Go is needed to build the control-plane binaries (apt-get install golang, or see go.dev)" >&2; exit 1; }

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly
tmp="$dir.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
started=$SECONDS

step() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

minor=${k8s_version#v1.}; minor=${minor%%.*}
kv="k8s.io/component-base/version"
ldflags="-s -w -X $kv.gitVersion=$k8s_version -X $kv.gitMajor=1 -X $kv.gitMinor=$minor -X $kv.gitTreeState=clean -X $kv.buildDate=1970-01-01T00:00:00Z"
ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"

step "building etcd $etcd_version"
(cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" .)
step "etcd done after $((SECONDS - started))s"

step "building kwok $kwok_version"
(cd "$here/kwok" && go build -trimpath -ldflags "-s -w" -o "$tmp/kwok" sigs.k8s.io/kwok/cmd/kwok)
# kwok needs Stage configs to move nodes and pods along; the defaults ship inside its module.
kwok_src=$(cd "$here/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
mkdir -p "$tmp/kwok-stages"
cp "$kwok_src"/kustomize/stage/node/fast/node-initialize.yaml \
  "$kwok_src"/kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
  "$kwok_src"/kustomize/stage/pod/fast/pod-*.yaml "$tmp/kwok-stages/"
step "kwok done after $((SECONDS - started))s"

step "building kube-apiserver, kube-controller-manager, kube-scheduler and kubectl $k8s_version (the first build takes 15-30 minutes on 2 cores)"
(cd "$here/kubernetes" && go build -trimpath -ldflags "$ldflags" -o "$tmp/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kubectl)
step "kubernetes done after $((SECONDS - started))s"

touch "$tmp/.complete"
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
step "control-plane binaries built in $((SECONDS - started))s into $dir"
echo "$dir"
