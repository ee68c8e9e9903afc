import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { AppError } from "../shared/errors.ts";
import { VERSION } from "../shared/version.ts";
import { isDbUnavailable } from "../store/errors.ts";
import { hasScope, type McpDeps, type Principal, type ToolContext, type ToolDef } from "./tool.ts";
import { allTools } from "./tools/index.ts";

// The MCP boundary's one error mapping: a missing scope and an AppError come back as a tool
// result with `isError: true` and a message the model can act on; anything else is logged in
// full and answered as "internal error", without its message.

const INSTRUCTIONS =
  "Pitcrew is a self-hosted incident agent: it receives alerts, opens incidents, plans fixes from skills and " +
  "proposes them as pull requests. Use the list_* and get_* tools to look around, " +
  "system_status for health and the pause switch.";

function errorResult(text: string, meta?: Record<string, unknown>): CallToolResult {
  return { isError: true, content: [{ type: "text", text }], ...(meta ? { _meta: meta } : {}) };
}

export async function callTool(tool: ToolDef, args: unknown, ctx: ToolContext): Promise<CallToolResult> {
  const { principal, deps } = ctx;
  if (!hasScope(principal, tool.scope)) {
    const has = [...principal.scopes].sort().join(", ") || "no scopes";
    return errorResult(`this tool needs the '${tool.scope}' scope; your token has: ${has}`, { "pitcrew/error": { code: "auth.missing_scope", scope: tool.scope } });
  }
  try {
    const { summary, data } = await tool.handler(args as never, ctx);
    return { content: [{ type: "text", text: summary }], structuredContent: data as Record<string, unknown> };
  } catch (err) {
    if (err instanceof AppError) {
      return errorResult(`${err.message} (${err.code})`, { "pitcrew/error": { code: err.code, kind: err.kind, retryable: err.retryable } });
    }
    if (isDbUnavailable(err)) {
      deps.log.warn({ tool: tool.name, subject: principal.subject }, "tool call failed: database unavailable");
      return errorResult("the database is unavailable; retry later (store.unavailable)", { "pitcrew/error": { code: "store.unavailable", kind: "unavailable", retryable: true } });
    }
    deps.log.error({ err, tool: tool.name, subject: principal.subject }, "tool call failed");
    return errorResult("internal error", { "pitcrew/error": { code: "internal", kind: "internal", retryable: false } });
  }
}

/** One server per request (stateless transport): the principal is fixed for its lifetime. */
export function createMcpServer(deps: McpDeps, principal: Principal, tools: ToolDef[] = allTools): McpServer {
  const server = new McpServer({ name: "pitcrew", title: "Pitcrew", version: VERSION }, { capabilities: { tools: {} }, instructions: INSTRUCTIONS });
  for (const tool of tools) {
    server.registerTool(
      tool.name,
      {
        title: tool.title,
        description: `${tool.description} (scope: ${tool.scope})`,
        inputSchema: tool.input,
        outputSchema: tool.output,
        annotations: { title: tool.title, ...tool.annotations },
      },
      async (args: unknown) => {
        const started = performance.now();
        const result = await callTool(tool, args, { principal, deps });
        deps.log.debug({ tool: tool.name, subject: principal.subject, via: principal.via, isError: !!result.isError, ms: Math.round(performance.now() - started) }, "tool called");
        return result;
      },
    );
  }
  return server;
}
