import { http, HttpResponse, type HttpHandler } from "msw";

// An in-memory Telegram Bot API (https://core.telegram.org/bots/api) for one bot: chats hold the
// messages sent to them, edits change them, and requests are answered with the documented shapes
// (`{ok: true, result}` or `{ok: false, error_code, description[, parameters]}`). HTML parse mode is
// checked as Telegram checks it (unsupported tags, unbalanced tags, bare `&`/`<` are 400s; the text
// after parsing must be 1–4096 characters; callback_data 1–64 bytes), so a rendering bug fails here
// as it would in production. Every call is recorded with its body, its answer and the time it
// arrived (from `now`, so tests on a fake clock can assert rates).
//
// Failure switches: `fail()` answers every request with a failure until cleared (an outage),
// `failNext()` only the next n; failures are 5xx (as Telegram's front end sends them), 429 with
// `retry_after`, any Bot API error, or a network error (connection refused/reset).
//
// Inbound updates: `enqueueUpdate()` queues an update for `getUpdates` (offset confirms, as in the
// API); `callbackQuery()` and `textMessage()` build the update shapes a button press or a message
// produces. Extend here rather than in a test file, so every test talks to the same fake.

export const TELEGRAM_API_ROOT = "https://api.telegram.org";

export type TelegramFailure =
  | { status: 500 | 502 | 503 | 504 }
  | { retryAfter: number }
  | { errorCode: number; description: string; parameters?: Record<string, unknown> }
  | { network: true };

export type TelegramCall = {
  method: string;
  body: Record<string, any>;
  /** When the request arrived (the mock's clock). */
  at: number;
  status: number;
  ok: boolean;
  result?: unknown;
  description?: string;
};

export type InlineButton = { text: string; callback_data?: string; url?: string };
export type ReplyMarkup = { inline_keyboard?: InlineButton[][]; force_reply?: boolean; [k: string]: unknown };

export type StoredMessage = {
  message_id: number;
  chat_id: string;
  /** The text as sent (with its markup, for HTML). */
  raw: string;
  /** The text as a user sees it (tags removed, entities decoded). */
  text: string;
  parse_mode?: string;
  reply_markup?: ReplyMarkup;
  date: number;
  edit_date?: number;
  edits: number;
};

export type TelegramUser = { id: number; is_bot: boolean; first_name: string; username?: string };

export type TelegramMockOptions = {
  token: string;
  apiRoot?: string;
  /** The clock recorded on calls and used for message dates; defaults to Date.now. */
  now?: () => number;
  /** Chats the bot is in; others answer "chat not found". Any chat when unset. */
  chats?: string[];
  bot?: { id: number; username: string; first_name?: string };
};

const ALLOWED_TAGS = new Set([
  "b",
  "strong",
  "i",
  "em",
  "u",
  "ins",
  "s",
  "strike",
  "del",
  "span",
  "tg-spoiler",
  "a",
  "code",
  "pre",
  "blockquote",
  "tg-emoji",
]);
const NAMED_ENTITIES: Record<string, string> = { lt: "<", gt: ">", amp: "&", quot: '"' };

/** Parses Bot API HTML: the visible text, or the error Telegram answers. */
export function parseTelegramHtml(html: string): { ok: true; text: string } | { ok: false; description: string } {
  const bad = (why: string) => ({ ok: false as const, description: `Bad Request: can't parse entities: ${why}` });
  const open: string[] = [];
  let text = "";
  let i = 0;
  while (i < html.length) {
    const c = html[i]!;
    if (c === "&") {
      const m = /^&(#x[0-9a-fA-F]{1,6}|#[0-9]{1,7}|[a-zA-Z]+);/.exec(html.slice(i, i + 12));
      if (!m)
        return bad(
          `Character '&' is reserved and must be escaped at byte offset ${Buffer.byteLength(html.slice(0, i))}`,
        );
      const name = m[1]!;
      if (name.startsWith("#x")) text += String.fromCodePoint(parseInt(name.slice(2), 16));
      else if (name.startsWith("#")) text += String.fromCodePoint(parseInt(name.slice(1), 10));
      else if (NAMED_ENTITIES[name] !== undefined) text += NAMED_ENTITIES[name];
      else return bad(`Unsupported HTML entity "&${name};" at byte offset ${Buffer.byteLength(html.slice(0, i))}`);
      i += m[0].length;
      continue;
    }
    if (c === ">")
      return bad(`Character '>' is reserved and must be escaped at byte offset ${Buffer.byteLength(html.slice(0, i))}`);
    if (c === "<") {
      const end = html.indexOf(">", i);
      const m =
        end < 0
          ? null
          : /^<(\/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[a-zA-Z-]+(?:="[^"<>]*")?)*)\s*>$/.exec(html.slice(i, end + 1));
      if (!m) return bad(`Unsupported start tag at byte offset ${Buffer.byteLength(html.slice(0, i))}`);
      const [, closing, rawName] = m;
      const name = rawName!.toLowerCase();
      if (!ALLOWED_TAGS.has(name))
        return bad(`Unsupported start tag "${name}" at byte offset ${Buffer.byteLength(html.slice(0, i))}`);
      if (closing) {
        if (open.pop() !== name)
          return bad(
            `Unmatched end tag at byte offset ${Buffer.byteLength(html.slice(0, i))}, expected "</${open.at(-1) ?? ""}>", found "</${name}>"`,
          );
      } else {
        open.push(name);
      }
      i = end + 1;
      continue;
    }
    text += c;
    i += 1;
  }
  if (open.length > 0) return bad(`Can't find end tag corresponding to start tag "${open.at(-1)}"`);
  return { ok: true, text };
}

const sameMarkup = (a?: ReplyMarkup, b?: ReplyMarkup) => {
  const norm = (m?: ReplyMarkup) => JSON.stringify(m?.inline_keyboard?.length ? m : null);
  return norm(a) === norm(b);
};

export function createTelegramMock(opts: TelegramMockOptions) {
  const root = (opts.apiRoot ?? TELEGRAM_API_ROOT).replace(/\/+$/, "");
  const now = opts.now ?? (() => Date.now());
  const bot: TelegramUser = {
    id: opts.bot?.id ?? 7000000001,
    is_bot: true,
    first_name: opts.bot?.first_name ?? "Pitcrew",
    username: opts.bot?.username ?? "pitcrew_test_bot",
  };
  const calls: TelegramCall[] = [];
  const chats = new Map<string, Map<number, StoredMessage>>();
  const updates: Array<Record<string, unknown> & { update_id: number }> = [];
  let nextMessageId = 100;
  let nextUpdateId = 500_000_001;
  let down: TelegramFailure | null = null;
  const queued: TelegramFailure[] = [];
  let webhook: { url: string; secret_token?: string; allowed_updates?: string[] } | null = null;
  let beforeAnswer: ((call: TelegramCall) => unknown) | null = null;

  const chatOf = (id: string) => {
    let c = chats.get(id);
    if (!c) chats.set(id, (c = new Map()));
    return c;
  };
  const chatJson = (id: string) => {
    if (id.startsWith("@"))
      return { id: -1001000000000 - id.length, type: "channel", title: id, username: id.slice(1) };
    const n = Number(id);
    return n < 0
      ? { id: n, type: id.startsWith("-100") ? "supergroup" : "group", title: `chat ${id}` }
      : { id: n, type: "private", first_name: `user ${id}` };
  };
  const messageJson = (m: StoredMessage) => ({
    message_id: m.message_id,
    from: bot,
    chat: chatJson(m.chat_id),
    date: m.date,
    ...(m.edit_date ? { edit_date: m.edit_date } : {}),
    text: m.text,
    ...(m.reply_markup?.inline_keyboard?.length ? { reply_markup: m.reply_markup } : {}),
  });

  type Answer = { status: number; body: Record<string, unknown> | string };
  const ok = (result: unknown): Answer => ({ status: 200, body: { ok: true, result } });
  const error = (code: number, description: string, parameters?: Record<string, unknown>): Answer => ({
    status: code,
    body: { ok: false, error_code: code, description, ...(parameters ? { parameters } : {}) },
  });

  function checkText(body: Record<string, any>): { text: string } | Answer {
    const raw = typeof body.text === "string" ? body.text : "";
    let text = raw;
    if (body.parse_mode === "HTML") {
      const p = parseTelegramHtml(raw);
      if (!p.ok) return error(400, p.description);
      text = p.text;
    }
    if (text.trim() === "") return error(400, "Bad Request: message text is empty");
    if (text.length > 4096) return error(400, "Bad Request: message is too long");
    return { text };
  }

  function checkMarkup(markup: unknown): ReplyMarkup | undefined | Answer {
    if (markup === undefined || markup === null) return undefined;
    const m = (typeof markup === "string" ? JSON.parse(markup) : markup) as ReplyMarkup;
    for (const row of m.inline_keyboard ?? []) {
      for (const b of row) {
        if (!b.text) return error(400, "Bad Request: BUTTON_TEXT_EMPTY");
        if (
          b.callback_data !== undefined &&
          (Buffer.byteLength(b.callback_data) < 1 || Buffer.byteLength(b.callback_data) > 64)
        )
          return error(400, "Bad Request: BUTTON_DATA_INVALID");
      }
    }
    return m;
  }

  const isAnswer = (x: unknown): x is Answer => typeof x === "object" && x !== null && "status" in x && "body" in x;

  function knownChat(body: Record<string, any>): string | Answer {
    if (body.chat_id === undefined || body.chat_id === null || body.chat_id === "")
      return error(400, "Bad Request: chat_id is empty");
    const id = String(body.chat_id);
    if (opts.chats && !opts.chats.includes(id)) return error(400, "Bad Request: chat not found");
    return id;
  }

  const methods: Record<string, (body: Record<string, any>) => Answer> = {
    getMe: () =>
      ok({ ...bot, can_join_groups: true, can_read_all_group_messages: false, supports_inline_queries: false }),
    sendMessage(body) {
      const chat = knownChat(body);
      if (isAnswer(chat)) return chat;
      const t = checkText(body);
      if (isAnswer(t)) return t;
      const markup = checkMarkup(body.reply_markup);
      if (isAnswer(markup)) return markup;
      const m: StoredMessage = {
        message_id: nextMessageId++,
        chat_id: chat,
        raw: body.text,
        text: t.text,
        parse_mode: body.parse_mode,
        reply_markup: markup,
        date: Math.floor(now() / 1000),
        edits: 0,
      };
      chatOf(chat).set(m.message_id, m);
      return ok(messageJson(m));
    },
    editMessageText(body) {
      if (body.inline_message_id !== undefined)
        return error(400, "Bad Request: inline messages are not kept by this mock");
      const chat = knownChat(body);
      if (isAnswer(chat)) return chat;
      const m = chats.get(chat)?.get(Number(body.message_id));
      if (!m) return error(400, "Bad Request: message to edit not found");
      const t = checkText(body);
      if (isAnswer(t)) return t;
      const markup = checkMarkup(body.reply_markup);
      if (isAnswer(markup)) return markup;
      if (m.raw === body.text && m.parse_mode === body.parse_mode && sameMarkup(m.reply_markup, markup)) {
        return error(
          400,
          "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
        );
      }
      Object.assign(m, {
        raw: body.text,
        text: t.text,
        parse_mode: body.parse_mode,
        reply_markup: markup,
        edit_date: Math.floor(now() / 1000),
        edits: m.edits + 1,
      });
      return ok(messageJson(m));
    },
    editMessageReplyMarkup(body) {
      const chat = knownChat(body);
      if (isAnswer(chat)) return chat;
      const m = chats.get(chat)?.get(Number(body.message_id));
      if (!m) return error(400, "Bad Request: message to edit not found");
      const markup = checkMarkup(body.reply_markup);
      if (isAnswer(markup)) return markup;
      if (sameMarkup(m.reply_markup, markup))
        return error(
          400,
          "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
        );
      Object.assign(m, { reply_markup: markup, edit_date: Math.floor(now() / 1000), edits: m.edits + 1 });
      return ok(messageJson(m));
    },
    answerCallbackQuery: (body) =>
      body.callback_query_id
        ? ok(true)
        : error(400, "Bad Request: query is too old and response timeout expired or query ID is invalid"),
    setWebhook(body) {
      if (typeof body.url !== "string")
        return error(400, "Bad Request: bad webhook: Failed to resolve host: Name or service not known");
      if (body.url !== "" && !body.url.startsWith("https://"))
        return error(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook");
      webhook =
        body.url === ""
          ? null
          : { url: body.url, secret_token: body.secret_token, allowed_updates: body.allowed_updates };
      return ok(true);
    },
    deleteWebhook() {
      webhook = null;
      return ok(true);
    },
    getWebhookInfo: () =>
      ok({
        url: webhook?.url ?? "",
        has_custom_certificate: false,
        pending_update_count: updates.length,
        ...(webhook?.allowed_updates ? { allowed_updates: webhook.allowed_updates } : {}),
      }),
    getUpdates(body) {
      if (webhook)
        return error(
          409,
          "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
        );
      const offset = Number(body.offset ?? 0);
      // An offset confirms every update before it, as the API does.
      if (offset > 0) while (updates.length && updates[0]!.update_id < offset) updates.shift();
      return ok(updates.slice(0, Math.min(Number(body.limit ?? 100), 100)));
    },
  };

  function failureAnswer(f: TelegramFailure): Answer | "network" {
    if ("network" in f) return "network";
    if ("retryAfter" in f)
      return error(429, `Too Many Requests: retry after ${f.retryAfter}`, { retry_after: f.retryAfter });
    if ("errorCode" in f) return error(f.errorCode, f.description, f.parameters);
    const nginx502 =
      "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n</body>\r\n</html>\r\n";
    return { status: f.status, body: f.status === 502 ? nginx502 : "Internal Server Error" };
  }

  const handler = http.all(`${root}/*`, async ({ request }) => {
    const url = new URL(request.url);
    const m = /\/bot([^/]+)\/([A-Za-z]+)$/.exec(url.pathname);
    let body: Record<string, any> = Object.fromEntries(url.searchParams);
    if (request.method !== "GET") {
      const type = request.headers.get("content-type") ?? "";
      if (type.includes("application/json"))
        body = { ...body, ...((await request.json().catch(() => ({}))) as Record<string, any>) };
      else if (type.includes("form")) body = { ...body, ...Object.fromEntries((await request.formData()).entries()) };
    }
    const call: TelegramCall = { method: m?.[2] ?? url.pathname, body, at: now(), status: 0, ok: false };
    calls.push(call);
    await beforeAnswer?.(call);
    const failure = queued.shift() ?? down;
    let answer: Answer;
    if (failure) {
      const f = failureAnswer(failure);
      if (f === "network") {
        call.description = "network error";
        return HttpResponse.error();
      }
      answer = f;
    } else if (!m || m[1] !== opts.token) {
      answer = error(m ? 401 : 404, m ? "Unauthorized" : "Not Found");
    } else {
      const fn = methods[m[2]!];
      answer = fn ? fn(body) : error(404, "Not Found: method not found");
    }
    call.status = answer.status;
    if (typeof answer.body === "string") {
      call.description = answer.body;
      return new HttpResponse(answer.body, {
        status: answer.status,
        statusText: answer.status === 502 ? "Bad Gateway" : "Internal Server Error",
        headers: { "content-type": "text/html" },
      });
    }
    call.ok = answer.body.ok === true;
    if (call.ok) call.result = answer.body.result;
    else call.description = String(answer.body.description);
    return HttpResponse.json(answer.body, { status: answer.status });
  });

  const handlers: HttpHandler[] = [handler];

  return {
    handlers,
    /** Every request, in arrival order, failed ones included. */
    calls,
    /** The calls of one method that succeeded. */
    succeeded: (method?: string) => calls.filter((c) => c.ok && (!method || c.method === method)),
    /** The messages in a chat, oldest first, as they are now. */
    messages: (chat: string | number) => [...(chats.get(String(chat))?.values() ?? [])],
    message: (chat: string | number, id: number | string) => chats.get(String(chat))?.get(Number(id)),
    /** Fails every request this way until `fail(null)`. */
    fail(f: TelegramFailure | null) {
      down = f;
    },
    /** Fails the next `n` requests this way, then answers normally again. */
    failNext(n: number, f: TelegramFailure) {
      for (let i = 0; i < n; i++) queued.push(f);
    },
    webhook: () => webhook,
    /** Runs (and awaits) `fn` for each request before it is answered: to change things while a call is in flight. */
    onRequest(fn: ((call: TelegramCall) => unknown) | null) {
      beforeAnswer = fn;
    },
    /** Queues an update for getUpdates; returns it with its update_id. */
    enqueueUpdate(update: Record<string, unknown>) {
      const u = { update_id: nextUpdateId++, ...update };
      updates.push(u);
      return u;
    },
    /** The `callback_query` update a press of an inline button on a bot message produces. */
    callbackQuery(input: {
      from: Partial<TelegramUser> & { id: number };
      chat: string | number;
      messageId: number;
      data: string;
    }) {
      const msg = chats.get(String(input.chat))?.get(input.messageId);
      return {
        update_id: nextUpdateId++,
        callback_query: {
          id: String(BigInt(input.from.id) * 1000n + BigInt(nextUpdateId)),
          from: { is_bot: false, first_name: "Tester", ...input.from },
          message: msg
            ? messageJson(msg)
            : {
                message_id: input.messageId,
                chat: chatJson(String(input.chat)),
                date: Math.floor(now() / 1000),
                text: "",
              },
          chat_instance: `-${String(input.chat).replace(/\D/g, "")}77`,
          data: input.data,
        },
      };
    },
    /** The `message` update a user's text message (a command, or a reply) produces. */
    textMessage(input: {
      from: Partial<TelegramUser> & { id: number };
      chat: string | number;
      text: string;
      replyTo?: number;
    }) {
      const text = input.text;
      const command = /^\/[a-z_]+(@\w+)?/.exec(text);
      const replied = input.replyTo !== undefined ? chats.get(String(input.chat))?.get(input.replyTo) : undefined;
      return {
        update_id: nextUpdateId++,
        message: {
          message_id: nextMessageId++,
          from: { is_bot: false, first_name: "Tester", ...input.from },
          chat: chatJson(String(input.chat)),
          date: Math.floor(now() / 1000),
          text,
          ...(command ? { entities: [{ type: "bot_command", offset: 0, length: command[0].length }] } : {}),
          ...(replied ? { reply_to_message: messageJson(replied) } : {}),
        },
      };
    },
    bot,
  };
}

export type TelegramMock = ReturnType<typeof createTelegramMock>;
