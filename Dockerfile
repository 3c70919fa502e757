# syntax=docker/dockerfile:1
#
# One image for every Transit role; the role is the command:
#   docker build -t transit .
#   docker run transit frontend        # runs services/frontend/src/main.ts
#   docker run transit transitctl get receiveconnector   # the admin CLI (NATS_URL)
#
# Node 24 runs the TypeScript sources directly (type stripping); the one build step bundles
# the admin dashboard's browser script (stage `dashboard`).
# The repo's `node` devDependency (Node from the npm registry) is left out by --omit=dev:
# the image runs the base image's Node.
#
# Reproducible: dependencies come only from package-lock.json (`npm ci`), and the base is
# pinned to the Node release the test suite runs on (the `node` devDependency). A release
# build should pin the base by digest as well, e.g.
#   docker build --build-arg NODE_IMAGE=node:24.21.0-slim@sha256:<digest> .
# because a tag's Debian packages are refreshed when the tag is rebuilt.
# No secrets: nothing from the host but the manifests, libs/, services/, tools/, config/ and
# the entry point reaches the build (.dockerignore is an allowlist); certificates and the
# cluster secret are mounted at run time (TRANSIT_TLS_CERT/KEY, TRANSIT_CLUSTER_SECRET).

ARG NODE_IMAGE=node:24.21.0-slim

# --- manifests: only the package.json files of the workspaces, at their paths ----------
# Copying the sources and deleting everything else keeps the next stage's layer identical
# while no manifest changes, so `npm ci` stays cached across source edits, and a new
# workspace under libs/, services/ or tools/ needs no edit here.
FROM ${NODE_IMAGE} AS manifests
WORKDIR /src
COPY libs/ libs/
COPY services/ services/
COPY tools/ tools/
RUN find libs services tools -type f ! -name package.json -delete \
 && find libs services tools -depth -type d -empty -delete

# --- deps: production dependencies only --------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY --from=manifests /src/ ./
# No production dependency has an install script (only the omitted `node` devDependency does).
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force

# --- dashboard: the admin page's script, bundled with esbuild (a devDependency) ------------
# The runtime has production dependencies only, so the admin service serves this prebuilt
# bundle instead of bundling the page at start as it does in a checkout.
FROM ${NODE_IMAGE} AS dashboard
WORKDIR /app
COPY package.json package-lock.json ./
COPY --from=manifests /src/ ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY libs/ libs/
COPY services/ services/
COPY scripts/build-dashboard.ts scripts/
RUN node scripts/build-dashboard.ts

# --- runtime -------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime

# tini as PID 1: forwards SIGTERM to node (which stops gracefully once its handlers are
# installed, and is ended by the signal before that, e.g. while it waits for NATS).
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 transit \
 && useradd --system --uid 10001 --gid transit --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin transit \
 && mkdir -p /var/lib/transit/mail /var/lib/transit/pickup /etc/transit \
 && chown -R transit:transit /var/lib/transit

WORKDIR /app
# Application files stay owned by root: the service user can read them, not change them.
COPY --from=deps /app/package.json /app/package-lock.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY libs/ libs/
COPY services/ services/
COPY tools/ tools/
COPY config/ config/
COPY --from=dashboard /app/services/admin/public/ services/admin/public/
COPY deploy/docker/entrypoint.sh /usr/local/bin/transit-entrypoint
# `kubectl exec deploy/admin -- transitctl ...` and `docker compose exec admin transitctl ...`
# bypass the entry point, so the CLI is on PATH as well.
RUN ln -s /app/tools/transitctl/bin/transitctl.js /usr/local/bin/transitctl

# The role to run when no command is given (`docker build --build-arg TRANSIT_ROLE=hub`).
ARG TRANSIT_ROLE=""
ENV TRANSIT_ROLE=${TRANSIT_ROLE} \
    NODE_ENV=production \
    TRANSIT_CONFIG=/app/config/examples/contoso.yaml \
    TRANSIT_LISTEN_HOST=0.0.0.0 \
    TRANSIT_HTTP_PORT=8080 \
    TRANSIT_VAR_DIR=/var/lib/transit

USER 10001:10001

# SMTP: 25 Default Frontend, 587 Client Frontend, 2525 hub, 717 outbound proxy; 8080 HTTP
# (health on every role, the admin API on admin). Ports below 1024 need
# net.ipv4.ip_unprivileged_port_start=0 for this non-root user: Docker sets it by default,
# Kubernetes pods set it through securityContext.sysctls (see deploy/k8s).
EXPOSE 25 587 2525 717 8080

# Liveness: the health server starts only after NATS is reached and the streams exist,
# hence the start period.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.TRANSIT_HTTP_PORT || '8080') + '/healthz', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/transit-entrypoint"]
