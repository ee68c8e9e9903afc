import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from "fastify";
import type { Logger } from "../shared/logger.ts";
import type { Store } from "../store/db.ts";
import type { TaskQueue } from "../bus/port.ts";
import { newId } from "../shared/ids.ts";
import { errorHandler } from "./errors.ts";
import type { Metrics } from "../shared/metrics.ts";
import { healthRoutes } from "./routes/health.ts";
import { alertmanagerRoutes, type AlertmanagerRouteDeps } from "../alerts/route.ts";
import { mcpRoutes, type McpRouteDeps } from "../mcp/route.ts";
import { telegramWebhookRoutes, type TelegramWebhookDeps } from "../approvals/telegram-webhook.ts";
import { jwksRoutes, type JwksRouteDeps } from "../webhooks/jwks-route.ts";
import { callbackRoutes, type CallbackRouteDeps } from "../webhooks/callbacks.ts";
import { registerConsole, type ConsoleDeps } from "../console/routes.ts";

export type HttpDeps = {
  log: Logger;
  store: Store;
  queue: TaskQueue;
  metrics: Metrics;
  bodyLimit: number;
  /** Time to receive a whole request (BODY_TIMEOUT); a slower client gets 408. 0: no limit. */
  requestTimeoutMs?: number;
  /** The AlertManager webhook (with its own body limit); absent in tests of the bare shell. */
  alertmanager?: Omit<AlertmanagerRouteDeps, "metrics">;
  /** The MCP endpoint (POST /mcp); absent in tests of the bare shell. */
  mcp?: McpRouteDeps;
  /** The Telegram webhook (POST /webhooks/telegram); only in webhook mode, where it has a secret. */
  telegram?: TelegramWebhookDeps;
  /** GET /.well-known/jwks.json, the public keys of JWS-signed webhooks. */
  jwks?: JwksRouteDeps;
  /** External agents' claim and result callbacks (POST /api/v1/incidents/:id/claims|results). */
  callbacks?: CallbackRouteDeps;
  /** The web console (pages, sign-in, /live); absent in tests of the bare shell. */
  console?: ConsoleDeps;
};

/** Assembles the HTTP app; does not listen (tests use inject, main/serve.ts listens). */
export async function buildHttpApp(deps: HttpDeps): Promise<FastifyInstance> {
  const requestTimeout = deps.requestTimeoutMs ?? 0;
  const app = Fastify({
    loggerInstance: deps.log as FastifyBaseLogger,
    bodyLimit: deps.bodyLimit,
    // A body trickled in slowly is cut off with 408, token or not (fastify's default is no limit).
    // Node checks the deadline every connectionsCheckingInterval, 30 s by default: too coarse; at
    // most 1 s here, so the cut comes within a second of BODY_TIMEOUT.
    requestTimeout,
    ...(requestTimeout > 0
      ? {
          http: {
            requestTimeout,
            headersTimeout: Math.min(60_000, requestTimeout),
            connectionsCheckingInterval: Math.min(1000, Math.max(250, Math.floor(requestTimeout / 4))),
          },
        }
      : {}),
    // Requests are logged once, by the onResponse hook below, with the matched route.
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: "x-request-id",
    genReqId: () => newId("req"),
    // Refuse prototype-pollution keys in JSON bodies outright.
    onProtoPoisoning: "error",
    onConstructorPoisoning: "error",
    return503OnClosing: true,
    forceCloseConnections: "idle",
  });

  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((req, reply) =>
    reply.status(404).send({
      error: {
        code: "route.not_found",
        message: `no route for ${req.method} ${req.url.split("?")[0]}`,
        requestId: String(req.id),
      },
    }),
  );

  app.addHook("onResponse", async (req, reply) => {
    const route = req.routeOptions.url ?? "unmatched";
    deps.metrics.httpDuration.observe(
      { method: req.method, route, status_code: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
    if (reply.statusCode >= 500)
      req.log.warn({ method: req.method, route, status: reply.statusCode }, "request answered with an error");
    else
      req.log.debug(
        { method: req.method, route, status: reply.statusCode, ms: Math.round(reply.elapsedTime) },
        "request",
      );
  });

  await app.register(async (scope) => healthRoutes(scope, deps));
  if (deps.alertmanager) {
    const am = deps.alertmanager;
    await app.register(async (scope) => alertmanagerRoutes(scope, { ...am, metrics: deps.metrics }));
  }
  if (deps.mcp) {
    const mcp = deps.mcp;
    await app.register(async (scope) => mcpRoutes(scope, mcp));
  }
  if (deps.telegram) {
    const telegram = deps.telegram;
    await app.register(async (scope) => telegramWebhookRoutes(scope, telegram));
  }
  if (deps.jwks) {
    const jwks = deps.jwks;
    await app.register(async (scope) => jwksRoutes(scope, jwks));
  }
  if (deps.callbacks) {
    const callbacks = deps.callbacks;
    // Its own scope: the JSON parser that keeps the raw body for signatures stays inside it.
    await app.register(async (scope) => callbackRoutes(scope, callbacks));
  }
  if (deps.console) {
    const consoleDeps = deps.console;
    // Its own scope: the form parser, security headers and HTML error pages stay inside it.
    await app.register(async (scope) => registerConsole(scope, consoleDeps));
  }
  return app;
}
