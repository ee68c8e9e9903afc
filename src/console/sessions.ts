import { createHash, randomBytes } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Executor } from "../store/sql.ts";
import type { ConsoleSessionsTable } from "../store/schema.ts";
import type { Scope } from "../mcp/tool.ts";

// Console sessions are rows (console_sessions), so every replica knows them and signing out ends
// them everywhere. The browser holds a random 256-bit value in an httpOnly, SameSite=Strict cookie;
// the row is keyed by its sha256, so a leaked table does not sign anyone in.

export const SESSION_COOKIE = "pitcrew_session";
/** Binds an OIDC sign-in to the browser that started it (SameSite=Lax: it must survive the issuer's redirect back). */
export const LOGIN_COOKIE = "pitcrew_login";

export type SessionIdentity = {
  subject: string;
  scopes: ReadonlySet<Scope>;
  method: "token" | "oidc";
  /** The token's name, or `oidc:<sub>`. */
  via: string;
  /** sha256 of the token a token session signed in with: the session ends when that token is no longer configured. */
  credential?: string;
};

export type SessionRow = ConsoleSessionsTable;

export const sha256 = (value: string): string => createHash("sha256").update(value).digest("hex");
export const randomToken = (): string => randomBytes(32).toString("base64url");

/** Stores a new session; returns the cookie value (shown to the browser only). */
export async function createSession(
  db: Executor,
  who: SessionIdentity,
  now: number,
  ttlMs: number,
): Promise<{ value: string; row: SessionRow }> {
  const value = randomToken();
  const row: SessionRow = {
    id: sha256(value),
    subject: who.subject.slice(0, 255),
    scopes: [...who.scopes].sort().join(" "),
    method: who.method,
    via: who.via.slice(0, 255),
    credential: who.credential ?? null,
    csrf: randomToken(),
    created_at: now,
    last_seen_at: now,
    expires_at: now + ttlMs,
  };
  await db.insertInto("console_sessions").values(row).execute();
  // Expired rows of everyone go when someone signs in: the table stays the size of who is signed in.
  await db.deleteFrom("console_sessions").where("expires_at", "<=", now).execute();
  return { value, row };
}

/** The live session of this cookie value, its last-seen time moved at most once a minute. */
export async function findSession(db: Executor, value: string, now: number): Promise<SessionRow | undefined> {
  const row = await db
    .selectFrom("console_sessions")
    .selectAll()
    .where("id", "=", sha256(value))
    .where("expires_at", ">", now)
    .executeTakeFirst();
  if (!row) return undefined;
  const out = {
    ...row,
    created_at: Number(row.created_at),
    last_seen_at: Number(row.last_seen_at),
    expires_at: Number(row.expires_at),
  };
  if (now - out.last_seen_at > 60_000)
    await db.updateTable("console_sessions").set({ last_seen_at: now }).where("id", "=", row.id).execute();
  return out;
}

export async function deleteSession(db: Executor, value: string): Promise<void> {
  await db.deleteFrom("console_sessions").where("id", "=", sha256(value)).execute();
}

export function readCookie(req: FastifyRequest, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) {
      const v = part.slice(eq + 1).trim();
      // Our values are base64url; anything else is not ours.
      return /^[A-Za-z0-9_-]{16,128}$/.test(v) ? v : undefined;
    }
  }
  return undefined;
}

export type CookieOptions = { secure: boolean; maxAgeS: number; sameSite: "Strict" | "Lax"; path?: string };

export function setCookie(reply: FastifyReply, name: string, value: string, o: CookieOptions): void {
  const parts = [
    `${name}=${value}`,
    `Path=${o.path ?? "/"}`,
    `Max-Age=${Math.max(0, Math.floor(o.maxAgeS))}`,
    "HttpOnly",
    `SameSite=${o.sameSite}`,
  ];
  if (o.secure) parts.push("Secure");
  const prev = reply.getHeader("set-cookie");
  const list = prev === undefined ? [] : Array.isArray(prev) ? prev.map(String) : [String(prev)];
  reply.header("set-cookie", [...list, parts.join("; ")]);
}

export function clearCookie(reply: FastifyReply, name: string, o: Omit<CookieOptions, "maxAgeS">): void {
  setCookie(reply, name, "", { ...o, maxAgeS: 0 });
}
