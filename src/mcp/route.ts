import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { JSONRPCMessageSchema } from "@modelcontextprotocol/sdk/types.js";
import { AppError } from "../shared/errors.ts";
import type { McpAuth } from "./auth.ts";
import { allowedOrigins, corsHeaders, preflightHeaders } from "./cors.ts";
import { bearerChallenge, discoveryRoutes } from "./discovery.ts";
import { wantsEventStream } from "./logging.ts";
import { createMcpServer } from "./server.ts";
import type { McpDeps, Principal } from "./tool.ts";

// POST /mcp, Streamable HTTP in stateless mode: every request gets its own server and transport,
// bound to the caller's principal, so nothing is shared between requests or replicas. Here too:
// the CORS preflight, the protected-resource metadata, and the JSON-RPC errors the SDK's
// transport does not give (a body that is not JSON, an empty batch, batches after 2025-06-18).

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
  if (messages.some((m) => !JSONRPCMessageSchema.safeParse(m).success))
    return "Invalid Request: not a JSON-RPC 2.0 message";
  return undefined;
}

export async function mcpRoutes(app: FastifyInstance, r: McpRouteDeps) {
  const log = r.deps.log.child({ component: "mcp" });
  const config = r.deps.config;
  const origins = allowedOrigins(config);

  await discoveryRoutes(app, config);

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

    const server = createMcpServer(r.deps, principal);
    // One JSON answer per request, except a request that asked for progress (a progressToken): it
    // is answered as a short event stream, so its progress and log messages reach the caller.
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: !wantsEventStream(req.body),
    });
    reply.raw.on("close", () => {
      void transport.close().catch(() => {});
      void server.close().catch(() => {});
    });
    await server.connect(transport);
    // From here the SDK writes the response itself: headers set on the raw response are kept.
    for (const [name, value] of Object.entries(reply.getHeaders())) {
      if (name.startsWith("access-control-") || name === "vary") reply.raw.setHeader(name, value as string);
    }
    reply.hijack();
    try {
      await transport.handleRequest(req.raw, reply.raw, req.body);
    } catch (err) {
      log.error({ err, requestId: req.id }, "MCP request failed");
      if (!reply.raw.headersSent) {
        reply.raw.writeHead(500, { "content-type": "application/json" });
        reply.raw.end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32603, message: "internal error" }, id: null }));
      }
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
    if (origin !== undefined) reply.headers(preflightHeaders(origin));
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
