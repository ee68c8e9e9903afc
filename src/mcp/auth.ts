import { createHash, timingSafeEqual } from "node:crypto";
import type { JWTPayload, JWTVerifyGetKey } from "jose";
import type { Config, McpToken } from "../config/load.ts";
import { isAppError, unavailable } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import { loadOrCreateToken } from "../shared/secrets.ts";
import type { Principal, Scope } from "./tool.ts";

// Who may call /mcp: the static tokens (configured, or the one generated admin token), and, when an
// OIDC issuer is configured, JWTs it signed for this resource (or the configured audience).

/**
 * `error` is the RFC 6750 code for the challenge: absent when no credentials came (the client
 * should go and get some), `invalid_token` when a bearer token did and was refused.
 */
export type AuthResult =
  | { ok: true; principal: Principal }
  | { ok: false; reason: string; error?: "invalid_token" | "invalid_request" };

export type McpAuth = {
  /** Resolves the Authorization header; throws `unavailable` when the issuer's keys cannot be fetched. */
  authenticate(authorization: string | undefined): Promise<AuthResult>;
};

export type McpAuthOptions = {
  tokens: McpToken[];
  oidc?: NonNullable<Config["mcp"]["oidc"]>;
  log: Logger;
};

const SCOPES: readonly Scope[] = ["read", "write", "approve", "admin"];
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
export const GENERATED_TOKEN_NAME = "admin";

const sha256 = (text: string) => createHash("sha256").update(text).digest();

/**
 * The static tokens of this installation: MCP_TOKENS, or else the generated admin token
 * (`<dataDir>/secrets/mcp.token`, created at the first start and reused after).
 */
export function mcpTokens(config: Config): {
  tokens: McpToken[];
  generated?: { token: string; path: string; created: boolean };
} {
  if (config.mcp.tokens.length > 0) return { tokens: config.mcp.tokens };
  const generated = loadOrCreateToken(config.dataDir, "mcp");
  return { tokens: [{ name: GENERATED_TOKEN_NAME, token: generated.token, scopes: ["admin"] }], generated };
}

/** `scope` claim values: a space-separated string or an array; `pitcrew:read` and `read` both count. */
export function scopesFromClaim(value: unknown): Set<Scope> {
  const raw =
    typeof value === "string"
      ? value.split(/\s+/)
      : Array.isArray(value)
        ? value.filter((v): v is string => typeof v === "string")
        : [];
  const out = new Set<Scope>();
  for (const v of raw) {
    const name = v.startsWith("pitcrew:") ? v.slice("pitcrew:".length) : v;
    if ((SCOPES as readonly string[]).includes(name)) out.add(name as Scope);
  }
  return out;
}

export function createMcpAuth(opts: McpAuthOptions): McpAuth {
  const log = opts.log.child({ component: "mcp-auth" });
  const oidc = opts.oidc;

  // The configured tokens are hashed once, the given one once per request (shared/secrets.ts
  // safeEqual hashes both sides on every call): the same constant-time comparison of digests.
  const digests = opts.tokens.map((t) => ({ token: t, digest: sha256(t.token) }));
  function matchStatic(given: string): McpToken | undefined {
    // Every configured token is compared, whatever matched before: the time taken says nothing
    // about which one (if any) was close.
    const digest = sha256(given);
    let match: McpToken | undefined;
    for (const t of digests) {
      const equal = timingSafeEqual(digest, t.digest) && given.length === t.token.token.length;
      if (equal && !match) match = t.token;
    }
    return match;
  }

  let keys: Promise<JWTVerifyGetKey> | undefined;
  function jwks(): Promise<JWTVerifyGetKey> {
    if (!keys) {
      // jose is loaded with the first JWT, not when the control plane starts.
      const pending = Promise.all([resolveJwksUrl(), import("jose")]).then(([url, { createRemoteJWKSet }]) =>
        createRemoteJWKSet(new URL(url), { timeoutDuration: 5000, cooldownDuration: 30_000 }),
      );
      // A failed discovery is tried again on the next request, not remembered.
      pending.catch(() => {
        if (keys === pending) keys = undefined;
      });
      keys = pending;
    }
    return keys;
  }

  async function resolveJwksUrl(): Promise<string> {
    if (oidc!.jwksUrl) return oidc!.jwksUrl;
    const base = oidc!.issuer.replace(/\/+$/, "");
    let res: Response;
    try {
      res = await fetch(`${base}/.well-known/openid-configuration`, {
        signal: AbortSignal.timeout(5000),
        headers: { accept: "application/json" },
      });
    } catch (err) {
      throw unavailable("mcp.oidc_unavailable", "the OIDC issuer did not answer; retry later", err);
    }
    if (res.ok) {
      const doc = (await res.json().catch(() => undefined)) as { jwks_uri?: unknown } | undefined;
      if (typeof doc?.jwks_uri === "string") {
        log.info({ jwksUri: doc.jwks_uri }, "found the OIDC issuer's JWKS");
        return doc.jwks_uri;
      }
    } else await res.body?.cancel();
    log.info(
      { jwksUri: `${base}/.well-known/jwks.json` },
      "no jwks_uri in the issuer's discovery document; using the well-known path",
    );
    return `${base}/.well-known/jwks.json`;
  }

  async function verifyJwt(token: string): Promise<AuthResult> {
    const { errors: joseErrors, jwtVerify } = await import("jose");
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, await jwks(), {
        issuer: oidc!.issuer,
        audience: [...new Set([oidc!.resource, oidc!.audience])],
        clockTolerance: 30,
        requiredClaims: ["exp"],
      }));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired)
        return { ok: false, reason: "the token has expired", error: "invalid_token" };
      if (err instanceof joseErrors.JWTClaimValidationFailed)
        return { ok: false, reason: `the token's "${err.claim}" claim is not accepted`, error: "invalid_token" };
      if (err instanceof joseErrors.JOSEError && !(err instanceof joseErrors.JWKSTimeout)) {
        return { ok: false, reason: "the token's signature or format is not accepted", error: "invalid_token" };
      }
      if (isAppError(err)) throw err;
      log.warn({ err }, "could not fetch the OIDC issuer's keys");
      throw unavailable("mcp.oidc_unavailable", "the OIDC issuer's keys could not be fetched; retry later", err);
    }
    const subject =
      [payload.sub, payload.azp, payload.client_id].find((v): v is string => typeof v === "string" && v !== "") ??
      "unknown";
    return { ok: true, principal: { subject, scopes: scopesFromClaim(payload[oidc!.scopeClaim]), via: "jwt" } };
  }

  return {
    async authenticate(authorization) {
      const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization ?? "");
      if (!m)
        return authorization
          ? { ok: false, reason: "expected Authorization: Bearer <token>", error: "invalid_request" }
          : { ok: false, reason: "missing bearer token" };
      const given = m[1]!;
      if (oidc && JWT_SHAPE.test(given)) return verifyJwt(given);
      const t = matchStatic(given);
      if (!t) return { ok: false, reason: "the token is not recognised", error: "invalid_token" };
      return { ok: true, principal: { subject: t.name, scopes: new Set(t.scopes), via: "token" } };
    },
  };
}
