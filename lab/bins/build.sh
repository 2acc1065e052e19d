#!/usr/bin/env bash
# Builds the real Kubernetes binaries the tests and the lab run, from their Go modules, into
# versioned cache directories outside the repository, and skips what is there already.
#
#   control-plane  etcd, kwok, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
#   node           what a lab node runs: kubelet, kube-proxy, containerd, containerd-shim-runc-v2,
#                  ctr, the CNI plugins (bridge, host-local, loopback, portmap, and the lab's
#                  flannel delegate), flanneld and install-conf, pause (for the pause image), and
#                  Flannel's own kube-flannel.yml from its module (manifests/)
#   cilium-chart   helm (helm.sh/helm/v3, the wrapper module lab/bins/helm) and Cilium's Helm chart
#                  (install/kubernetes/cilium of the cilium module): helm, chart/
#   cilium         every Cilium binary the chart's pods run, as upstream's images/cilium/Dockerfile
#                  and images/operator/Dockerfile build them (bin/), and the parts of the module the
#                  images need (module/): bpf/ (the agent compiles its datapath from these at every
#                  start) and the chart's init scripts. The version is lab/bins/cilium/module.env's.
#   calico         Calico's calico-node, the CNI plugin (calico, calico-ipam) and its installer,
#                  kube-controllers (bin/), and from the module the manifest the lab installs
#                  (manifests/calico-vxlan.yaml) and calico-node's runit services (filesystem/).
#                  Only `lab up --legacy calico` needs it; the version is lab/bins/calico/module.env's.
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
groups=(control-plane node cilium-chart cilium)
# shellcheck source=cilium/module.env
source "$here/cilium/module.env"
# shellcheck source=calico/module.env
source "$here/calico/module.env"

# The version a wrapper module requires of MODULE, read from its go.mod.
modver() { sed -nE "s#^[[:space:]]*(require[[:space:]]+)?$2 (v[^ ]+).*#\\2#p" "$here/$1/go.mod" | head -n 1; }
k8s_version=$(modver kubernetes k8s.io/kubernetes)
etcd_version=$(modver etcd go.etcd.io/etcd/server/v3)
kwok_version=$(modver kwok sigs.k8s.io/kwok)
containerd_version=$(modver containerd github.com/containerd/containerd/v2)
cni_version=$(modver cni github.com/containernetworking/plugins)
flannel_version=$(modver flannel github.com/flannel-io/flannel)
helm_version=$(modver helm helm.sh/helm/v3)

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

# The cilium module's directory in the module cache, its hash checked against the pin instead of
# against the checksum database, so the build does not depend on sum.golang.org answering.
cilium_module_dir() {
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

build_cilium_chart() {
  local tmp=$1 log=$2 src
  run "cilium module $CILIUM_VERSION" "$log/cilium-module.log" cilium_module_dir
  src=$(tail -n 1 "$log/cilium-module.log")
  cp -r "$src/install/kubernetes/cilium" "$tmp/chart"
  chmod -R u+w "$tmp/chart"
  # helm reports the Kubernetes version it was built against as the default for `helm template`
  # (.Capabilities.KubeVersion); without these flags it says v1.20, below the chart's kubeVersion.
  local client_go minor ldflags pkg
  client_go=$(cd "$here/helm" && go list -m -f '{{.Version}}' k8s.io/client-go)
  minor=$(cut -d. -f2 <<<"$client_go")
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$minor"
  done
  run "helm $helm_version" "$log/helm.log" gobuild helm "$tmp" -ldflags "$ldflags" helm.sh/helm/v3/cmd/helm
}

build_cilium() {
  local tmp=$1 log=$2 src copy="$1/src"
  run "cilium module $CILIUM_VERSION" "$log/cilium-module.log" cilium_module_dir
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
  # What the images take from the module besides the binaries (the CNI loopback plugin upstream's
  # image ships comes from the node group's cni/, the same containernetworking release).
  local m="$tmp/module"
  mkdir -p "$m/images/cilium" "$m/plugins/cilium-cni"
  cp -r "$copy/bpf" "$m/bpf"
  cp "$copy/images/cilium/init-container.sh" "$m/images/cilium/"
  cp "$copy"/plugins/cilium-cni/{install-plugin.sh,cni-uninstall.sh,05-cilium-cni.conf} "$m/plugins/cilium-cni/"
  rm -rf "$copy"
}

# pinned_module_dir MODULE VERSION SUM: the module's directory in the module cache, its hash checked
# against the pin (sum.golang.org does not list Calico's v0.0.0 pseudo-versions).
pinned_module_dir() {
  local json got
  json=$(cd "$root" && GOFLAGS=-mod=mod GONOSUMDB="$1" go mod download -json "$1@$2")
  got=$(sed -nE 's/^[[:space:]]*"Sum": "([^"]+)".*/\1/p' <<<"$json")
  if [[ "$got" != "$3" ]]; then
    echo "error: $1@$2 has hash ${got:-?}, lab/bins/calico/module.env pins $3" >&2
    echo "$json" >&2
    return 1
  fi
  sed -nE 's/^[[:space:]]*"Dir": "([^"]+)".*/\1/p' <<<"$json"
}

build_calico() {
  local tmp=$1 log=$2 src copy="$1/src"
  run "calico module $CALICO_RELEASE ($CALICO_VERSION)" "$log/calico-module.log" pinned_module_dir "$CALICO_MODULE" "$CALICO_VERSION" "$CALICO_SUM"
  run "calico api module $CALICO_API_VERSION" "$log/calico-api-module.log" pinned_module_dir "$CALICO_API_MODULE" "$CALICO_API_VERSION" "$CALICO_API_SUM"
  run "calico lib/std module $CALICO_STD_VERSION" "$log/calico-std-module.log" pinned_module_dir "$CALICO_STD_MODULE" "$CALICO_STD_VERSION" "$CALICO_STD_SUM"
  src=$(tail -n 1 "$log/calico-module.log")
  # Built as its own main module (its replace directives pin k8s.io and others), from a writable
  # copy. Its go.mod replaces github.com/projectcalico/api and .../lib/std with ./api and ./lib/std,
  # nested modules a module zip leaves out: those two replacements point at the pinned versions
  # instead (hashes checked above); every other line of go.mod and go.sum stays as published.
  cp -r "$src" "$copy"
  chmod -R u+w "$copy"
  (cd "$copy" && go mod edit -replace "$CALICO_API_MODULE=$CALICO_API_MODULE@$CALICO_API_VERSION" -replace "$CALICO_STD_MODULE=$CALICO_STD_MODULE@$CALICO_STD_VERSION")
  mkdir -p "$tmp/bin"
  local ldflags="-s -w -X github.com/projectcalico/calico/pkg/buildinfo.Version=$CALICO_RELEASE -X github.com/projectcalico/calico/pkg/buildinfo.GitRevision=${CALICO_VERSION##*-}"
  calico() {
    run "$1 $CALICO_RELEASE" "$log/$1.log" env -C "$copy" GOFLAGS=-mod=mod GONOSUMDB="$CALICO_API_MODULE,$CALICO_STD_MODULE" \
      go build -trimpath -ldflags "$ldflags" -o "$tmp/bin/$1" "$2"
  }
  say "calico-node $CALICO_RELEASE: building (the first build takes 5-10 minutes on 2 cores)"
  calico calico-node ./node/cmd/calico-node
  calico calico ./cni-plugin/cmd/calico
  calico install ./cni-plugin/cmd/install
  calico kube-controllers ./kube-controllers/cmd/kube-controllers
  calico check-status ./kube-controllers/cmd/check-status
  calico wrapper ./kube-controllers/cmd/wrapper
  mkdir -p "$tmp/manifests"
  cp "$copy/manifests/calico-vxlan.yaml" "$tmp/manifests/"
  cp -r "$copy/node/filesystem" "$tmp/filesystem"
  # A module zip keeps no file modes: start_runit, rc.local and runit's run scripts are commands.
  chmod 0755 "$tmp"/filesystem/sbin/* "$tmp/filesystem/etc/rc.local" "$tmp"/filesystem/etc/service/available/*/run "$tmp"/filesystem/etc/service/available/*/log/run
  rm -rf "$copy"
}

# A group's directory name changes whenever one of its inputs changes: a version, a go.mod or
# go.sum, our own sources, or the shell functions that build it (not the rest of this script).
# shellcheck disable=SC2086 # $1 is a list of function names
fingerprint() { { cat "${@:2}"; declare -f $1; } | sha256sum | cut -c1-12; }
group_dir() {
  case $1 in
    control-plane) echo "$root/k8s-$k8s_version-etcd-$etcd_version-kwok-$kwok_version-$(fingerprint "build_control_plane gobuild" "$here"/{kubernetes,etcd,kwok}/go.{mod,sum} "$here"/etcd/main.go)" ;;
    node) echo "$root/node-k8s-$k8s_version-containerd-$containerd_version-cni-$cni_version-flannel-$flannel_version-$(fingerprint "build_node build_flanneld build_pause gobuild" "$here"/{kubernetes,containerd,cni,flannel}/go.{mod,sum} "$here"/cni/flannel/main.go)" ;;
    cilium-chart) echo "$root/cilium-chart-$CILIUM_VERSION-helm-$helm_version-$(fingerprint "build_cilium_chart cilium_module_dir gobuild" "$here/cilium/module.env" "$here"/helm/go.{mod,sum})" ;;
    cilium) echo "$root/cilium-$CILIUM_VERSION-$(fingerprint "build_cilium cilium_module_dir" "$here/cilium/module.env")" ;;
    calico) echo "$root/calico-$CALICO_RELEASE-$(fingerprint "build_calico pinned_module_dir" "$here/calico/module.env")" ;;
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
command -v go >/dev/null || { echo "error: Go is needed to build the Kubernetes and Cilium binaries (see go.dev/doc/install)" >&2; exit 1; }

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
