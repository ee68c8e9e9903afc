import { z } from "zod";
import type { Decider } from "./repo.ts";

// What Telegram sends us, validated, and the pure readings of it: a button's callback_data, a
// command line, who a user is as a decider. Only the fields Pitcrew reads are kept.

const User = z.object({
  id: z.number().int(),
  is_bot: z.boolean().optional(),
  first_name: z.string().optional(),
  username: z.string().optional(),
});
const Chat = z.object({
  id: z.number().int(),
  type: z.string().optional(),
  title: z.string().optional(),
  username: z.string().optional(),
});
const Message = z.object({
  message_id: z.number().int(),
  chat: Chat,
  from: User.optional(),
  text: z.string().optional(),
  reply_to_message: z.object({ message_id: z.number().int() }).optional(),
});
const CallbackQuery = z.object({
  id: z.string(),
  from: User,
  // Absent for a button of an inline-mode message; an inaccessible (old) message still names its chat.
  message: z.object({ message_id: z.number().int(), chat: Chat }).optional(),
  data: z.string().optional(),
});

export const TelegramUpdate = z.object({
  update_id: z.number().int().nonnegative(),
  message: Message.optional(),
  callback_query: CallbackQuery.optional(),
});
export type TelegramUpdate = z.infer<typeof TelegramUpdate>;
export type TelegramUser = z.infer<typeof User>;
export type TelegramChat = z.infer<typeof Chat>;
export type TelegramMessage = z.infer<typeof Message>;
export type TelegramCallbackQuery = z.infer<typeof CallbackQuery>;

export type ButtonVerb = "approve" | "reject" | "details" | "rebuild";
const VERBS: Record<string, ButtonVerb> = { a: "approve", r: "reject", d: "details", b: "rebuild" };
const APPROVAL_ID = /^apr_[0-9A-Za-z_]{1,36}$/;

/** The button formats the approval message renders: `v1:<a|r|d|b>:<approval id>`. */
export function buttonData(verb: ButtonVerb, approvalId: string): string {
  const letter = Object.entries(VERBS).find(([, v]) => v === verb)![0];
  return `v1:${letter}:${approvalId}`;
}

/**
 * A button's callback_data read as a reference. It grants nothing by itself (the caller checks the
 * person, the chat and the approval); anything that is not one of our formats is forged or stale.
 */
export function parseCallbackData(
  data: string | undefined,
): { ok: true; verb: ButtonVerb; approvalId: string } | { ok: false; why: string } {
  if (data === undefined || data === "") return { ok: false, why: "the button carries no data" };
  if (Buffer.byteLength(data, "utf8") > 64)
    return { ok: false, why: "the button's data is longer than Telegram allows" };
  const [version, verb, id, ...rest] = data.split(":");
  if (version !== "v1") return { ok: false, why: `unknown button format ${JSON.stringify(version)}` };
  const v = verb ? VERBS[verb] : undefined;
  if (!v) return { ok: false, why: `unknown button action ${JSON.stringify(verb ?? "")}` };
  if (rest.length > 0 || !id || !APPROVAL_ID.test(id))
    return { ok: false, why: "the button names no valid approval id" };
  return { ok: true, verb: v, approvalId: id };
}

export type Command = { name: string; args: string; bot: string | null };

/** `/cmd args` or `/cmd@BotName args` (as Telegram sends commands in groups); null for other text. */
export function parseCommand(text: string | undefined): Command | null {
  const m = /^\/([A-Za-z0-9_]{1,32})(?:@([A-Za-z0-9_]{1,64}))?(?:\s+([\s\S]*))?$/.exec((text ?? "").trim());
  if (!m) return null;
  return { name: m[1]!.toLowerCase(), bot: m[2] ?? null, args: (m[3] ?? "").trim() };
}

/** `@alice (tg:42)`, or the first name when there is no username. */
export function personOf(u: TelegramUser): string {
  const name = u.username ? `@${u.username}` : (u.first_name ?? "").slice(0, 64) || "someone";
  return `${name} (tg:${u.id})`;
}

/** The decider recorded on the approval (subject), its events (actor, data) and the channel. */
export function deciderOf(u: TelegramUser, chatId: number | null): Decider & { data: Record<string, unknown> } {
  return {
    subject: personOf(u),
    actor: `telegram:${u.id}`,
    channel: "telegram",
    data: { telegram: { userId: u.id, username: u.username ?? null, chatId } },
  };
}

export { escapeHtml } from "../notify/format.ts";

const TAG = /<(\/?)([a-z]+)[^>]*>/g;

/**
 * Cuts `html` (already escaped, our own tags only) to fit Telegram's 4,096 characters: never inside
 * an entity or a tag, and every tag the cut left open is closed, so Telegram can still parse it.
 */
export function fitMessage(html: string, max = 4096): string {
  if (html.length <= max) return html;
  for (let room = max - 1; room > 0; room -= 8) {
    const cut = cutBetween(html, room);
    const closing = closersOf(cut);
    if (cut.length + 1 + closing.length <= max) return `${cut}…${closing}`;
  }
  return "…";
}

/** At most `room` characters of `html`, ending between entities and tags. */
function cutBetween(html: string, room: number): string {
  let cut = html.slice(0, room);
  const amp = cut.lastIndexOf("&");
  if (amp > cut.lastIndexOf(";")) cut = cut.slice(0, amp);
  const lt = cut.lastIndexOf("<");
  if (lt > cut.lastIndexOf(">")) cut = cut.slice(0, lt);
  return cut;
}

/** The closing tags for the tags left open in `html`, innermost first. */
function closersOf(html: string): string {
  const open: string[] = [];
  for (const m of html.matchAll(TAG)) {
    if (!m[1]) open.push(m[2]!);
    else if (open.lastIndexOf(m[2]!) >= 0) open.splice(open.lastIndexOf(m[2]!), 1);
  }
  return open
    .reverse()
    .map((t) => `</${t}>`)
    .join("");
}

/** `apr_…` is an approval, `inc_…` an incident (its pending approval). */
export function approvalRef(id: string): { approvalId: string } | { incidentId: string } | null {
  if (APPROVAL_ID.test(id)) return { approvalId: id };
  if (/^inc_[0-9A-Za-z]{1,36}$/.test(id)) return { incidentId: id };
  return null;
}
