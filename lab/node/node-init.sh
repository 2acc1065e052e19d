#!/bin/bash
# A lab node's init, as kind's node container entrypoint and systemd are to a kind node. The lab
# starts it (lab/node/lab-node.ts) as
#
#   nsenter --net=/run/netns/NODE_NETNS -- unshare --mount --uts --ipc --pid --fork --kill-child \
#     --propagation private -- bash ROOTFS/usr/local/bin/lab-node-init boot NODE_DIR ROOTFS NAME ARCHIVE CGROUP
#
# so it is PID 1 of the node's own PID namespace, in the node's network namespace and in a mount
# namespace nothing leaks out of. `boot` builds the node's root file system (an overlay of the node
# image with the node's own upper directory, /var and /etc/kubernetes from the node's directory,
# fresh /proc, /sys and /run) and pivots into it; `run` (in the new root) starts containerd and
# kubelet and restarts them when they exit, as systemd would. Killing PID 1 kills the whole node
# (every process of a PID namespace dies with its init): that is how the lab stops or restarts it.
#
# The node never changes the machine: the sysctls kubelet sets machine-wide are files of the node
# bound over /proc/sys (kubelet finds them as it wants them), boot_id is the node's own, and the
# cgroups kubelet makes sit under the node's cgroupRoot, which the lab removes. Cilium's agent
# finds cgroup2 at /run/cilium/cgroupv2 mounted from a cgroup namespace rooted at the node's own
# cgroup (CGROUP, relative to the hierarchy's root): it sees the node's cgroups, nothing above.
set -euo pipefail

boot() {
  local dir=$1 lower=$2 name=$3 archive=$4 cgroup=$5
  local root=$dir/root
  mount -t overlay overlay -o "lowerdir=$lower,upperdir=$dir/upper,workdir=$dir/work" "$root"
  mkdir -p "$root/var" "$root/etc/kubernetes" "$root/proc" "$root/sys" "$root/run" "$root/dev" "$root/lib/modules"
  # /var outside the overlay, as kind's volume: containerd's overlayfs snapshots cannot live on one.
  mount --bind "$dir/var" "$root/var"
  mount --bind "$dir/kubernetes" "$root/etc/kubernetes"
  mount -t proc proc "$root/proc"
  # This network namespace's sysfs, with the machine's cgroup hierarchies under it.
  mount -t sysfs sysfs "$root/sys"
  mount --rbind /sys/fs/cgroup "$root/sys/fs/cgroup"
  # A BPF file system of the node's own (each mount is a new instance): what an agent pins there
  # stays in this node, and goes with it.
  mount -t bpf bpf "$root/sys/fs/bpf"
  mount -t tmpfs -o mode=755 tmpfs "$root/run"
  # cgroup2 for Cilium (its chart's cgroup.hostRoot), as its mount-cgroup init container would
  # mount it from the node's PID 1, but rooted at the node's own cgroup: the mount's root is the
  # cgroup namespace's, and that namespace is made by a subshell moved into the node's cgroup first.
  local unified=/sys/fs/cgroup/unified
  [[ -f $unified/cgroup.procs ]] || unified=/sys/fs/cgroup
  mkdir -p "$root/run/cilium/cgroupv2"
  (echo 0 >"$unified/$cgroup/cgroup.procs" && exec unshare --cgroup mount -t cgroup2 lab-cgroup2 "$root/run/cilium/cgroupv2")
  mount --rbind /dev "$root/dev"
  mount -t tmpfs -o mode=1777,size=64m shm "$root/dev/shm"
  # The machine's kernel modules, read-only, where modprobe looks (kube-proxy mounts the path).
  mkdir -p "$root/lib/modules"
  if [[ -d /lib/modules ]]; then mount --rbind /lib/modules "$root/lib/modules"; mount -o remount,bind,ro "$root/lib/modules" || true; fi
  # What the lab shares with the node: its control socket (systemctl reboot), the images to import.
  mkdir -p "$root/run/cilium-migrate-lab"
  mount --bind "$dir/lab" "$root/run/cilium-migrate-lab"
  touch "$root/run/cilium-migrate-lab/images.oci.tar"
  mount --bind -o ro "$archive" "$root/run/cilium-migrate-lab/images.oci.tar"
  # Machine-wide sysctls kubelet (and later agents) would write: the node's own files instead.
  local f
  for f in "$dir"/sysctl/*; do
    mount --bind "$f" "$root/proc/sys/$(basename "$f" | tr . /)"
  done
  mount --bind "$dir/lab/boot_id" "$root/proc/sys/kernel/random/boot_id"
  hostname "$name"
  cd "$root"
  mkdir -p .oldroot
  pivot_root . .oldroot
  cd /
  umount -l /.oldroot
  rmdir /.oldroot
  # kubelet's volume mounts propagate to the containers that need them (within this node).
  mount --make-rshared /
  exec /usr/local/bin/lab-node-init run
}

# keep NAME CMD...: runs CMD, and again a second after it exits, for as long as the node runs.
keep() {
  local name=$1
  shift
  while :; do
    "$@" >>"/var/log/$name.log" 2>&1 || true
    echo "$(date -Is) $name exited; starting it again" >>"/var/log/$name.log"
    sleep 1
  done
}

run() {
  # kind writes a fresh machine-id on every start of a node container.
  tr -d - </proc/sys/kernel/random/uuid >/etc/machine-id
  mkdir -p /var/lib/kubelet /var/log/pods /etc/cni/net.d /etc/kubernetes/manifests
  date -Is >/run/cilium-migrate-lab/started-at
  keep containerd containerd &
  local i
  for i in $(seq 1 300); do [[ -S /run/containerd/containerd.sock ]] && break; sleep 0.1; done
  # The lab's images, under the names the manifests use: imported once per archive, like kind load.
  local archive=/run/cilium-migrate-lab/images.oci.tar stamp=/var/lib/cilium-migrate-lab-images
  if [[ -s $archive ]] && [[ "$(cat "$stamp" 2>/dev/null)" != "$(cat /run/cilium-migrate-lab/images.id)" ]]; then
    ctr --namespace k8s.io images import --local "$archive" >>/var/log/images.log 2>&1 && cp /run/cilium-migrate-lab/images.id "$stamp"
  fi
  echo ready >/run/cilium-migrate-lab/runtime-ready
  keep kubelet kubelet --config=/etc/kubernetes/kubelet-config.yaml --kubeconfig=/etc/kubernetes/kubelet.conf \
    --node-ip="$(cat /etc/kubernetes/node-ip)" --hostname-override="$(hostname)" --v=2 &
  # PID 1 reaps whatever is orphaned in the node (containerd's shims among them).
  while :; do wait || true; done
}

case "${1:-}" in
  boot) shift; boot "$@" ;;
  run) run ;;
  *) echo "usage: lab-node-init boot NODE_DIR ROOTFS NAME ARCHIVE CGROUP | run" >&2; exit 2 ;;
esac
