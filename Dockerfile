# The probe agent's image: Debian with Node.js 20 and iputils-ping (the agent's ICMP probes run the
# system ping), plus the one bundled file `make build` writes. Build it with `make image`, which tags
# it as manifests/agent/kustomization.yaml names it.
FROM docker.io/library/node:20-bookworm-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends iputils-ping \
 && rm -rf /var/lib/apt/lists/*

COPY dist/agent.js /opt/cilium-migrate/agent.js

# The node image's unprivileged user; the DaemonSet also sets runAsUser 1000.
USER 1000:1000
EXPOSE 8080
ENTRYPOINT ["node", "/opt/cilium-migrate/agent.js"]
