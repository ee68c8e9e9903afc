import type { TelegramRoute } from "../config/load.ts";

// Which chat hears about an incident (TELEGRAM_ROUTES): the first route whose label has exactly
// that value, else the default chat (TELEGRAM_CHAT_ID).

export function chatFor(
  labels: Record<string, unknown>,
  routes: readonly TelegramRoute[],
  defaultChat: string,
): string {
  for (const r of routes) {
    if (Object.hasOwn(labels, r.label) && String(labels[r.label]) === r.value) return r.chat;
  }
  return defaultChat;
}
