# syntax=docker/dockerfile:1
# Pitcrew control plane (`pitcrew serve`). Build: docker build -t pitcrew .

# --- dependencies ------------------------------------------------------------------------------
FROM node:22-bookworm-slim AS deps
WORKDIR /app
# A toolchain for better-sqlite3, used only when no prebuilt binary fits this platform.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
# Production dependencies only. tsx is one of them (the TypeScript sources run as they are);
# typescript and vitest are dev dependencies and stay out of the image.
RUN npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force

# --- runtime -----------------------------------------------------------------------------------
FROM node:22-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json ./
COPY bin/ ./bin/
COPY src/ ./src/
COPY runner/ ./runner/
COPY migrations/ ./migrations/
COPY skills/ ./skills/
COPY schedules/ ./schedules/
COPY webhooks/ ./webhooks/
# The code stays root-owned and read-only for the app; only the data directory is writable.
RUN mkdir -p /app/data /srv/gitops && chown node:node /app/data /srv/gitops
USER node
EXPOSE 18088
# The slim image has no curl: ask node itself. Liveness only (/healthz never touches dependencies).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 18088) + '/healthz', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "bin/pitcrew.mjs"]
CMD ["serve"]
