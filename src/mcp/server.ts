import { z } from "zod";
import { type CallToolResult, McpServer, type McpServerOptions, type Tool } from "@modelcontextprotocol/server";
import { AppError } from "../shared/errors.ts";
import { VERSION } from "../shared/version.ts";
import { isDbUnavailable } from "../store/errors.ts";
import { hasScope, type McpDeps, type Principal, type ToolContext, type ToolDef } from "./tool.ts";
import { portableSchema } from "./json-schema.ts";
import { inputSchemaOf, invalidParams, parseToolArgs } from "./tool-args.ts";
import { allTools } from "./tools/index.ts";
import { enableLogging, toolNotifier } from "./logging.ts";
import { registerPrompts } from "./prompts.ts";
import { registerResources } from "./resources.ts";

// The MCP boundary's one error mapping. Protocol errors are JSON-RPC errors -32602 with the
// Pitcrew code in `data["pitcrew/error"]`: an unknown tool (`tool.unknown`), a tool outside the
// caller's scopes (`auth.missing_scope`: tools/list does not show it either) and arguments that do
// not fit the tool's input schema (`request.invalid_params`, unknown arguments included). What a
// tool refuses (an AppError) is a result with `isError: true`, its message ending in the code, and
// the code in `_meta["pitcrew/error"]`; anything else is logged in full and answered as
// "internal error", without its message.
//
// The tools/list and tools/call handlers are Pitcrew's own (not McpServer.registerTool), so that
// validation is ours and the `tools` capability does not claim `listChanged`: a stateless server
// never sends notifications/tools/list_changed.

const INSTRUCTIONS =
  "Pitcrew is a self-hosted incident agent: it receives alerts, opens incidents, plans fixes from skills and " +
  "proposes them as pull requests. Use the list_* and get_* tools to look around, " +
  "system_status for health and the pause switch.";

function errorResult(text: string, meta?: Record<string, unknown>): CallToolResult {
  return { isError: true, content: [{ type: "text", text }], ...(meta ? { _meta: meta } : {}) };
}

/** Runs a tool whose arguments are already parsed; every failure becomes an `isError` result. */
export async function callTool(tool: ToolDef, args: unknown, ctx: ToolContext): Promise<CallToolResult> {
  const { principal, deps } = ctx;
  try {
    const { summary, data } = await tool.handler(args as never, ctx);
    const checked = outputSchemaOf(tool).safeParse(data);
    if (!checked.success) {
      deps.log.error(
        { tool: tool.name, issues: checked.error.issues.slice(0, 5) },
        "tool result does not match its output schema",
      );
      return errorResult("internal error (internal)", {
        "pitcrew/error": { code: "internal", kind: "internal", retryable: false },
      });
    }
    return { content: [{ type: "text", text: summary }], structuredContent: data as Record<string, unknown> };
  } catch (err) {
    if (err instanceof AppError) {
      return errorResult(`${err.message} (${err.code})`, {
        "pitcrew/error": { code: err.code, kind: err.kind, retryable: err.retryable },
      });
    }
    if (isDbUnavailable(err)) {
      deps.log.warn({ tool: tool.name, subject: principal.subject }, "tool call failed: database unavailable");
      return errorResult("the database is unavailable; retry later (store.unavailable)", {
        "pitcrew/error": { code: "store.unavailable", kind: "unavailable", retryable: true },
      });
    }
    deps.log.error({ err, tool: tool.name, subject: principal.subject }, "tool call failed");
    return errorResult("internal error (internal)", {
      "pitcrew/error": { code: "internal", kind: "internal", retryable: false },
    });
  }
}

const outputs = new WeakMap<ToolDef, z.ZodObject>();
function outputSchemaOf(tool: ToolDef): z.ZodObject {
  let s = outputs.get(tool);
  if (!s) outputs.set(tool, (s = z.object(tool.output)));
  return s;
}

const listings = new WeakMap<ToolDef, Tool>();
/** The tools/list entry of a tool (JSON Schema draft-07 in its portable form, json-schema.ts), built once. */
export function describeTool(tool: ToolDef): Tool {
  let t = listings.get(tool);
  if (!t) {
    const { $schema: _in, ...inputSchema } = z.toJSONSchema(inputSchemaOf(tool.input), {
      target: "draft-7",
      io: "input",
    });
    const { $schema: _out, ...outputSchema } = z.toJSONSchema(outputSchemaOf(tool), {
      target: "draft-7",
      io: "output",
    });
    t = {
      name: tool.name,
      title: tool.title,
      description: `${tool.description} (scope: ${tool.scope})`,
      inputSchema: portableSchema(inputSchema) as Tool["inputSchema"],
      outputSchema: portableSchema(outputSchema) as Tool["outputSchema"],
      annotations: { title: tool.title, ...tool.annotations },
    };
    listings.set(tool, t);
  }
  return t;
}

const indexes = new WeakMap<ToolDef[], Map<string, ToolDef>>();
/** The tools by name, built once per list (a server is built for every request). */
function byNameOf(tools: ToolDef[]): Map<string, ToolDef> {
  let byName = indexes.get(tools);
  if (!byName) indexes.set(tools, (byName = new Map(tools.map((t) => [t.name, t]))));
  return byName;
}

/**
 * The tool a tools/call names and its parsed arguments; throws the -32602 the caller gets for an
 * unknown tool, one outside the principal's scopes, or arguments that do not fit (nothing has run).
 */
export function resolveCall(
  principal: Principal,
  tools: ToolDef[],
  name: string,
  rawArgs: unknown,
): { tool: ToolDef; args: Record<string, unknown> } {
  const tool = byNameOf(tools).get(name);
  if (!tool)
    throw invalidParams(
      "tool.unknown",
      `unknown tool: ${JSON.stringify(name).slice(0, 100)}; tools/list shows the tools this token can call`,
    );
  if (!hasScope(principal, tool.scope)) {
    const has = [...principal.scopes].sort().join(", ") || "no scopes";
    throw invalidParams("auth.missing_scope", `tool ${name} needs the '${tool.scope}' scope; this token has: ${has}`, {
      scope: tool.scope,
    });
  }
  return { tool, args: parseToolArgs(name, tool.input, rawArgs) };
}

/** Runs a resolved tools/call and logs it; never throws (callTool makes every failure a result). */
export async function runCall(
  tool: ToolDef,
  args: Record<string, unknown>,
  ctx: Required<ToolContext>,
): Promise<CallToolResult> {
  const started = performance.now();
  const result = await callTool(tool, args, ctx);
  ctx.deps.log.debug(
    {
      tool: tool.name,
      subject: ctx.principal.subject,
      via: ctx.principal.via,
      isError: !!result.isError,
      ms: Math.round(performance.now() - started),
    },
    "tool called",
  );
  return result;
}

/** tools/list and tools/call for this principal: it sees and calls only the tools its scopes allow. */
export function registerTools(server: McpServer, deps: McpDeps, principal: Principal, tools: ToolDef[]): void {
  server.server.registerCapabilities({ tools: {} });
  server.server.setRequestHandler("tools/list", () => ({
    tools: tools.filter((t) => hasScope(principal, t.scope)).map(describeTool),
  }));
  server.server.setRequestHandler("tools/call", async (request, ctx) => {
    const { tool, args } = resolveCall(principal, tools, request.params.name, request.params.arguments);
    return runCall(tool, args, { principal, deps, notify: toolNotifier(ctx, tool.name) });
  });
}

/**
 * What one request needs the server to offer. A server lives for one HTTP request, so one that
 * lists or calls tools (nearly all traffic) is built without the resources and prompts it will not
 * serve; anything else (initialize, server/discover, resources, prompts, completions) gets all.
 */
export type Surface = "all" | "tools";

export function surfaceOf(body: unknown): Surface {
  const method =
    body && typeof body === "object" && !Array.isArray(body) ? (body as { method?: unknown }).method : undefined;
  return method === "tools/call" || method === "tools/list" ? "tools" : "all";
}

/**
 * One server per request (stateless, both protocol eras): the principal is fixed for its lifetime.
 * `options` is for tests that pin the protocol versions a server speaks.
 */
export function createMcpServer(
  deps: McpDeps,
  principal: Principal,
  tools: ToolDef[] = allTools,
  options: Pick<McpServerOptions, "supportedProtocolVersions"> & { surface?: Surface } = {},
): McpServer {
  // No `capabilities.tools` here: McpServer would install its own tool handlers and claim listChanged.
  const { surface = "all", ...serverOptions } = options;
  const server = new McpServer(
    { name: "pitcrew", title: "Pitcrew", version: VERSION },
    { instructions: INSTRUCTIONS, ...serverOptions },
  );
  registerTools(server, deps, principal, tools);
  if (surface === "all") {
    registerResources(server, deps, principal);
    registerPrompts(server, deps, principal);
  }
  enableLogging(server);
  return server;
}
