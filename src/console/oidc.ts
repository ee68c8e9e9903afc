import { createHash } from "node:crypto";
import type { FastifyInstance, FastifyReply } from "fastify";
import type { JWTPayload, JWTVerifyGetKey } from "jose";
import { scopesFromClaim } from "../mcp/auth.ts";
import type { Scope } from "../mcp/tool.ts";
import { AppError, errorMessage, invalid, unavailable } from "../shared/errors.ts";
import { safeEqual } from "../shared/secrets.ts";
import { html } from "./html.ts";
import { safeNext } from "./auth.ts";
import { LOGIN_COOKIE, clearCookie, randomToken, readCookie, setCookie, sha256 } from "./sessions.ts";
import type { ConsoleContext } from "./routes.ts";

// Sign-in with SSO: OpenID Connect authorization code flow with PKCE (S256) against MCP_OIDC_ISSUER,
// as client CONSOLE_OIDC_CLIENT_ID (with CONSOLE_OIDC_CLIENT_SECRET for a confidential client).
//   GET /auth/login    → a console_logins row (state, nonce, PKCE verifier, bound to this browser
//                        by a short-lived cookie) and a redirect to the issuer's authorization endpoint
//   GET /auth/callback → the row used once; the code exchanged at the token endpoint; the ID token
//                        verified with the issuer's JWKS (iss, aud = client id, exp, nonce)
// Scopes come from the same claim as MCP (MCP_OIDC_SCOPE_CLAIM) in the ID token, plus those of the
// access token when /mcp itself accepts it. An account with no Pitcrew scope is not signed in.

const LOGIN_TTL_MS = 10 * 60_000;

type Discovery = {
  authorization_endpoint: string;
  token_endpoint: string;
  jwks_uri: string;
  token_endpoint_auth_methods_supported?: string[];
};

export function oidcRoutes(app: FastifyInstance, ctx: ConsoleContext): void {
  const { config, store, log: baseLog, now } = ctx.deps;
  const client = config.console.oidc;
  const issuer = config.mcp.oidc;
  const log = baseLog.child({ component: "console-oidc" });
  if (!client || !issuer) {
    const off = async () => {
      throw new AppError(
        "not_found",
        "console.sso_not_configured",
        "sign-in with SSO is not configured (CONSOLE_OIDC_CLIENT_ID)",
      );
    };
    app.get("/auth/login", off);
    app.get("/auth/callback", off);
    return;
  }
  const redirectUri = `${config.publicUrl}/auth/callback`;
  const secure = config.publicUrl.startsWith("https:");

  let discovery: Promise<{ doc: Discovery; keys: JWTVerifyGetKey }> | undefined;
  function discover() {
    if (!discovery) {
      const pending = (async () => {
        const url = `${issuer!.issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`;
        const res = await fetch(url, { signal: AbortSignal.timeout(5000), headers: { accept: "application/json" } });
        if (!res.ok) throw new Error(`discovery answered ${res.status}`);
        const doc = (await res.json()) as Partial<Discovery>;
        if (
          typeof doc.authorization_endpoint !== "string" ||
          typeof doc.token_endpoint !== "string" ||
          typeof doc.jwks_uri !== "string"
        ) {
          throw new Error("discovery document lacks authorization_endpoint, token_endpoint or jwks_uri");
        }
        // jose is loaded here, at the first sign-in, not when the console starts.
        const { createRemoteJWKSet } = await import("jose");
        return { doc: doc as Discovery, keys: createRemoteJWKSet(new URL(doc.jwks_uri), { timeoutDuration: 5000 }) };
      })();
      // A failed discovery is tried again on the next sign-in, not remembered.
      pending.catch((err) => {
        log.warn({ error: errorMessage(err) }, "OIDC discovery failed");
        if (discovery === pending) discovery = undefined;
      });
      discovery = pending;
    }
    return discovery.catch((err) => {
      throw unavailable("console.oidc_unavailable", "the identity provider did not answer; try again in a moment", err);
    });
  }

  app.get("/auth/login", async (req, reply) => {
    const next = safeNext((req.query as Record<string, unknown>).next);
    const { doc } = await discover();
    const state = randomToken();
    const nonce = randomToken();
    const verifier = randomToken();
    const browser = randomToken();
    const t = now();
    await store.db.deleteFrom("console_logins").where("expires_at", "<=", t).execute();
    await store.db
      .insertInto("console_logins")
      .values({
        id: sha256(state),
        nonce,
        verifier,
        browser: sha256(browser),
        next,
        created_at: t,
        expires_at: t + LOGIN_TTL_MS,
      })
      .execute();
    setCookie(reply, LOGIN_COOKIE, browser, {
      secure,
      sameSite: "Lax",
      maxAgeS: LOGIN_TTL_MS / 1000,
      path: "/auth/callback",
    });
    const url = new URL(doc.authorization_endpoint);
    const params = {
      response_type: "code",
      client_id: client.clientId,
      redirect_uri: redirectUri,
      scope: "openid profile email",
      state,
      nonce,
      code_challenge: createHash("sha256").update(verifier).digest("base64url"),
      code_challenge_method: "S256",
    };
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    return reply.redirect(url.toString(), 303);
  });

  app.get("/auth/callback", async (req, reply) => {
    const q = req.query as Record<string, unknown>;
    const state = typeof q.state === "string" ? q.state : "";
    const row = state
      ? await store.db.selectFrom("console_logins").selectAll().where("id", "=", sha256(state)).executeTakeFirst()
      : undefined;
    // Used once, whatever happens next.
    if (row) await store.db.deleteFrom("console_logins").where("id", "=", row.id).execute();
    clearCookie(reply, LOGIN_COOKIE, { secure, sameSite: "Lax", path: "/auth/callback" });
    const browser = readCookie(req, LOGIN_COOKIE);
    if (!row || Number(row.expires_at) <= now() || !browser || !safeEqual(sha256(browser), row.browser)) {
      throw invalid("console.oidc_state", "this sign-in has expired or was started in another browser; sign in again");
    }
    if (typeof q.error === "string") {
      const why = typeof q.error_description === "string" ? ` (${q.error_description})` : "";
      throw new AppError(
        "forbidden",
        "console.oidc_refused",
        `the identity provider refused the sign-in: ${q.error}${why}`,
      );
    }
    if (typeof q.code !== "string" || q.code === "")
      throw invalid("console.oidc_code", "the identity provider sent no authorization code");
    const { doc, keys } = await discover();
    const tokens = await exchange(doc, q.code, row.verifier);
    const claims = await verifyIdToken(keys, tokens.id_token, row.nonce);
    const scopes = new Set<Scope>(scopesFromClaim(claims[issuer.scopeClaim]));
    if (typeof tokens.access_token === "string") {
      const viaMcp = await ctx.mcpAuth.authenticate(`Bearer ${tokens.access_token}`).catch(() => undefined);
      if (viaMcp?.ok) for (const s of viaMcp.principal.scopes) scopes.add(s);
    }
    const sub = String(claims.sub);
    const subject = [claims.email, claims.preferred_username, sub].find(
      (v): v is string => typeof v === "string" && v !== "",
    )!;
    if (scopes.size === 0) {
      log.info({ subject }, "SSO sign-in without any Pitcrew scope refused");
      const why = `the "${issuer.scopeClaim}" claim names none of read, write, approve, admin`;
      throw new AppError("forbidden", "console.no_scope", `${subject} has no Pitcrew scope (${why})`);
    }
    await ctx.auth.signIn(reply, { subject, scopes, method: "oidc", via: `oidc:${sub}` });
    return continueTo(reply, safeNext(row.next));
  });

  async function exchange(
    doc: Discovery,
    code: string,
    verifier: string,
  ): Promise<{ id_token: string; access_token?: unknown }> {
    const body = new URLSearchParams({
      grant_type: "authorization_code",
      code,
      redirect_uri: redirectUri,
      code_verifier: verifier,
    });
    const headers: Record<string, string> = {
      "content-type": "application/x-www-form-urlencoded",
      accept: "application/json",
    };
    const methods = doc.token_endpoint_auth_methods_supported ?? ["client_secret_basic"];
    if (client!.clientSecret && methods.includes("client_secret_basic")) {
      const enc = (s: string) => encodeURIComponent(s);
      headers.authorization = `Basic ${Buffer.from(`${enc(client!.clientId)}:${enc(client!.clientSecret)}`).toString("base64")}`;
    } else {
      body.set("client_id", client!.clientId);
      if (client!.clientSecret) body.set("client_secret", client!.clientSecret);
    }
    let res: Response;
    try {
      res = await fetch(doc.token_endpoint, { method: "POST", headers, body, signal: AbortSignal.timeout(10_000) });
    } catch (err) {
      throw unavailable(
        "console.oidc_unavailable",
        "the identity provider's token endpoint did not answer; sign in again",
        err,
      );
    }
    const json = (await res.json().catch(() => ({}))) as {
      id_token?: unknown;
      access_token?: unknown;
      error?: unknown;
    };
    if (!res.ok || typeof json.id_token !== "string") {
      log.warn(
        { status: res.status, error: typeof json.error === "string" ? json.error : undefined },
        "OIDC code exchange refused",
      );
      const why = typeof json.error === "string" ? ` (${json.error})` : "";
      throw new AppError(
        "forbidden",
        "console.oidc_exchange",
        `the identity provider did not accept the sign-in${why}; sign in again`,
      );
    }
    return { id_token: json.id_token, access_token: json.access_token };
  }

  async function verifyIdToken(keys: JWTVerifyGetKey, idToken: string, nonce: string): Promise<JWTPayload> {
    const { errors: joseErrors, jwtVerify } = await import("jose");
    let payload: JWTPayload;
    try {
      const expected = {
        issuer: issuer!.issuer,
        audience: client!.clientId,
        clockTolerance: 30,
        requiredClaims: ["exp", "sub"],
      };
      ({ payload } = await jwtVerify(idToken, keys, expected));
    } catch (err) {
      if (err instanceof joseErrors.JWKSTimeout || !(err instanceof joseErrors.JOSEError)) {
        throw unavailable("console.oidc_unavailable", "the identity provider's keys could not be fetched", err);
      }
      log.warn({ error: errorMessage(err) }, "ID token refused");
      throw new AppError(
        "forbidden",
        "console.oidc_id_token",
        "the identity provider's ID token was not accepted; sign in again",
      );
    }
    if (typeof payload.nonce !== "string" || !safeEqual(payload.nonce, nonce)) {
      throw new AppError(
        "forbidden",
        "console.oidc_nonce",
        "the ID token does not belong to this sign-in; sign in again",
      );
    }
    return payload;
  }
}

/**
 * After the issuer's redirect the browser is still on a cross-site navigation, which would not
 * send the SameSite=Strict session cookie if we redirected again: a small page moves on instead
 * (a meta refresh is a navigation from our own site), with a link for browsers that do not.
 */
function continueTo(reply: FastifyReply, next: string) {
  return reply.header("content-type", "text/html; charset=utf-8").send(
    html`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=${next}">
<title>Signed in · Pitcrew</title></head><body><p>Signed in. <a href="${next}">Continue</a></p></body></html>`.text,
  );
}
