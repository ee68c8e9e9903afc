import { ProtocolErrorCode as ErrorCode } from "@modelcontextprotocol/server";
import { isAppError } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import { isDbUnavailable } from "../store/errors.ts";
import { hasScope, type Principal, type Scope } from "./tool.ts";

// Errors of the parts of MCP that are not tools (resources, prompts, completions): there is no
// result to mark as an error, so each failure is a JSON-RPC error with a message a person can read
// and the Pitcrew code in `data["pitcrew/error"]` (as tool results carry theirs in `_meta`). The SDK
// sends an error's own `message`, `code` and `data`.

/**
 * The code for a resource that does not exist: -32602 (invalid params) in every protocol revision,
 * as 2026-07-28 requires (2025-era clients accept it too; the SDK would map -32002 to it anyway).
 * The Pitcrew code in the data (`incident.not_found`, `skill.not_found`) says which.
 */
export const RESOURCE_NOT_FOUND = ErrorCode.InvalidParams;

export class RpcError extends Error {
  readonly data: Record<string, unknown>;
  constructor(
    readonly code: number,
    message: string,
    pitcrew: { code: string } & Record<string, unknown>,
    extra: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = "RpcError";
    this.data = { ...extra, "pitcrew/error": pitcrew };
  }
}

export function requireScope(principal: Principal, scope: Scope, what: string): void {
  if (hasScope(principal, scope)) return;
  const has = [...principal.scopes].sort().join(", ") || "no scopes";
  throw new RpcError(ErrorCode.InvalidParams, `${what} needs the '${scope}' scope; your token has: ${has}`, {
    code: "auth.missing_scope",
    scope,
  });
}

/**
 * Runs a resource, prompt or completion handler and maps what it throws: an RpcError as is, an
 * AppError to invalid params (not_found to `notFoundCode`), a database outage to a retryable
 * error, anything else to "internal error" (logged in full, its message not sent).
 */
export async function rpcBoundary<T>(
  log: Logger,
  what: string,
  fn: () => Promise<T>,
  notFoundCode: number = ErrorCode.InvalidParams,
): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof RpcError) throw err;
    if (isAppError(err)) {
      const code = err.kind === "not_found" ? notFoundCode : ErrorCode.InvalidParams;
      throw new RpcError(code, `${err.message} (${err.code})`, {
        code: err.code,
        kind: err.kind,
        retryable: err.retryable,
      });
    }
    if (isDbUnavailable(err)) {
      log.warn({ what }, "MCP request failed: database unavailable");
      const pitcrew = { code: "store.unavailable", kind: "unavailable", retryable: true };
      throw new RpcError(
        ErrorCode.InternalError,
        "the database is unavailable; retry later (store.unavailable)",
        pitcrew,
      );
    }
    log.error({ err, what }, "MCP request failed");
    throw new RpcError(ErrorCode.InternalError, "internal error", {
      code: "internal",
      kind: "internal",
      retryable: false,
    });
  }
}
