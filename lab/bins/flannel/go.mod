// Pins Flannel for the lab: install-conf (kube-flannel.yml's init container) builds from here as
// is; flanneld builds from a copy of this module's directory with its tencentvpc backend import
// dropped (lab/bins/build.sh says why), so it is pinned here too.
module kubectl-cilium-migrate/lab/bins/flannel

go 1.26.0

tool github.com/flannel-io/flannel/cmd/install_conf

require github.com/flannel-io/flannel v0.28.10 // indirect
