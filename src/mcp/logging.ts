import type { LoggingLevel, McpServer, ServerContext, ServerNotification } from "@modelcontextprotocol/server";

// Progress and log messages while a tool runs. Both go out as notifications tied to the request
// (ctx.mcpReq.notify / ctx.mcpReq.log), so they travel on that request's response stream: an event
// stream carries them; a single JSON answer has nowhere to put them and the SDK drops them.
// The level: a 2025-era caller sets it with logging/setLevel (the SDK's own handler; a server lives
// for one request over HTTP, so the level holds for that request); a 2026-07-28 caller names it
// in each request's `_meta` envelope and hears nothing without it.

/**
 * What a tool can send its caller while it runs. Each is a no-op when the caller cannot receive
 * it: progress without a progress token, a log message below the caller's level, or anything when
 * the answer is one JSON body.
 */
export type ToolNotifier = {
  progress(done: number, total?: number, message?: string): Promise<void>;
  log(level: LoggingLevel, data: Record<string, unknown>): Promise<void>;
};

/** The notifier of a call answered as one JSON body: there is nowhere to send anything. */
export const quietNotifier: ToolNotifier = { progress: async () => {}, log: async () => {} };

/** Advertises `logging`; the SDK answers logging/setLevel and applies the caller's level. */
export function enableLogging(server: McpServer): void {
  server.server.registerCapabilities({ logging: {} });
}

type Ctx = { mcpReq: Pick<ServerContext["mcpReq"], "_meta" | "notify" | "log"> };

/** The notifier of one tools/call request (`logger` names the tool in log messages). */
export function toolNotifier(ctx: Ctx, logger: string): ToolNotifier {
  const token = ctx.mcpReq._meta?.progressToken;
  let last = Number.NEGATIVE_INFINITY;
  // A notification that cannot be delivered (the caller went away) must not fail the tool.
  const send = (n: ServerNotification) => ctx.mcpReq.notify(n).catch(() => {});
  return {
    async progress(done, total, message) {
      // The specification wants progress to increase with every notification.
      if (token === undefined || done <= last) return;
      last = done;
      const params = {
        progressToken: token,
        progress: done,
        ...(total !== undefined && { total }),
        ...(message !== undefined && { message }),
      };
      await send({ method: "notifications/progress", params });
    },
    async log(level, data) {
      await ctx.mcpReq.log(level, data, logger).catch(() => {});
    },
  };
}

/**
 * Whether a 2025-era POST /mcp body should be answered with an event stream rather than one JSON
 * body: a single request that carries a progress token, so its progress (and log messages) can
 * reach the caller before the answer. Every other request keeps the JSON answer clients rely on.
 * (A 2026-07-28 answer upgrades to a stream by itself when a notification is sent.)
 */
export function wantsEventStream(body: unknown): boolean {
  if (!body || typeof body !== "object" || Array.isArray(body)) return false;
  const m = body as { id?: unknown; method?: unknown; params?: { _meta?: { progressToken?: unknown } } };
  const token = m.params?._meta?.progressToken;
  return m.id !== undefined && typeof m.method === "string" && (typeof token === "string" || typeof token === "number");
}
