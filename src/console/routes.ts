import type { FastifyInstance } from "fastify";
import type { McpToken } from "../config/load.ts";
import type { McpAuth } from "../mcp/auth.ts";
import type { McpDeps } from "../mcp/tool.ts";
import { toHttpError } from "../http/errors.ts";
import { assetRoutes } from "./assets.ts";
import { createConsoleAuth, type ConsoleAuth } from "./auth.ts";
import { html } from "./html.ts";
import { createLiveHub, liveRoutes, type LiveHub } from "./live.ts";
import { loginRoutes } from "./login.ts";
import { oidcRoutes } from "./oidc.ts";
import { sendPage, wantsHtml } from "./respond.ts";
import { addSecurityHeaders } from "./security.ts";
import { tasksPages } from "./tasks.ts";
import { fleetPages } from "./fleet.ts";
import { skillsPages } from "./skills.ts";
import { statusPages } from "./status.ts";
import { incidentsPages } from "./incidents.ts";
import { incidentPages } from "./incident.ts";
import { approvalsPages } from "./approvals.ts";

// The web console, on the control plane's port: registerConsole(app, deps) from http/app.ts. Its
// routes live in their own fastify scope, with the only form parser of the app
// (application/x-www-form-urlencoded), the security headers (security.ts) and an error handler that
// answers browsers with a page. A page file exports `(app, ctx) => void` and is listed in PAGES.
// Pages read through the same queries and services as the MCP tools (ctx.deps is their McpDeps).

export type ConsoleDeps = {
  /** The MCP tools' deps: store, queue, skills, approvals service, config… */
  deps: McpDeps;
  /** The /mcp authenticator: bearer tokens and JWTs are checked the same way here. */
  mcpAuth: McpAuth;
  /** The static tokens of this installation (mcpTokens(config).tokens). */
  tokens: McpToken[];
  /** How often /live looks for new events (ms); 500 by default. */
  liveIntervalMs?: number;
  /** How often /live sends a keep-alive comment (ms); 15 s by default. */
  liveHeartbeatMs?: number;
  /** The PATH the in-process runners search for agent CLIs (embedded mode), for the Status page. */
  agentPath?: string;
};

export type ConsoleContext = { deps: McpDeps; auth: ConsoleAuth; hub: LiveHub; mcpAuth: McpAuth; agentPath?: string };

export type ConsolePages = (app: FastifyInstance, ctx: ConsoleContext) => void;

const PAGES: ConsolePages[] = [
  incidentsPages,
  incidentPages,
  approvalsPages,
  tasksPages,
  fleetPages,
  skillsPages,
  statusPages,
];

const FORM_LIMIT = 64 * 1024;

export async function registerConsole(app: FastifyInstance, c: ConsoleDeps): Promise<void> {
  const { deps } = c;
  const auth = createConsoleAuth({
    store: deps.store,
    log: deps.log,
    now: deps.now,
    mcpAuth: c.mcpAuth,
    tokens: c.tokens,
    sessionTtlMs: deps.config.console.sessionTtlMs,
    publicUrl: deps.config.publicUrl,
  });
  const hub = createLiveHub({ store: deps.store, log: deps.log, intervalMs: c.liveIntervalMs });
  const ctx: ConsoleContext = { deps, auth, hub, mcpAuth: c.mcpAuth, agentPath: c.agentPath };

  app.addContentTypeParser(
    "application/x-www-form-urlencoded",
    { parseAs: "string", bodyLimit: FORM_LIMIT },
    (_req, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(String(body))));
    },
  );
  addSecurityHeaders(app);
  app.setErrorHandler(async (err, req, reply) => {
    const { status, body, log } = toHttpError(err, String(req.id));
    if (log === "error") req.log.error({ err }, "unhandled error");
    else if (log === "warn") req.log.warn({ code: body.error.code, message: body.error.message }, "request failed");
    if (!wantsHtml(req)) return reply.status(status).send(body);
    const principal = await auth.identify(req).catch(() => undefined);
    const title =
      status === 403
        ? "Not allowed"
        : status === 404
          ? "Not found"
          : status >= 500
            ? "Something went wrong"
            : "Cannot do that";
    return sendPage(reply.status(status), {
      title,
      current: null,
      principal,
      body: html`<h1>${title}</h1><p role="alert">${body.error.message}</p><p class="muted">Request ${body.error.requestId}</p>`,
    });
  });
  // Streams end when the server closes, so closing does not wait for open pages.
  app.addHook("preClose", async () => hub.close());

  assetRoutes(app);
  app.get("/", async (_req, reply) => reply.redirect("/incidents", 303));
  loginRoutes(app, ctx);
  oidcRoutes(app, ctx);
  liveRoutes(app, { auth, hub, heartbeatMs: c.liveHeartbeatMs });
  for (const register of PAGES) register(app, ctx);
}
