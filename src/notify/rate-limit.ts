// Telegram's limits for a bot (https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this):
// about 30 messages a second overall, no more than one a second in one chat, and no more than
// 20 a minute in a group. Edits count like messages. A 429 answer names `retry_after`: the chat
// gets nothing more until then. The limiter holds only timestamps and takes the time from its
// caller, so it is tested without clocks; one sender at a time uses it (the deliverer's lease).

export type RateLimits = { perSecond: number; perChatGapMs: number; perGroupPerMinute: number };

export const TELEGRAM_LIMITS: RateLimits = { perSecond: 30, perChatGapMs: 1000, perGroupPerMinute: 20 };

/** Groups, supergroups and channels have negative ids (or an @name); private chats positive ones. */
export const isGroupChat = (chat: string) => chat.startsWith("-") || chat.startsWith("@");

export function createRateLimiter(limits: RateLimits = TELEGRAM_LIMITS) {
  const global: number[] = [];
  const perChat = new Map<string, { last: number; minute: number[]; blockedUntil: number }>();
  const chatState = (chat: string) => {
    let s = perChat.get(chat);
    if (!s) perChat.set(chat, (s = { last: Number.NEGATIVE_INFINITY, minute: [], blockedUntil: 0 }));
    return s;
  };
  const drop = (times: number[], before: number) => {
    while (times.length && times[0]! <= before) times.shift();
  };

  /** 0 when a message to `chat` may go now, else the time it may. */
  function nextAllowed(chat: string, now: number): number {
    drop(global, now - 1000);
    const s = chatState(chat);
    drop(s.minute, now - 60_000);
    let at = Math.max(s.blockedUntil, s.last + limits.perChatGapMs);
    if (global.length >= limits.perSecond) at = Math.max(at, global[global.length - limits.perSecond]! + 1000);
    if (isGroupChat(chat) && s.minute.length >= limits.perGroupPerMinute)
      at = Math.max(at, s.minute[s.minute.length - limits.perGroupPerMinute]! + 60_000);
    return at > now ? at : 0;
  }

  return {
    nextAllowed,
    /** Takes a slot for a message to `chat` if one is free now; else returns when one is. */
    take(chat: string, now: number): { ok: true } | { ok: false; at: number } {
      const at = nextAllowed(chat, now);
      if (at > 0) return { ok: false, at };
      global.push(now);
      const s = chatState(chat);
      s.last = now;
      if (isGroupChat(chat)) s.minute.push(now);
      return { ok: true };
    },
    /** Telegram answered 429: nothing to `chat` before `until`. */
    block(chat: string, until: number): void {
      const s = chatState(chat);
      s.blockedUntil = Math.max(s.blockedUntil, until);
    },
  };
}

export type RateLimiter = ReturnType<typeof createRateLimiter>;
