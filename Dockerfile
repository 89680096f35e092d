# Sluice image. No `# syntax=` line: the build uses the builder's own Dockerfile frontend, so an air-gapped
# builder never tries to pull one.
#   docker build -t sluice .                                  the proxy (default target: runtime)
#   docker build --target firewall -t sluice-firewall .       one-shot iptables helper (compose, sidecar init)
#
# The runtime runs as the fixed UID/GID 10001: the generated iptables rules exempt exactly that UID, so the
# proxy is the one process whose packets may leave. It needs no writable path but /tmp, so it runs with a
# read-only root filesystem (compose `read_only: true` + tmpfs /tmp; Kubernetes readOnlyRootFilesystem).
#
# The base image is pinned by digest: node:24-slim (Debian slim, Node 24), the multi-arch index digest.
# Refresh it deliberately: docker buildx imagetools inspect node:24-slim, then replace the digest here.
ARG NODE_IMAGE=node:24-slim@sha256:a9f5f7c91a432850b2a8a7797adf5eadb6c733ceed61167806cee7ea7fbc29df
ARG VERSION=0.1.0
ARG REVISION=unknown

# --- build: compile TypeScript -----------------------------------------------------------------------------
# Production dependencies (their type declarations are part of the build), plus only the compiler and the
# three type packages the sources need (json-schema-to-ts derives the config types from the schema), at the
# versions package-lock.json pins (test/packaging/dockerfile.test.ts keeps them equal). The development set
# (helm's layer, kubernetes-models, tap, linters) is never installed.
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts \
 && mkdir /tools && echo '{"private":true}' > /tools/package.json \
 && npm install --prefix /tools --no-audit --no-fund --ignore-scripts --no-package-lock \
      typescript@5.9.3 @types/node@20.19.43 @types/dns-packet@5.6.5 json-schema-to-ts@3.1.1 \
 && cp -R /tools/node_modules/. node_modules/
# .dockerignore lets in only what the build needs (sources, tsconfig, iptables/, the validator precompiler).
COPY . .
RUN node_modules/.bin/tsc -p tsconfig.build.json \
 && node scripts/precompile-validators.mjs

# --- deps: production dependencies only, so no compiler or test tool reaches the runtime image ----------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts

# --- base: what both final images share ------------------------------------------------------------------
FROM ${NODE_IMAGE} AS base
ARG VERSION
ARG REVISION
# No package manager at run time: npm, npx, corepack (and yarn, where the base image has it) are removed, so
# code that reaches a shell in the image cannot install anything, and scanners see none of their dependencies.
RUN groupadd --system --gid 10001 sluice \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin sluice \
 && rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack /opt/yarn-* \
      /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack /usr/local/bin/yarn /usr/local/bin/yarnpkg
LABEL org.opencontainers.image.title="sluice" \
      org.opencontainers.image.description="Egress proxy and firewall sidecar for containers that run untrusted code" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="docker.io/library/node:24-slim"
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
RUN chmod 0755 /app/dist/proxy/cli.js && ln -s /app/dist/proxy/cli.js /usr/local/bin/sluice
ENV NODE_ENV=production \
    SLUICE_ENV=production \
    SLUICE_CONFIG=/etc/sluice/sluice.yaml

# --- firewall: applies the rules `sluice firewall render` prints (needs root, NET_ADMIN and NET_RAW) -----
# Not the default target: it is built only with --target firewall, and only it carries iptables (both of
# Debian's backends, legacy and nft: setup.sh picks the host's with IPTABLES_BACKEND=auto).
FROM base AS firewall
LABEL org.opencontainers.image.title="sluice-firewall" \
      org.opencontainers.image.description="Applies and self-tests Sluice's iptables rules (compose host rules, sidecar init container)"
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
