# syntax=docker/dockerfile:1
# Sluice image.
#   docker build -t sluice .                                  the proxy (default target: runtime)
#   docker build --target firewall -t sluice-firewall .       one-shot iptables helper (compose, sidecar init)
#
# The runtime runs as the fixed UID/GID 10001: the generated iptables rules exempt exactly that UID, so the
# proxy is the one process whose packets may leave. It needs no writable path but /tmp, so it runs with a
# read-only root filesystem (compose `read_only: true` + tmpfs /tmp; Kubernetes readOnlyRootFilesystem).
ARG NODE_IMAGE=node:24-slim

# --- build: compile TypeScript with the full (dev) dependency set --------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
# .dockerignore lets in only what the build needs (sources, tsconfig, iptables/).
COPY . .
RUN npm run build

# --- deps: production dependencies only, so no compiler or test tool reaches the runtime image ----------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts

# --- base: what both final images share ------------------------------------------------------------------
FROM ${NODE_IMAGE} AS base
RUN groupadd --system --gid 10001 sluice \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin sluice
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
RUN chmod 0755 /app/dist/proxy/cli.js && ln -s /app/dist/proxy/cli.js /usr/local/bin/sluice
ENV NODE_ENV=production \
    SLUICE_ENV=production \
    SLUICE_CONFIG=/etc/sluice/sluice.yaml

# --- firewall: applies the rules `sluice firewall render` prints (needs root, NET_ADMIN and NET_RAW) -----
# Not the default target: it is built only with --target firewall, and only it carries iptables.
FROM base AS firewall
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables iproute2 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/iptables/setup.sh /app/iptables/setup.sh
# Callers pass the whole command (render, then `setup.sh apply`); alone, the image verifies the rules.
ENTRYPOINT []
CMD ["/app/iptables/setup.sh", "verify"]

# --- runtime (default target) ----------------------------------------------------------------------------
FROM base AS runtime
USER 10001:10001
# 3128 HTTP proxy, 1080 SOCKS5, 9090 admin (/metrics, /healthz, /readyz).
EXPOSE 3128 1080 9090
# SIGTERM makes Sluice stop accepting, drain open requests (limits.drainMs), close tunnels and exit.
# node handles it itself as PID 1 (the CLI installs the handler); it spawns no children to reap.
STOPSIGNAL SIGTERM
# node:24-slim has no curl: node's own fetch probes the admin listener. SLUICE_HEALTHCHECK_URL overrides
# the URL where the admin listener is bound to another address (see compose/compose.yaml).
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.SLUICE_HEALTHCHECK_URL||'http://127.0.0.1:9090/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "/app/dist/proxy/cli.js"]
CMD ["serve", "--config", "/etc/sluice/sluice.yaml"]
