import type { FastifyReply, FastifyRequest } from "fastify";
import type { McpToken } from "../config/load.ts";
import type { McpAuth } from "../mcp/auth.ts";
import { hasScope, type Principal, type Scope } from "../mcp/tool.ts";
import { AppError } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import { safeEqual } from "../shared/secrets.ts";
import type { Store } from "../store/db.ts";
import { html } from "./html.ts";
import { sendPage, wantsHtml } from "./respond.ts";
import {
  clearCookie,
  createSession,
  deleteSession,
  findSession,
  readCookie,
  setCookie,
  sha256,
  SESSION_COOKIE,
  type SessionIdentity,
} from "./sessions.ts";

// Who is using the console. Two ways in, the same scopes as MCP (read, write, approve, admin):
//  - a session: the cookie set by signing in with a token (login.ts) or OIDC (oidc.ts);
//  - `Authorization: Bearer <token>` on any request (scripts, tests): checked exactly like /mcp
//    (src/mcp/auth.ts), no cookie, no CSRF token needed.
//
// For page handlers:
//   const p = await ctx.auth.require(req, reply, "read"); if (!p) return reply;  // it has answered
//   ctx.auth.checkCsrf(req, p);   // first thing in every POST handler; throws a 403 AppError
// `require` answers for you: a page without a session → 303 to /login?next=<this page>; a POST or
// fragment without one → 401; a bad bearer token → 401; a missing scope → 403. Decisions record
// `consoleActor(p)` (`console:<subject>`, channel `console`).

/**
 * The signed-in person. Like an MCP Principal (subject, scopes), but `via` says how the request
 * came in: a browser session (whose forms carry `csrf`) or a bearer token (csrf null, exempt).
 * `method` is how they proved who they are.
 */
export type ConsolePrincipal = Omit<Principal, "via"> & {
  csrf: string | null;
  via: "session" | "bearer";
  method: "token" | "jwt" | "oidc";
};

export type ConsoleAuthDeps = {
  store: Store;
  log: Logger;
  now: () => number;
  /** The same token and JWT checks as /mcp. */
  mcpAuth: McpAuth;
  /** The configured (or generated) MCP tokens: a token session ends when its token is removed or changed. */
  tokens: McpToken[];
  sessionTtlMs: number;
  publicUrl: string;
};

export const consoleActor = (p: Pick<ConsolePrincipal, "subject">) =>
  ({ actor: `console:${p.subject}`, channel: "console" }) as const;

/** `next` after signing in: a path on this site only (never `//host` or a full URL). */
export function safeNext(next: unknown): string {
  if (
    typeof next !== "string" ||
    !next.startsWith("/") ||
    next.startsWith("//") ||
    next.startsWith("/\\") ||
    next.length > 1000
  )
    return "/";
  if (next.startsWith("/login") || next.startsWith("/logout") || next.startsWith("/auth/")) return "/";
  return next;
}

export function createConsoleAuth(deps: ConsoleAuthDeps) {
  const secure = deps.publicUrl.startsWith("https:");
  const ownOrigin = new URL(deps.publicUrl).origin;

  async function fromSession(req: FastifyRequest): Promise<ConsolePrincipal | undefined> {
    const value = readCookie(req, SESSION_COOKIE);
    if (!value) return undefined;
    const row = await findSession(deps.store.db, value, deps.now());
    if (!row) return undefined;
    let scopes = new Set(row.scopes.split(" ").filter(Boolean) as Scope[]);
    if (row.method === "token") {
      // The token must still be configured, unchanged; its scopes today are the session's.
      const t = deps.tokens.find(
        (t) => t.name === row.via && row.credential !== null && safeEqual(sha256(t.token), row.credential),
      );
      if (!t) return undefined;
      scopes = new Set(t.scopes);
    }
    return { subject: row.subject, scopes, csrf: row.csrf, via: "session", method: row.method };
  }

  /** The principal of this request, or undefined (no answer sent). A bad bearer token is an AppError. */
  async function identify(req: FastifyRequest): Promise<ConsolePrincipal | undefined> {
    if (req.headers.authorization !== undefined) {
      const r = await deps.mcpAuth.authenticate(req.headers.authorization);
      if (!r.ok) throw new AppError("unauthorized", "auth.invalid_token", r.reason);
      return {
        subject: r.principal.subject,
        scopes: r.principal.scopes,
        csrf: null,
        via: "bearer",
        method: r.principal.via,
      };
    }
    return fromSession(req);
  }

  /** Same-site POSTs only: an Origin (or Sec-Fetch-Site) naming another site is refused. */
  function checkOrigin(req: FastifyRequest): void {
    const site = req.headers["sec-fetch-site"];
    if (site === "cross-site") throw forbidden("console.cross_site", "cross-site requests are refused");
    const origin = req.headers.origin;
    if (origin === undefined) return;
    let host: string | undefined;
    try {
      host = new URL(origin).host;
    } catch {
      host = undefined;
    }
    if (origin === ownOrigin || (host !== undefined && host === req.headers.host)) return;
    throw forbidden("console.cross_site", "requests from another site are refused");
  }

  return {
    identify,
    checkOrigin,

    /** The principal, or undefined once it has answered (303 to sign in, 401, or 403 for a missing scope). */
    async require(req: FastifyRequest, reply: FastifyReply, scope: Scope): Promise<ConsolePrincipal | undefined> {
      let p: ConsolePrincipal | undefined;
      try {
        p = await identify(req);
      } catch (err) {
        if (err instanceof AppError && err.kind === "unauthorized") {
          reply.header("www-authenticate", 'Bearer realm="pitcrew", error="invalid_token"');
          await sendError(req, reply, 401, err.code, err.message, undefined);
          return undefined;
        }
        throw err;
      }
      if (!p) {
        const isPage = req.method === "GET" && wantsHtml(req) && req.headers["x-pitcrew-fragment"] === undefined;
        if (isPage) {
          await reply.redirect(`/login?next=${encodeURIComponent(safeNext(req.url))}`, 303);
          return undefined;
        }
        await sendError(req, reply, 401, "console.signed_out", "sign in first", undefined);
        return undefined;
      }
      if (!hasScope(p, scope)) {
        await sendError(
          req,
          reply,
          403,
          "auth.insufficient_scope",
          `this needs the "${scope}" scope; you are signed in as ${p.subject}`,
          p,
        );
        return undefined;
      }
      return p;
    },

    /** Throws a 403 AppError unless the request is a bearer one, or its form's `_csrf` matches the session and it comes from this site. */
    checkCsrf(req: FastifyRequest, principal: ConsolePrincipal): void {
      if (principal.via === "bearer") return;
      checkOrigin(req);
      const given = (req.body as Record<string, unknown> | undefined)?._csrf;
      if (typeof given !== "string" || principal.csrf === null || !safeEqual(given, principal.csrf)) {
        throw forbidden(
          "console.csrf",
          "the form has expired or did not come from this console; reload the page and try again",
        );
      }
    },

    /** Starts a session for this person and sets its cookie. */
    async signIn(reply: FastifyReply, who: SessionIdentity): Promise<void> {
      const { value } = await createSession(deps.store.db, who, deps.now(), deps.sessionTtlMs);
      setCookie(reply, SESSION_COOKIE, value, { secure, sameSite: "Strict", maxAgeS: deps.sessionTtlMs / 1000 });
      deps.log.info({ subject: who.subject, method: who.method }, "console sign-in");
    },

    /** Ends this browser's session (the row goes, so every replica forgets it) and clears the cookie. */
    async signOut(req: FastifyRequest, reply: FastifyReply): Promise<void> {
      const value = readCookie(req, SESSION_COOKIE);
      if (value) await deleteSession(deps.store.db, value);
      clearCookie(reply, SESSION_COOKIE, { secure, sameSite: "Strict" });
    },

    secureCookies: secure,
  };
}

export type ConsoleAuth = ReturnType<typeof createConsoleAuth>;

const forbidden = (code: string, message: string) => new AppError("forbidden", code, message);

async function sendError(
  req: FastifyRequest,
  reply: FastifyReply,
  status: number,
  code: string,
  message: string,
  p: ConsolePrincipal | undefined,
) {
  if (!wantsHtml(req)) return reply.status(status).send({ error: { code, message, requestId: String(req.id) } });
  const title = status === 403 ? "Not allowed" : "Sign in";
  const link = status === 401 ? html`<p><a href="/login">Sign in</a></p>` : null;
  return sendPage(reply.status(status), {
    title,
    current: null,
    principal: p,
    body: html`<h1>${title}</h1><p>${message}</p>${link}`,
  });
}
