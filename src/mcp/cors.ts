import type { Config } from "../config/load.ts";

// Which browser origins may call /mcp, and the CORS headers they get. A request without Origin
// (curl, desktop clients, server-side SDKs) is not a browser's and is not checked here.

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

/**
 * The request headers a browser MCP client sends: Streamable HTTP (2025-03-26 and later), and the
 * routing headers of 2026-07-28 (`Mcp-Method`, `Mcp-Name`, and one `Mcp-Param-<name>` per
 * parameter a tool marks for headers, whose names the preflight asks for one by one).
 */
const ALLOW_HEADERS = [
  "authorization",
  "content-type",
  "accept",
  "mcp-protocol-version",
  "mcp-session-id",
  "last-event-id",
  "mcp-method",
  "mcp-name",
];
const PARAM_HEADER = /^mcp-param-[a-z0-9-]{1,64}$/;
/** What a browser script may read from our answers: the session id and the auth challenge. */
const EXPOSE_HEADERS = "Mcp-Session-Id, WWW-Authenticate";
const MAX_AGE_SECONDS = "600";

/**
 * The origins allowed to call /mcp: MCP_ALLOWED_ORIGINS, plus our own (PUBLIC_URL's origin, and
 * the loopback names of the port when bound to loopback, where a local page reaches us).
 */
export function allowedOrigins(config: Pick<Config, "publicUrl" | "host" | "port" | "mcp">): Set<string> {
  const out = new Set(config.mcp.allowedOrigins);
  out.add(new URL(config.publicUrl).origin);
  if (LOOPBACK_HOSTS.has(config.host) || config.host.startsWith("127.")) {
    for (const host of ["localhost", "127.0.0.1", "[::1]"]) out.add(`http://${host}:${config.port}`);
  }
  return out;
}

/** Headers for an answer to an allowed origin's request (any status, 401s included). */
export function corsHeaders(origin: string): Record<string, string> {
  return { "access-control-allow-origin": origin, "access-control-expose-headers": EXPOSE_HEADERS, vary: "Origin" };
}

/**
 * Headers for the answer to an allowed origin's preflight; `requested` is its
 * Access-Control-Request-Headers, from which `Mcp-Param-*` headers are allowed by name.
 */
export function preflightHeaders(origin: string, requested = ""): Record<string, string> {
  const params = requested
    .split(",")
    .map((h) => h.trim().toLowerCase())
    .filter((h) => PARAM_HEADER.test(h))
    .slice(0, 32);
  return {
    "access-control-allow-origin": origin,
    "access-control-allow-methods": "POST",
    "access-control-allow-headers": [...ALLOW_HEADERS, ...params].join(", "),
    "access-control-max-age": MAX_AGE_SECONDS,
    vary: "Origin",
  };
}
