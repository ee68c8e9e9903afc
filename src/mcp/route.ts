import { Readable } from "node:stream";
import {
  type AuthInfo,
  createMcpHandler,
  isJSONRPCErrorResponse,
  isJSONRPCNotification,
  isJSONRPCRequest,
  isJSONRPCResultResponse,
  isLegacyRequest,
  type McpRequestContext,
  WebStandardStreamableHTTPServerTransport,
} from "@modelcontextprotocol/server";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { AppError } from "../shared/errors.ts";
import type { McpAuth } from "./auth.ts";
import { allowedOrigins, corsHeaders, preflightHeaders } from "./cors.ts";
import { bearerChallenge, discoveryRoutes } from "./discovery.ts";
import { directCallOf } from "./direct-call.ts";
import { quietNotifier, wantsEventStream } from "./logging.ts";
import { createMcpServer, runCall, type Surface, surfaceOf } from "./server.ts";
import { allTools } from "./tools/index.ts";
import type { McpDeps, Principal } from "./tool.ts";

// POST /mcp, Streamable HTTP in stateless mode, for both protocol eras: every request gets its own
// server (and transport), bound to the caller's principal, so nothing is shared between requests
// or replicas. A 2026-07-28 request (its `_meta` envelope names the version) goes to the SDK's
// per-request handler (`server/discover`, no handshake); a 2025-era one (`initialize`, then calls)
// to a stateless Streamable HTTP transport answering one JSON body, or an event stream when the
// request asked for progress. The SDK's own fallback for 2025-era traffic would answer every
// request as an event stream, which clients and proxies of that era do not all expect.
// Here too: the CORS preflight, the protected-resource metadata, and the JSON-RPC errors the SDK
// does not give (a body that is not JSON, an empty batch, batches after 2025-06-18).

export type McpRouteDeps = { deps: McpDeps; auth: McpAuth };

/** The body fastify could not parse as JSON: answered as a JSON-RPC parse error, after the checks. */
const MALFORMED = Symbol("malformed JSON");
/** Batches were removed from the protocol in this version (and are refused from it on). */
const BATCHLESS_SINCE = "2025-06-18";

function rpcError(reply: FastifyReply, code: number, message: string) {
  return reply.status(400).send({ jsonrpc: "2.0", id: null, error: { code, message } });
}

/** Why a parsed body is not a JSON-RPC request this server takes, or undefined when it is. */
export function invalidRequest(body: unknown, protocolHeader: string | undefined): string | undefined {
  const messages = Array.isArray(body) ? body : [body];
  if (Array.isArray(body)) {
    if (body.length === 0) return "Invalid Request: an empty batch";
    const init = body.find((m) => (m as { method?: unknown } | null)?.method === "initialize") as
      | { params?: { protocolVersion?: unknown } }
      | undefined;
    const version = protocolHeader ?? init?.params?.protocolVersion;
    if (typeof version === "string" && version >= BATCHLESS_SINCE) {
      return `Invalid Request: JSON-RPC batches are not supported in protocol version ${version.slice(0, 40)} (removed in ${BATCHLESS_SINCE}); send one message per request`;
    }
  }
  if (messages.some((m) => !isMessage(m))) return "Invalid Request: not a JSON-RPC 2.0 message";
  return undefined;
}

const isMessage = (m: unknown) =>
  isJSONRPCRequest(m) || isJSONRPCNotification(m) || isJSONRPCResultResponse(m) || isJSONRPCErrorResponse(m);

/**
 * The caller's principal travels to the per-request server factory as the SDK's `authInfo`. The
 * raw token stays behind: nothing past the route needs it, and a secret not passed is not leaked.
 */
function authInfoOf(principal: Principal): AuthInfo {
  return { token: "", clientId: principal.subject, scopes: [...principal.scopes], extra: { principal } };
}

function principalOf(ctx: McpRequestContext): Principal {
  const p = ctx.authInfo?.extra?.principal as Principal | undefined;
  // The route authenticates every request before the SDK sees it: no principal is a bug here.
  if (!p) throw new Error("MCP request reached the server without a principal");
  return p;
}

/**
 * The fetch-API request the SDK reads (headers only: the body is passed parsed). Without a signal:
 * only the 2026-07-28 path watches one, and a Request that follows a signal costs ~20 µs more.
 */
function webRequest(req: FastifyRequest): Request {
  const headers: [string, string][] = [];
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || name === "content-length" || name === "transfer-encoding" || name === "connection")
      continue;
    if (Array.isArray(value)) for (const v of value) headers.push([name, v]);
    else headers.push([name, value]);
  }
  return new Request(`http://${req.headers.host ?? "localhost"}${req.url}`, { method: "POST", headers });
}

/** Sends the SDK's answer through fastify (so CORS headers set earlier stay): JSON whole, a stream as it comes. */
async function sendResponse(reply: FastifyReply, res: Response): Promise<FastifyReply> {
  reply.status(res.status);
  res.headers.forEach((value, name) => {
    if (name !== "content-length") reply.header(name, value);
  });
  if (!res.body) return reply.send();
  const type = res.headers.get("content-type") ?? "";
  if (!type.startsWith("text/event-stream")) return reply.send(await res.text());
  return reply.send(Readable.fromWeb(res.body as import("node:stream/web").ReadableStream));
}

export async function mcpRoutes(app: FastifyInstance, r: McpRouteDeps) {
  const log = r.deps.log.child({ component: "mcp" });
  const config = r.deps.config;
  const origins = allowedOrigins(config);

  await discoveryRoutes(app, config);

  // 2026-07-28 traffic only: 2025-era requests are routed below before they reach it.
  // What each request needs the server to offer (server.ts), by the fetch request the SDK is given.
  const surfaces = new WeakMap<Request, Surface>();
  const modern = createMcpHandler(
    (ctx) =>
      createMcpServer(r.deps, principalOf(ctx), allTools, {
        surface: (ctx.requestInfo && surfaces.get(ctx.requestInfo)) ?? "all",
      }),
    {
      legacy: "reject",
      responseMode: "auto",
      onerror: (err) => log.debug({ err }, "MCP request refused"),
    },
  );
  app.addHook("onClose", async () => modern.close());

  // In this scope only: a body that is not JSON becomes MALFORMED instead of fastify's own 400.
  const jsonParser = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (req, body, done) => {
    jsonParser(req, body as string, (err, value) => done(null, err ? MALFORMED : value));
  });

  /** Who the request is from, or an error: a foreign Origin (DNS rebinding) → 403, no valid token → 401. */
  async function admit(req: FastifyRequest, reply: FastifyReply): Promise<Principal> {
    const origin = req.headers.origin;
    // Browsers always send Origin on cross-origin POSTs; curl and desktop clients send none.
    if (origin !== undefined) {
      if (!origins.has(origin)) {
        throw new AppError(
          "forbidden",
          "mcp.origin_not_allowed",
          `requests from origin ${JSON.stringify(origin).slice(0, 200)} are not allowed (see MCP_ALLOWED_ORIGINS)`,
        );
      }
      // On every answer from here on, 401s included, so the page can read them.
      reply.headers(corsHeaders(origin));
    }
    const result = await r.auth.authenticate(req.headers.authorization);
    if (!result.ok) {
      reply.header(
        "www-authenticate",
        bearerChallenge(config, result.error ? { error: result.error, description: result.reason } : undefined),
      );
      throw new AppError("unauthorized", "auth.invalid_token", result.reason);
    }
    return result.principal;
  }

  app.post("/mcp", async (req, reply) => {
    const principal = await admit(req, reply);
    if (req.body === MALFORMED) return rpcError(reply, -32700, "Parse error: the body is not valid JSON");
    const header = req.headers["mcp-protocol-version"];
    const invalid = invalidRequest(req.body, typeof header === "string" ? header : undefined);
    if (invalid) return rpcError(reply, -32600, invalid);

    // Everything made for this request is closed when its answer ends or the caller goes away; the
    // signal (the 2026-07-28 path's, which ends a listen stream) is aborted only in the second case.
    let done: AbortController | undefined;
    const closers: (() => Promise<unknown>)[] = [];
    reply.raw.on("close", () => {
      if (!reply.raw.writableFinished) done?.abort();
      for (const close of closers) void close().catch(() => {});
    });
    try {
      // A plain 2025-era tools/call is answered by its tool, as the SDK would answer it (direct-call.ts).
      const direct = directCallOf(req.headers, req.body, principal, allTools);
      if (direct) {
        const result = await runCall(direct.tool, direct.args, { principal, deps: r.deps, notify: quietNotifier });
        reply.header("content-type", "application/json");
        return reply.send(JSON.stringify({ result, jsonrpc: "2.0", id: direct.id }));
      }
      const request = webRequest(req);
      const authInfo = authInfoOf(principal);
      if (!(await isLegacyRequest(request, req.body))) {
        done = new AbortController();
        const watched = new Request(request, { signal: done.signal });
        surfaces.set(watched, surfaceOf(req.body));
        return await sendResponse(reply, await modern.fetch(watched, { authInfo, parsedBody: req.body }));
      }
      const server = createMcpServer(r.deps, principal, allTools, { surface: surfaceOf(req.body) });
      // One JSON answer per request, except a request that asked for progress (a progressToken):
      // it is answered as a short event stream, so its progress and log messages reach the caller.
      const transport = new WebStandardStreamableHTTPServerTransport({
        sessionIdGenerator: undefined,
        enableJsonResponse: !wantsEventStream(req.body),
      });
      closers.push(
        () => transport.close(),
        () => server.close(),
      );
      await server.connect(transport);
      return await sendResponse(reply, await transport.handleRequest(request, { parsedBody: req.body, authInfo }));
    } catch (err) {
      log.error({ err, requestId: req.id }, "MCP request failed");
      if (reply.sent || reply.raw.headersSent) return reply;
      return reply.status(500).send({ jsonrpc: "2.0", error: { code: -32603, message: "internal error" }, id: null });
    }
  });

  // The CORS preflight of a browser client: allowed origins learn what they may send.
  app.options("/mcp", async (req, reply) => {
    const origin = req.headers.origin;
    if (origin !== undefined && !origins.has(origin)) {
      throw new AppError(
        "forbidden",
        "mcp.origin_not_allowed",
        `requests from origin ${JSON.stringify(origin).slice(0, 200)} are not allowed (see MCP_ALLOWED_ORIGINS)`,
      );
    }
    reply.header("allow", "POST");
    const requested = req.headers["access-control-request-headers"];
    if (origin !== undefined) reply.headers(preflightHeaders(origin, typeof requested === "string" ? requested : ""));
    return reply.status(204).send();
  });

  const notAllowed = async (req: FastifyRequest, reply: FastifyReply) => {
    reply.header("allow", "POST");
    return reply.status(405).send({
      error: {
        code: "mcp.method_not_allowed",
        message: `${req.method} /mcp is not supported: this server is stateless, use POST`,
        requestId: String(req.id),
      },
    });
  };
  app.get("/mcp", notAllowed);
  app.delete("/mcp", notAllowed);
}
