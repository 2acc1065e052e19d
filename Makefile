# The one way to build, test and run kubectl-cilium-migrate. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PREFIX ?= /usr/local
NODE_TEST := node --import tsx --test --test-reporter=spec
# Limit for the integration run: Node 20 applies --test-timeout to the whole file test/integration.ts
# imports, so this bounds the suite (about 10-15 minutes here) and still stops a hung test well
# inside CI's 90 minutes.
TEST_TIMEOUT_MS ?= 2700000

.PHONY: help deps system-deps bins calico-bins images build typecheck test test-unit test-integration install uninstall demo lab-up lab-down lab-status clean bench bench-agent bench-drain bench-node bench-probe-load bench-startup bench-detection bench-lab bench-lab-node bench-real-lab bench-scale bench-scale-reads bench-discovery bench-connectivity bench-end-to-end dashboard image image-ref krew-archive

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

system-deps: ## install missing machine packages (openssl, iproute2, iptables, ...) and check Go and Node
	@lab/install-system-deps.sh

deps: node_modules/.package-lock.json ## install the npm dependencies from package-lock.json

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

bins: system-deps ## build (or reuse) the control plane (etcd, kube-apiserver, ..., kubectl, kwok), the lab nodes' binaries (kubelet, containerd, CNI plugins, flanneld, ...), helm with Cilium's chart, and Cilium (agent, operator, CNI, ...)
	@lab/bins/build.sh >/dev/null

calico-bins: system-deps ## build (or reuse) Calico v3.31.0 from its module (calico-node, its CNI plugin, kube-controllers) for lab up --legacy calico
	@lab/bins/build.sh calico >/dev/null

images: build bins ## build (or reuse) the lab's node image and the images its pods run, Cilium's among them (from Debian packages, needs root)
	@node --import tsx lab/images/build.ts >/dev/null

typecheck: deps ## type-check everything with tsc (strict)
	node_modules/.bin/tsc -p .

build: deps ## bundle dist/kubectl-cilium_migrate and dist/agent.js
	node build.mjs

test: test-unit test-integration ## everything CI runs: unit and integration tests

test-unit: typecheck ## unit tests (no cluster)
	$(NODE_TEST) --test-timeout=60000 test/unit.ts

# The integration run gets its own TMPDIR, so that afterwards test/after-suite.ts can prove that
# no process it started still runs and no temporary file is left (tsx's cache is off for that).
test-integration: build bins calico-bins images ## integration tests against a real control plane and the real-node lab
	@run_tmp=$$(mktemp -d /tmp/cilium-migrate-test.XXXXXX); rc=0; \
	TMPDIR=$$run_tmp TSX_DISABLE_CACHE=1 $(NODE_TEST) --test-timeout=$(TEST_TIMEOUT_MS) test/integration.ts || rc=$$?; \
	SUITE_TMPDIR=$$run_tmp $(NODE_TEST) test/after-suite.ts || rc=$${rc/#0/1}; \
	rm -rf "$$run_tmp"; exit $$rc

# Benchmarks rewrite their own section of BENCHMARKS.md. `make bench` runs those of small clusters
# (about an hour here); `make bench-scale` those of 1,000 simulated nodes (a few hours on 2 cores).
bench: bench-agent bench-probe-load bench-startup bench-drain bench-node bench-detection bench-lab bench-lab-node bench-real-lab ## every benchmark of a small cluster; rewrites BENCHMARKS.md (make bench-scale for 1,000 nodes)

bench-scale: bench-scale-reads bench-discovery bench-connectivity bench-end-to-end ## every benchmark of 1,000 simulated nodes (takes hours); rewrites their sections of BENCHMARKS.md

bench-agent: build system-deps ## agent RSS, CPU, probes/s and series at 10, 100 and 1,000 peers (peers file), and what its libraries cost
	node --import tsx bench/agent-resources.ts

bench-probe-load: build ## probes sent and received at 1,000 nodes during a wave of 50, with and without the focus budget; the CPU of an ICMP and an HTTP probe
	node --import tsx bench/probe-load.ts

bench-startup: build bins ## plugin start-up (--help, status), bundle sizes, minified or not; agent start to /healthz
	node --import tsx bench/startup.ts

bench-drain: build bins ## drain of 100 and 500 pods that take time to stop, under a budget that forces 429s: ours against kubectl drain, by phase
	node --import tsx bench/drain.ts

bench-node: build bins ## the engine's own time and API requests per node (a ceiling: instant kwok pods, no restart)
	node --import tsx bench/node-overhead.ts

bench-detection: build bins system-deps ## time from a fault to FAIL and from an agent Ready to PASS, real agents in network namespaces
	node --import tsx bench/detection.ts

bench-lab: build bins images ## make demo's migration on the local lab, several times: its time and the probes that failed (needs root)
	node --import tsx bench/lab-scenario.ts

bench-lab-node: build bins images ## per-node step times on the local lab at the plugin's defaults (needs root)
	node --import tsx bench/lab-node.ts

bench-real-lab: build bins images ## the real-node lab: lab up (3 and 5 nodes), a node at rest, back from docker restart, lab down (BENCH_COLD=1: the cold builds too; needs root)
	node --import tsx bench/real-lab.ts

bench-scale-reads: build bins ## status and plan on 1,000 nodes x 30 pods of realistic size, today's plugin against the one before paging
	node --import tsx bench/scale.ts

bench-discovery: build bins system-deps ## one agent's discovery of 1,000 nodes, then 1,000 agents' watches: agent RSS/CPU and API server CPU and events during a wave, before and after
	node --import tsx bench/discovery-scale.ts

bench-connectivity: build bins system-deps ## connectivity reading the matrix of 1,000 simulated agents through the API server
	node --import tsx bench/connectivity-read.ts

bench-end-to-end: build bins system-deps ## run --max-unavailable 50 on 1,000 nodes with the matrix gate, 20 s agent restarts and 60 s node restarts (BENCH_NODES to scale down)
	node --import tsx bench/e2e-scale.ts

# The image reference is written once, in manifests/agent/kustomization.yaml (images: newName and newTag).
IMAGE_REF = $(shell sed -nE 's/^ *newName: *([^ ]+).*/\1/p' manifests/agent/kustomization.yaml):$(shell sed -nE 's/^ *newTag: *"?([^ "]+)"?.*/\1/p' manifests/agent/kustomization.yaml)

image-ref: ## print the agent image reference the DaemonSet uses
	@echo $(IMAGE_REF)

# The engine is checked before anything is built, so a machine without one learns it at once.
image: ## build the agent's container image with docker or podman (CONTAINER_ENGINE=...), tagged as the kustomization names it
	@engine="$${CONTAINER_ENGINE:-$$(command -v docker || command -v podman || true)}"; \
	if [ -z "$$engine" ]; then echo "make image: no container engine: install docker or podman (or set CONTAINER_ENGINE)" >&2; exit 2; fi; \
	if ! command -v "$$engine" >/dev/null; then echo "make image: container engine \"$$engine\" not found: install docker or podman (or set CONTAINER_ENGINE)" >&2; exit 2; fi; \
	if ! "$$engine" info >/dev/null 2>&1; then echo "make image: $$engine is installed but does not answer (\"$$engine info\" fails): start its daemon or service" >&2; exit 2; fi; \
	$(MAKE) --no-print-directory build && "$$engine" build -t "$(IMAGE_REF)" . && echo "built $(IMAGE_REF); load it into the cluster (e.g. kind load docker-image $(IMAGE_REF)) or push it"

VERSION = $(shell node -p "require('./package.json').version")

krew-archive: build ## the archive plugins/cilium-migrate.yaml installs, and its sha256 for that manifest
	tar -c -C dist --owner=0 --group=0 --mtime=@0 kubectl-cilium_migrate | gzip -n > dist/kubectl-cilium_migrate-v$(VERSION).tar.gz
	@sha256sum dist/kubectl-cilium_migrate-v$(VERSION).tar.gz

dashboard: deps ## regenerate manifests/monitoring/grafana-dashboard.json from monitoring/dashboard.ts
	node --import tsx monitoring/generate-dashboard.ts

install: build ## put the plugin on PATH ($(PREFIX)/bin), so kubectl finds it
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 dist/kubectl-cilium_migrate $(DESTDIR)$(PREFIX)/bin/kubectl-cilium_migrate
	@echo "installed; try: kubectl cilium-migrate --help"

uninstall: ## remove the plugin from $(PREFIX)/bin
	rm -f $(DESTDIR)$(PREFIX)/bin/kubectl-cilium_migrate

# The lab's layout, for make demo and make lab-up (`node dist/lab.js up --help` says more): the node
# count, Flannel's pod network and VXLAN port, Cilium's cluster-pool CIDR and VXLAN port, and the
# namespace Cilium's Helm release goes to. The defaults are the seed's; the lab refuses overlapping
# CIDRs and equal ports before it starts anything, e.g.
#   make demo NODES=5 LEGACY_CIDR=10.42.0.0/16 CILIUM_CIDR=10.200.0.0/16 LEGACY_PORT=8555 CILIUM_PORT=8666 CILIUM_NAMESPACE=cilium
NODES ?= 3
LEGACY_CIDR ?= 10.244.0.0/16
CILIUM_CIDR ?= 10.245.0.0/16
LEGACY_PORT ?= 8472
CILIUM_PORT ?= 8473
CILIUM_NAMESPACE ?= kube-system
LAB_LAYOUT = --nodes '$(NODES)' --legacy-cidr '$(LEGACY_CIDR)' --cilium-cidr '$(CILIUM_CIDR)' --legacy-tunnel-port '$(LEGACY_PORT)' --cilium-tunnel-port '$(CILIUM_PORT)' --cilium-namespace '$(CILIUM_NAMESPACE)'

demo: build bins images ## the seed's migration to Cilium, end to end, on a local dual-overlay lab (needs root; layout: NODES, LEGACY_CIDR, CILIUM_CIDR, LEGACY_PORT, CILIUM_PORT, CILIUM_NAMESPACE)
	node dist/lab.js demo $(LAB_LAYOUT)

lab-up: build bins images ## bring the local lab (real nodes, as kind) up and leave it running (needs root; the same layout variables as demo); prints its kubeconfig
	node dist/lab.js up $(LAB_LAYOUT)

lab-down: ## stop the local lab and remove everything it made
	@if [ -f dist/lab.js ]; then node dist/lab.js down; else echo "no lab (dist/lab.js is not built)"; fi

lab-status: ## the lab's nodes, their CNI config and pods per overlay
	node dist/lab.js status

clean: ## remove build output (the binary cache outside the repo stays)
	rm -rf dist .test-run
