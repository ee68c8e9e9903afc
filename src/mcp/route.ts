import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { AppError } from "../shared/errors.ts";
import type { McpAuth } from "./auth.ts";
import { createMcpServer } from "./server.ts";
import type { McpDeps, Principal } from "./tool.ts";

// POST /mcp, Streamable HTTP in stateless mode: every request gets its own server and transport,
// bound to the caller's principal, so nothing is shared between requests or replicas.

export type McpRouteDeps = { deps: McpDeps; auth: McpAuth };

const CHALLENGE = 'Bearer realm="pitcrew", error="invalid_token"';

/** Who the request is from, or an error: a foreign Origin (DNS rebinding) → 403, no valid token → 401. */
async function admit(req: FastifyRequest, reply: FastifyReply, r: McpRouteDeps): Promise<Principal> {
  const origin = req.headers.origin;
  // Browsers always send Origin on cross-origin POSTs; curl and desktop clients send none.
  if (origin !== undefined && !r.deps.config.mcp.allowedOrigins.includes(origin)) {
    throw new AppError("forbidden", "mcp.origin_not_allowed", `requests from origin ${JSON.stringify(origin).slice(0, 200)} are not allowed (see MCP_ALLOWED_ORIGINS)`);
  }
  const result = await r.auth.authenticate(req.headers.authorization);
  if (!result.ok) {
    reply.header("www-authenticate", CHALLENGE);
    throw new AppError("unauthorized", "auth.invalid_token", result.reason);
  }
  return result.principal;
}

export async function mcpRoutes(app: FastifyInstance, r: McpRouteDeps) {
  const log = r.deps.log.child({ component: "mcp" });

  app.post("/mcp", async (req, reply) => {
    const principal = await admit(req, reply, r);
    const server = createMcpServer(r.deps, principal);
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    reply.raw.on("close", () => {
      void transport.close().catch(() => {});
      void server.close().catch(() => {});
    });
    await server.connect(transport);
    // From here the SDK writes the response itself.
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

  const notAllowed = async (req: FastifyRequest, reply: FastifyReply) => {
    reply.header("allow", "POST");
    return reply.status(405).send({
      error: { code: "mcp.method_not_allowed", message: `${req.method} /mcp is not supported: this server is stateless, use POST`, requestId: String(req.id) },
    });
  };
  app.get("/mcp", notAllowed);
  app.delete("/mcp", notAllowed);
}
