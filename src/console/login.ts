import type { FastifyInstance, FastifyRequest } from "fastify";
import { html } from "./html.ts";
import { safeNext } from "./auth.ts";
import { sendPage } from "./respond.ts";
import { sha256 } from "./sessions.ts";
import type { ConsoleContext } from "./routes.ts";

// Signing in with a token (a named MCP token, or the generated admin token) and signing out. The
// token travels only in a POSTed form body, never in a URL, and is never logged. Failed attempts
// are limited per client address (FAILURES_ALLOWED per FAILURE_WINDOW_MS, per process).

const FAILURES_ALLOWED = 10;
const FAILURE_WINDOW_MS = 5 * 60_000;

function failureCounter(now: () => number) {
  const byIp = new Map<string, { n: number; until: number }>();
  return {
    blocked(ip: string): boolean {
      const f = byIp.get(ip);
      return f !== undefined && f.until > now() && f.n >= FAILURES_ALLOWED;
    },
    fail(ip: string): void {
      const t = now();
      if (byIp.size > 10_000) for (const [k, v] of byIp) if (v.until <= t) byIp.delete(k);
      const f = byIp.get(ip);
      if (!f || f.until <= t) byIp.set(ip, { n: 1, until: t + FAILURE_WINDOW_MS });
      else f.n += 1;
    },
    clear(ip: string): void {
      byIp.delete(ip);
    },
  };
}

export function loginRoutes(app: FastifyInstance, ctx: ConsoleContext): void {
  const failures = failureCounter(Date.now);
  const sso = ctx.deps.config.console.oidc !== undefined;

  const form = (_req: FastifyRequest, next: string, error?: string) =>
    html`<section class="signin">
<h1>Sign in to Pitcrew</h1>
${error ? html`<p class="error" role="alert" id="signin-error">${error}</p>` : null}
<form method="post" action="/login">
<input type="hidden" name="next" value="${next}">
<label for="token">Access token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required spellcheck="false"${
      error ? html` aria-describedby="signin-error"` : null
    }>
<p class="hint">A token from <code>MCP_TOKENS</code>, or the generated admin token in <code>data/secrets/mcp.token</code>.
What you may do follows its scopes.</p>
<button type="submit">Sign in</button>
</form>
${sso ? html`<p class="or">or</p><p><a class="button" href="/auth/login?next=${encodeURIComponent(next)}">Sign in with SSO</a></p>` : null}
</section>`;

  app.get("/login", async (req, reply) => {
    const next = safeNext((req.query as Record<string, unknown>).next);
    const p = await ctx.auth.identify(req).catch(() => undefined);
    if (p?.via === "session") return reply.redirect(next, 303);
    return sendPage(reply, { title: "Sign in", current: null, principal: undefined, body: form(req, next) });
  });

  app.post("/login", async (req, reply) => {
    ctx.auth.checkOrigin(req);
    const body = (req.body ?? {}) as Record<string, unknown>;
    const next = safeNext(body.next);
    const ip = req.ip;
    const refuse = (status: number, message: string) =>
      sendPage(reply.status(status), {
        title: "Sign in",
        current: null,
        principal: undefined,
        body: form(req, next, message),
      });
    if (failures.blocked(ip))
      return refuse(429, "Too many failed sign-ins from this address. Wait a few minutes and try again.");
    const token = typeof body.token === "string" ? body.token.trim() : "";
    const r = token && !/\s/.test(token) ? await ctx.mcpAuth.authenticate(`Bearer ${token}`) : undefined;
    // Only static tokens start a session: a JWT would outlive its own expiry here (use SSO instead).
    if (!r?.ok || r.principal.via !== "token") {
      failures.fail(ip);
      req.log.warn({ ip }, "console sign-in refused");
      return refuse(401, "That token is not recognised.");
    }
    failures.clear(ip);
    const name = r.principal.subject;
    await ctx.auth.signIn(reply, {
      subject: name,
      scopes: r.principal.scopes,
      method: "token",
      via: name,
      credential: sha256(token),
    });
    return reply.redirect(next, 303);
  });

  app.post("/logout", async (req, reply) => {
    const p = await ctx.auth.identify(req).catch(() => undefined);
    if (p?.via === "session") ctx.auth.checkCsrf(req, p);
    else ctx.auth.checkOrigin(req);
    await ctx.auth.signOut(req, reply);
    return reply.redirect("/login", 303);
  });
}
