import type { IncomingHttpHeaders } from "node:http";
import { isJsonContentType, SUPPORTED_PROTOCOL_VERSIONS } from "@modelcontextprotocol/server";
import { RpcError } from "./rpc-errors.ts";
import { resolveCall } from "./server.ts";
import type { Principal, ToolDef } from "./tool.ts";

// Most MCP traffic is one 2025-era `tools/call` answered as one JSON body. For the SDK that is a
// server and a Streamable HTTP transport built for the request, fetch-API Request and Response
// objects, and each message checked against the protocol's schemas several times: ~0.4 ms of CPU
// per call, more than get_incident's own work. The answer is Pitcrew's own tools/call handler's
// result (server.ts), which the SDK's 2025 codec passes through as `{ result, jsonrpc, id }`; a
// call in the plainest form is answered with it directly. Anything else (another method, a
// progress token or any `_meta`, a header the SDK would refuse, a tool, scope or arguments that
// would be refused) goes through the SDK as before, which gives its own answer or error.

export type DirectCall = {
  id: string | number;
  tool: ToolDef;
  args: Record<string, unknown>;
};

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

const onlyKeys = (o: Record<string, unknown>, allowed: readonly string[]) =>
  Object.keys(o).every((k) => allowed.includes(k));

const LEGACY_VERSIONS: readonly string[] = SUPPORTED_PROTOCOL_VERSIONS;

/** The call to answer directly, or undefined when the SDK should take the request. */
export function directCallOf(
  headers: IncomingHttpHeaders,
  body: unknown,
  principal: Principal,
  tools: ToolDef[],
): DirectCall | undefined {
  if (!isPlainObject(body) || body.jsonrpc !== "2.0" || body.method !== "tools/call") return undefined;
  if (!onlyKeys(body, ["jsonrpc", "id", "method", "params"])) return undefined;
  const id = body.id;
  if (!(typeof id === "string" || (typeof id === "number" && Number.isSafeInteger(id)))) return undefined;
  const params = body.params;
  if (!isPlainObject(params) || !onlyKeys(params, ["name", "arguments"]) || typeof params.name !== "string")
    return undefined;
  if (params.arguments !== undefined && !isPlainObject(params.arguments)) return undefined;
  // What the SDK's transport checks before it dispatches (406, 415, 400 otherwise).
  const accept = headers.accept;
  if (typeof accept !== "string" || !accept.includes("application/json") || !accept.includes("text/event-stream"))
    return undefined;
  if (!isJsonContentType(headers["content-type"])) return undefined;
  const version = headers["mcp-protocol-version"];
  if (version !== undefined && !(typeof version === "string" && LEGACY_VERSIONS.includes(version))) return undefined;
  try {
    return { id, ...resolveCall(principal, tools, params.name, params.arguments) };
  } catch (err) {
    if (err instanceof RpcError) return undefined;
    throw err;
  }
}
