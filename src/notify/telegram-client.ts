import { createRequire } from "node:module";
import type { Telegram } from "telegraf";

// The Bot API calls notices make, over telegraf's typed client (its `apiRoot` may point at a
// self-hosted Bot API server), with a timeout per call, and Telegram's errors sorted into what the
// sender does about them: 429 → wait `retry_after`; 5xx, network errors, timeouts → retry later
// (also 401/404, a token or API root that is wrong until someone fixes it); "message is not
// modified" → already done; "message to edit not found" → send a new one; anything else → give up
// with Telegram's description.

export type InlineKeyboard = Array<Array<{ text: string; callback_data: string }>>;

export type TelegramFailure =
  | { kind: "rate_limited"; retryAfterMs: number; description: string }
  | { kind: "unavailable"; description: string }
  | { kind: "not_modified"; description: string }
  | { kind: "gone"; description: string }
  | { kind: "refused"; description: string };

export type TelegramResult<T> = { ok: true; value: T } | { ok: false; error: TelegramFailure };

type BotApiError = {
  response?: { error_code?: unknown; description?: unknown; parameters?: { retry_after?: unknown } };
};

export function classifyTelegramError(err: unknown): TelegramFailure {
  const res = (err as BotApiError | undefined)?.response;
  const code = Number(res?.error_code);
  if (!res || !Number.isFinite(code)) {
    const e = err as { name?: string; message?: string } | undefined;
    return {
      kind: "unavailable",
      description: `${e?.name === "AbortError" ? "timed out" : "network error"}: ${String(e?.message ?? err).slice(0, 300)}`,
    };
  }
  const description = String(res.description ?? `error ${code}`);
  if (code === 429) {
    const s = Number(res.parameters?.retry_after);
    return { kind: "rate_limited", retryAfterMs: (Number.isFinite(s) && s > 0 ? s : 1) * 1000, description };
  }
  if (code >= 500 || code === 401 || code === 404)
    return { kind: "unavailable", description: `${code} ${description}` };
  if (/message is not modified/i.test(description)) return { kind: "not_modified", description };
  if (/message to edit not found|MESSAGE_ID_INVALID|message can't be edited/i.test(description))
    return { kind: "gone", description };
  return { kind: "refused", description: `${code} ${description}` };
}

export type TelegramClient = {
  send(chat: string, html: string, keyboard: InlineKeyboard | null): Promise<TelegramResult<{ messageId: string }>>;
  edit(chat: string, messageId: string, html: string, keyboard: InlineKeyboard | null): Promise<TelegramResult<void>>;
};

const FORMAT = { parse_mode: "HTML" as const, link_preview_options: { is_disabled: true } };

/**
 * telegraf's Bot API client for TELEGRAM_API_ROOT. telegraf resolves method URLs relative to the
 * root, so a root with a path (a self-hosted Bot API server behind a prefix) needs its trailing slash.
 */
export function createTelegramApi(opts: { token: string; apiRoot: string }): Telegram {
  // Loaded here, not at the top: an installation without Telegram never loads telegraf (~17 MB).
  const { Telegram } = createRequire(import.meta.url)("telegraf") as typeof import("telegraf");
  return new Telegram(opts.token, { apiRoot: `${opts.apiRoot.replace(/\/+$/, "")}/` });
}

export function createTelegramClient(opts: { token: string; apiRoot: string; timeoutMs?: number }): TelegramClient {
  const api = createTelegramApi(opts);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  // telegraf's own timeout is minutes long; a hung call must not hold the sender (and its lease).
  const signal = () => ({ signal: AbortSignal.timeout(timeoutMs) as never });
  const chatId = (chat: string) => (/^-?\d+$/.test(chat) ? Number(chat) : chat);

  async function call<T>(fn: () => Promise<T>): Promise<TelegramResult<T>> {
    try {
      return { ok: true, value: await fn() };
    } catch (err) {
      return { ok: false, error: classifyTelegramError(err) };
    }
  }

  return {
    send: (chat, html, keyboard) =>
      call(async () => {
        const markup = keyboard?.length ? { reply_markup: { inline_keyboard: keyboard } } : {};
        const m = await api.callApi(
          "sendMessage",
          { chat_id: chatId(chat), text: html, ...FORMAT, ...markup },
          signal(),
        );
        return { messageId: String(m.message_id) };
      }),
    edit: (chat, messageId, html, keyboard) =>
      call(async () => {
        // An empty keyboard removes the buttons; cards have none to begin with.
        const markup = keyboard ? { reply_markup: { inline_keyboard: keyboard } } : {};
        await api.callApi(
          "editMessageText",
          { chat_id: chatId(chat), message_id: Number(messageId), text: html, ...FORMAT, ...markup },
          signal(),
        );
      }),
  };
}
