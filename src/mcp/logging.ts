import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import {
  LoggingLevelSchema,
  SetLevelRequestSchema,
  type LoggingLevel,
  type ServerNotification,
  type ServerRequest,
} from "@modelcontextprotocol/sdk/types.js";

// logging/setLevel and log messages. A message goes out as a notification tied to a request
// (extra.sendNotification), like progress, so it travels on that request's response stream: an
// event stream carries it; a single JSON answer has nowhere to put it and the SDK drops it. Over
// HTTP a server lives for one request (stateless), so a level set there ends with that request;
// over a long-lived connection (stdio, in memory) it holds for the connection.

/** What a caller hears before it chooses a level. */
const DEFAULT_LEVEL: LoggingLevel = "info";
const SEVERITY = new Map(LoggingLevelSchema.options.map((level, i) => [level, i]));

/**
 * What a tool can send its caller while it runs. Each is a no-op when the caller cannot receive
 * it: progress without a progress token, a log message below the caller's level, or anything when
 * the answer is one JSON body.
 */
export type ToolNotifier = {
  progress(done: number, total?: number, message?: string): Promise<void>;
  log(level: LoggingLevel, data: Record<string, unknown>): Promise<void>;
};

const levels = new WeakMap<McpServer, { level: LoggingLevel }>();

/** Advertises `logging` and answers logging/setLevel; the level is this server's. */
export function enableLogging(server: McpServer): void {
  const state = { level: DEFAULT_LEVEL };
  levels.set(server, state);
  server.server.registerCapabilities({ logging: {} });
  server.server.setRequestHandler(SetLevelRequestSchema, async (req) => {
    state.level = req.params.level;
    return {};
  });
}

type Extra = Pick<RequestHandlerExtra<ServerRequest, ServerNotification>, "sendNotification" | "_meta">;

/** The notifier of one tools/call request (`logger` names the tool in log messages). */
export function toolNotifier(server: McpServer, extra: Extra, logger: string): ToolNotifier {
  const token = extra._meta?.progressToken;
  let last = -Infinity;
  // A notification that cannot be delivered (the caller went away) must not fail the tool.
  const send = (n: ServerNotification) => extra.sendNotification(n).catch(() => {});
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
      const state = levels.get(server);
      if (!state || SEVERITY.get(level)! < SEVERITY.get(state.level)!) return;
      await send({ method: "notifications/message", params: { level, logger, data } });
    },
  };
}

/**
 * Whether a POST /mcp body should be answered with an event stream rather than one JSON body: a
 * single request that carries a progress token, so its progress (and log messages) can reach the
 * caller before the answer. Every other request keeps the JSON answer clients rely on.
 */
export function wantsEventStream(body: unknown): boolean {
  if (!body || typeof body !== "object" || Array.isArray(body)) return false;
  const m = body as { id?: unknown; method?: unknown; params?: { _meta?: { progressToken?: unknown } } };
  const token = m.params?._meta?.progressToken;
  return m.id !== undefined && typeof m.method === "string" && (typeof token === "string" || typeof token === "number");
}
