import { createServer, type IncomingMessage, type Server } from "node:http";

// A Telegram Bot API on a real port, for processes msw cannot reach (a `pitcrew serve` or
// `pitcrew demo` child). It answers the methods Pitcrew uses with Telegram's documented shapes
// (`{ok:true,result}`), keeps the messages per chat, long-polls getUpdates, and records every call.
// The in-process fake with outages and limits is test/msw/telegram.ts.

export type BotCall = { method: string; body: Record<string, unknown>; at: number };
export type BotMessage = {
  message_id: number;
  chat: { id: number | string; type: string };
  date: number;
  text: string;
  reply_markup?: unknown;
};

export type FakeBotApi = {
  url: string;
  calls: BotCall[];
  /** The messages of a chat as they are now (edits applied). */
  messages(chat: number | string): BotMessage[];
  /** Queues an update for getUpdates (`update_id` is assigned). */
  push(update: Record<string, unknown>): void;
  /** Called for every call after it is recorded and answered. */
  onCall?: (call: BotCall, api: FakeBotApi) => void;
  close(): Promise<void>;
};

async function bodyOf(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString("utf8");
  if (!text) return {};
  if ((req.headers["content-type"] ?? "").includes("json")) return JSON.parse(text) as Record<string, unknown>;
  return Object.fromEntries(new URLSearchParams(text));
}

export async function startFakeBotApi(token: string): Promise<FakeBotApi> {
  const chats = new Map<string, BotMessage[]>();
  const updates: Array<Record<string, unknown>> = [];
  let nextUpdate = 1;
  let nextMessage = 100;
  let waiting: Array<() => void> = [];
  const prefix = `/bot${token}/`;

  const api: FakeBotApi = {
    url: "",
    calls: [],
    messages: (chat) => chats.get(String(chat)) ?? [],
    push(update) {
      updates.push({ ...update, update_id: nextUpdate++ });
      for (const w of waiting) w();
      waiting = [];
    },
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };

  function result(method: string, body: Record<string, unknown>): unknown {
    const chatKey = String(body.chat_id);
    const list = chats.get(chatKey) ?? [];
    switch (method) {
      case "getMe":
        return { id: 1, is_bot: true, first_name: "Pitcrew", username: "pitcrew_test_bot" };
      case "sendMessage": {
        const m: BotMessage = {
          message_id: nextMessage++,
          chat: { id: Number(body.chat_id), type: "supergroup" },
          date: Math.floor(Date.now() / 1000),
          text: String(body.text),
          reply_markup: body.reply_markup,
        };
        chats.set(chatKey, [...list, m]);
        return m;
      }
      case "editMessageText": {
        const m = list.find((x) => x.message_id === Number(body.message_id));
        if (!m) return undefined;
        m.text = String(body.text);
        m.reply_markup = body.reply_markup;
        return m;
      }
      default:
        return true;
    }
  }

  const server: Server = createServer(async (req, res) => {
    const path = (req.url ?? "").split("?")[0]!;
    const reply = (status: number, payload: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(payload));
    };
    if (!path.startsWith(prefix)) return reply(404, { ok: false, error_code: 404, description: "Not Found" });
    const method = path.slice(prefix.length);
    const body = await bodyOf(req);
    const call = { method, body, at: Date.now() };
    api.calls.push(call);
    if (method === "getUpdates") {
      const offset = Number(body.offset ?? 0);
      const pending = () => updates.filter((u) => Number(u.update_id) >= offset);
      if (pending().length === 0) {
        // Long polling, shortened: answer when an update arrives or after a second.
        await new Promise<void>((r) => {
          const t = setTimeout(r, Math.min(1000, Number(body.timeout ?? 0) * 1000));
          waiting.push(() => (clearTimeout(t), r()));
        });
      }
      reply(200, { ok: true, result: pending() });
    } else {
      const r = result(method, body);
      if (r === undefined)
        reply(400, { ok: false, error_code: 400, description: "Bad Request: message to edit not found" });
      else reply(200, { ok: true, result: r });
    }
    api.onCall?.(call, api);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  api.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return api;
}
