import { z } from "zod";
import { ProtocolErrorCode as ErrorCode } from "@modelcontextprotocol/server";
import { RpcError } from "./rpc-errors.ts";

// A tool's arguments are checked here, not by the SDK: a refusal is a JSON-RPC error -32602 with
// a message a person can act on ("limit: must be at most 200"), and its Pitcrew code in the data.

/**
 * A JSON-RPC "invalid params" error carrying its Pitcrew code (as tool results carry theirs in
 * `_meta`), its message sent as written (McpError would prefix it with "MCP error -32602:").
 */
export function invalidParams(code: string, message: string, extra: Record<string, unknown> = {}): RpcError {
  return new RpcError(ErrorCode.InvalidParams, message, { code, ...extra });
}

const cache = new WeakMap<z.ZodRawShape, z.ZodObject>();

/** The tool's input as a strict object: an argument the tool does not know is refused, not ignored. */
export function inputSchemaOf(shape: z.ZodRawShape): z.ZodObject {
  let schema = cache.get(shape);
  if (!schema) {
    schema = z.object(shape).strict();
    cache.set(shape, schema);
  }
  return schema;
}

const unit = (origin: unknown) =>
  origin === "string" ? " characters" : origin === "array" ? " items" : origin === "set" ? " items" : "";

/** What a validation issue means, in words (used while parsing, when the input is still at hand). */
function issueText(iss: z.core.$ZodRawIssue): string {
  switch (iss.code) {
    case "invalid_type":
      return iss.input === undefined
        ? "is required"
        : `must be ${iss.expected === "int" ? "an integer" : `a${/^[aeiou]/.test(iss.expected) ? "n" : ""} ${iss.expected}`}`;
    case "too_big":
      return `must be at most ${String(iss.maximum)}${unit(iss.origin)}`;
    case "too_small":
      return iss.origin === "string" && iss.minimum === 1
        ? "must not be empty"
        : `must be at least ${String(iss.minimum)}${unit(iss.origin)}`;
    case "invalid_value":
      return `must be one of ${iss.values.map((v) => JSON.stringify(v)).join(", ")}`;
    case "unrecognized_keys":
      return `unknown argument${iss.keys.length > 1 ? "s" : ""} ${iss.keys.map((k) => JSON.stringify(k)).join(", ")}`;
    case "invalid_format":
      return iss.format === "regex" ? "has an invalid format" : `must be a valid ${iss.format}`;
    case "not_multiple_of":
      return `must be a multiple of ${String(iss.divisor)}`;
    default:
      return iss.message ?? "is invalid";
  }
}

/** Parses a tool's arguments, or throws -32602 naming each bad field: `limit: must be at most 200`. */
export function parseToolArgs(toolName: string, shape: z.ZodRawShape, args: unknown): Record<string, unknown> {
  const r = inputSchemaOf(shape).safeParse(args ?? {}, { error: issueText });
  if (r.success) return r.data;
  const issues = r.error.issues.slice(0, 20).map((i) => ({ path: i.path.map(String).join("."), message: i.message }));
  const message = issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join("; ");
  throw invalidParams("request.invalid_params", `invalid arguments for ${toolName}: ${message}`, { issues });
}
