# The project's image: Debian with Node.js 20 and iputils-ping (the agent's ICMP probes run the
# system ping), plus the two bundled files `make build` writes: the probe agent (the entrypoint, as
# the DaemonSet runs it) and the plugin, which the in-cluster run's Job runs (`run --in-cluster`).
# Build it with `make image`, which tags it as manifests/agent/kustomization.yaml names it.
FROM docker.io/library/node:20-bookworm-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends iputils-ping \
 && rm -rf /var/lib/apt/lists/*

COPY dist/agent.js /opt/cilium-migrate/agent.js
COPY dist/kubectl-cilium_migrate /opt/cilium-migrate/kubectl-cilium_migrate

# The node image's unprivileged user; the DaemonSet also sets runAsUser 1000.
USER 1000:1000
EXPOSE 8080
ENTRYPOINT ["node", "/opt/cilium-migrate/agent.js"]
