#!/usr/bin/env bash
# Installs the machine packages the build, the tests and the lab need, when they are missing:
# openssl (test PKI), util-linux (setpriv), iproute2 and iptables (network namespaces), nftables
# (the node cleanup of a legacy CNI in nftables mode), procps,
# iputils-ping (the agent's ICMP probes through the ping package), chromium (the HTML view's test
# opens the page headless), prometheus (the monitoring test evaluates the dashboard's queries and
# the alerts with it), mmdebstrap (the lab's images are Debian root file systems; it runs in a
# mount namespace of its own, made by util-linux's unshare), ca-certificates (the CA bundle of
# Cilium's operator image), gcc and libc6-dev (pause and flanneld are linked statically, as
# upstream builds them).
# Go (>= the version in lab/bins/*/go.mod) must already be there: Debian's is too old.
set -euo pipefail

need=()
command -v openssl >/dev/null || need+=(openssl)
command -v setpriv >/dev/null || need+=(util-linux)
command -v ip >/dev/null || need+=(iproute2)
command -v iptables >/dev/null || need+=(iptables)
command -v nft >/dev/null || need+=(nftables)
command -v pgrep >/dev/null || need+=(procps)
command -v ping >/dev/null || need+=(iputils-ping)
[[ -x /usr/bin/chromium ]] || need+=(chromium)
command -v prometheus >/dev/null || need+=(prometheus)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
[[ -f /etc/ssl/certs/ca-certificates.crt ]] || need+=(ca-certificates)
command -v gcc >/dev/null || need+=(gcc)
[[ -f /usr/lib/x86_64-linux-gnu/libc.a ]] || need+=(libc6-dev)

if ((${#need[@]})); then
  if [[ $(id -u) != 0 ]]; then
    echo "error: missing packages: ${need[*]}; install them as root (apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

want=$(sed -nE 's/^go ([0-9.]+).*/\1/p' "$(dirname "$0")/bins/kubernetes/go.mod")
if ! command -v go >/dev/null; then
  echo "error: Go $want or newer is needed to build the control-plane binaries (see go.dev/doc/install)" >&2
  exit 1
fi
have=$(go env GOVERSION | sed 's/^go//')
if [[ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -n 1)" != "$want" ]]; then
  echo "error: Go $have is older than the $want the control-plane modules need" >&2
  exit 1
fi
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
  echo "error: Node.js 20.19 or newer is needed (found $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi
