# syntax=docker/dockerfile:1
# Pitcrew: one image definition, two targets.
#   control plane: docker build -t pitcrew .                     (the default, last stage)
#   runner:        docker build --target runner -t pitcrew-runner .
# Both run git: runners clone and push GitOps repositories, the control plane merges approved
# pull requests and, in embedded mode, runs the runners itself.

# --- dependencies ------------------------------------------------------------------------------
FROM node:22-bookworm-slim AS deps
WORKDIR /app
# A toolchain for better-sqlite3, used only when no prebuilt binary fits this platform.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
# Production dependencies only: typescript, tsx and vitest are dev dependencies and stay out of
# the image, which runs the compiled JavaScript.
RUN npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force

# --- build: the TypeScript sources compiled to dist/ (npm run build) -----------------------------
FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Every dependency, for typescript; no install scripts (tsc needs no native binary).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY bin/ ./bin/
COPY src/ ./src/
COPY runner/ ./runner/
COPY migrations/ ./migrations/
RUN node bin/build.mjs

# --- shared runtime ----------------------------------------------------------------------------
FROM node:22-bookworm-slim AS runtime
# git and the CA bundle, to clone, push and merge over HTTPS.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json ./
# The build output (code, console assets, the askpass helper), not the sources. bin/ for
# `pitcrew demo`, which starts a control plane through bin/pitcrew.mjs (it runs dist/ here).
COPY --from=build /app/dist/ ./dist/
COPY bin/ ./bin/
COPY skills/ ./skills/
COPY schedules/ ./schedules/
COPY webhooks/ ./webhooks/
# The code stays root-owned and read-only for the app; only the data directories are writable.
RUN mkdir -p /app/data /srv/gitops && chown node:node /app/data /srv/gitops
USER node
ENTRYPOINT ["node", "dist/src/main/cli.js"]

# --- runner: needs NATS_URL, never the database, serves no HTTP --------------------------------
FROM runtime AS runner
# A user of its own for coding agents (uid/gid 10001, no home, no shell, owns nothing here), so an
# agent cannot read the runner's secrets (/proc/<runner>/environ, the GitHub App key). Starting
# processes as another user needs root: to use it, run this container as root with
# AGENT_UID=10001 AGENT_GID=10001 (README: Isolating coding agents). Install agent CLIs in an
# image built on this one.
USER root
RUN groupadd --system --gid 10001 agent \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin agent
USER node
# No HEALTHCHECK: a runner has no HTTP server; it reports liveness by heartbeats on NATS.
CMD ["runner"]

# --- control plane (default) -------------------------------------------------------------------
FROM runtime AS serve
EXPOSE 18088
# The slim image has no curl: ask node itself. Liveness only (/healthz never touches dependencies).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 18088) + '/healthz', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["serve"]
