import { createHash } from "node:crypto";
import type { Telegram } from "telegraf";
import type { Config } from "../config/load.ts";
import type { Store } from "../store/db.ts";
import type { Logger } from "../shared/logger.ts";
import type { TaskQueue } from "../bus/port.ts";
import { appendEvent } from "../events/repo.ts";
import { errorMessage, invalid, isAppError } from "../shared/errors.ts";
import { insertIfAbsent } from "../store/sql.ts";
import type { ApprovalService } from "./service.ts";
import { assertDecidable, getApproval, type ApprovalRow } from "./repo.ts";
import { createTelegramCommands } from "./telegram-commands.ts";
import { detailsText } from "./telegram-views.ts";
import {
  deciderOf,
  escapeHtml,
  fitMessage,
  parseCallbackData,
  parseCommand,
  personOf,
  TelegramUpdate,
  type TelegramCallbackQuery,
  type TelegramChat,
  type TelegramMessage,
  type TelegramUser,
} from "./telegram-parse.ts";

// Telegram as a channel of the approvals domain: one update in, the approvals service decides.
// A plain dispatcher rather than telegraf's Telegraf router: the transports (webhook, the leased
// poller) and the update de-duplication live in the database, and a function from update to effect
// is what both transports call and what tests drive; telegraf's `Telegram` client makes the calls.
// callback_data grants nothing: each press is checked (chat allowed, the person an approver, the
// approval pending and unexpired) and every refusal is an `approval.refused` event naming who tried.

export type TelegramChannelDeps = {
  store: Store;
  log: Logger;
  now: () => number;
  telegram: Pick<NonNullable<Config["telegram"]>, "token" | "defaultChat" | "routes" | "approverIds">;
  api: Telegram;
  approvals: Pick<ApprovalService, "approve" | "reject" | "merge" | "rebuild">;
  queue: Pick<TaskQueue, "kind" | "health">;
  /** Wakes the outbox relay after work was queued (resume). */
  kick: () => void;
};

/** How long a Reject press's "reply with the reason" prompt stays answerable. */
export const PROMPT_TTL_MS = 15 * 60_000;
const UPDATES_KEPT_MS = 2 * 24 * 3_600_000;

export type Admission = { ok: true; approval: ApprovalRow } | { ok: false; why: string };
export type Attempt = {
  updateId: number;
  user: TelegramUser;
  chatId: number | null;
  data?: string | null;
  approvalId: string | null;
};

/**
 * A Bot API error that retrying will not fix (telegraf's TelegramError): a 4xx other than 429, and
 * other than 401/404, which mean a token or API root that is wrong until someone fixes it.
 */
function refusedByTelegram(err: unknown): boolean {
  const e = err as { code?: unknown; response?: { ok?: unknown } };
  return (
    typeof e?.code === "number" &&
    e.code >= 400 &&
    e.code < 500 &&
    ![401, 404, 429].includes(e.code) &&
    e.response?.ok === false
  );
}

export function createTelegramChannel(deps: TelegramChannelDeps) {
  const { store, api } = deps;
  const log = deps.log.child({ component: "telegram" });
  const botId = deps.telegram.token.split(":")[0]!;
  const allowedChats = new Set([deps.telegram.defaultChat, ...deps.telegram.routes.map((r) => r.chat)]);
  const approvers = new Set(deps.telegram.approverIds);
  let handled = 0;
  let botName: Promise<string | null> | undefined;

  const chatAllowed = (c: TelegramChat | undefined) =>
    !!c && (allowedChats.has(String(c.id)) || (!!c.username && allowedChats.has(`@${c.username}`)));
  const isApprover = (u: TelegramUser) => approvers.has(u.id);

  /** Sends an HTML message (escaped by the caller) in reply to `replyTo` when given. */
  async function say(chatId: number, html: string, replyTo?: number, extra: Record<string, unknown> = {}) {
    return api.sendMessage(chatId, fitMessage(html), {
      parse_mode: "HTML",
      link_preview_options: { is_disabled: true },
      ...(replyTo ? { reply_parameters: { message_id: replyTo, allow_sending_without_reply: true } } : {}),
      ...extra,
    });
  }

  /** The presser's answer; a query that expired meanwhile is not worth failing the update for. */
  async function answer(q: TelegramCallbackQuery, text: string, alert = false) {
    await api
      .answerCbQuery(q.id, text.slice(0, 200), { show_alert: alert })
      .catch((err) => log.warn({ err: { message: errorMessage(err) } }, "answerCallbackQuery failed"));
  }

  /** The audit record of a refused attempt; one per update, however often Telegram sends it. */
  async function refuse(at: Attempt, why: string, approval?: ApprovalRow): Promise<void> {
    const now = deps.now();
    await appendEvent(
      store.db,
      store.dialect,
      {
        id: `evt_tgu_${createHash("sha256").update(`${botId}:${at.updateId}`).digest("hex").slice(0, 26)}`,
        type: "approval.refused",
        incidentId: approval?.incident_id ?? null,
        taskId: approval?.task_id ?? null,
        actor: `telegram:${at.user.id}`,
        channel: "telegram",
        reason: why.slice(0, 1000),
        data: {
          approvalId: at.approvalId,
          userId: at.user.id,
          username: at.user.username ?? null,
          chatId: at.chatId,
          callbackData: at.data?.slice(0, 128) ?? null,
          updateId: at.updateId,
        },
        occurredAt: now,
      },
      now,
    );
    log.info({ userId: at.user.id, approvalId: at.approvalId, why }, "telegram attempt refused");
  }

  /**
   * Checks a person's attempt to decide: the chat, the approver list, the approval. Returns the
   * approval, or the refusal text after auditing it.
   */
  async function admit(at: Attempt, chat: TelegramChat | undefined, needPending: boolean): Promise<Admission> {
    const a = at.approvalId ? await getApproval(store.db, at.approvalId) : undefined;
    // The refusal is filed under the approval's incident when there is one, whoever tried.
    const no = async (why: string) => (await refuse(at, why, a), { ok: false as const, why });
    if (!chatAllowed(chat)) return no("this chat is not allowed to decide approvals");
    if (!isApprover(at.user)) return no(`${personOf(at.user)} is not an approver (TELEGRAM_APPROVER_IDS)`);
    if (!a) return no(`approval ${at.approvalId ?? "?"} does not exist`);
    if (needPending) {
      try {
        assertDecidable(a, deps.now());
      } catch (err) {
        return no(errorMessage(err));
      }
    }
    return { ok: true, approval: a };
  }

  /**
   * Approves as a person: the claim (and for a pull request its merge job) is committed, `told`
   * hears it, then the merge is made at once (its job finds it done; a failure is retried there
   * or releases the claim, which the approval message then shows). Returns the refusal text or null.
   */
  async function approveAs(
    at: Attempt,
    approval: ApprovalRow,
    told: (text: string) => Promise<void>,
  ): Promise<string | null> {
    const by = deciderOf(at.user, at.chatId);
    let r;
    try {
      r = await deps.approvals.approve({ approvalId: approval.id }, by, null, { mergeNow: false });
    } catch (err) {
      if (!isAppError(err)) throw err;
      await refuse(at, err.message, approval);
      return err.message;
    }
    if (approval.pr_number !== null) {
      await told(`Approved by ${personOf(at.user)}: merging pull request #${approval.pr_number}.`);
      await deps.approvals
        .merge(approval.id, by)
        .catch((err) =>
          log.warn(
            { err: { message: errorMessage(err) }, approvalId: approval.id },
            "merge after approval failed; its job retries",
          ),
        );
    } else {
      const what = r.taskId
        ? `fix task ${r.taskId} queued`
        : r.inline
          ? `ran inline: ${r.inline.summary}`
          : `incident is ${r.incident.state}`;
      await told(`Approved by ${personOf(at.user)}: ${what}.`);
    }
    return null;
  }

  /** Rejects as a person; returns the refusal text or null. */
  async function rejectAs(at: Attempt, approval: ApprovalRow, reason: string | null): Promise<string | null> {
    try {
      await deps.approvals.reject({ approvalId: approval.id }, deciderOf(at.user, at.chatId), reason);
      return null;
    } catch (err) {
      if (!isAppError(err)) throw err;
      await refuse(at, err.message, approval);
      return err.message;
    }
  }

  async function onPress(updateId: number, q: TelegramCallbackQuery): Promise<void> {
    const chat = q.message?.chat;
    const ref = parseCallbackData(q.data);
    const at: Attempt = {
      updateId,
      user: q.from,
      chatId: chat?.id ?? null,
      data: q.data ?? null,
      approvalId: ref.ok ? ref.approvalId : null,
    };
    if (!ref.ok) {
      await refuse(at, `forged or stale button: ${ref.why}`);
      return answer(q, "Refused: this button is not valid (forged, or from an older message).", true);
    }
    const adm = await admit(at, chat, ref.verb === "approve" || ref.verb === "reject");
    if (!adm.ok) return answer(q, `Refused: ${adm.why}`, true);
    const a = adm.approval;
    const chatId = chat!.id;
    switch (ref.verb) {
      case "approve": {
        const refused = await approveAs(at, a, (text) => answer(q, text));
        if (refused) await answer(q, `Refused: ${refused}`, true);
        return;
      }
      case "reject": {
        // ForceReply with `selective` shows the reply field only to the users the text mentions.
        const mention = q.from.username
          ? `@${escapeHtml(q.from.username)}`
          : `<a href="tg://user?id=${q.from.id}">${escapeHtml(q.from.first_name ?? "you")}</a>`;
        const sent = await say(
          chatId,
          `${mention}, reply to this message with the reason to reject <code>${escapeHtml(a.id)}</code>.`,
          q.message?.message_id,
          {
            reply_markup: { force_reply: true, selective: true, input_field_placeholder: "Reason for rejecting" },
          },
        );
        const now = deps.now();
        await store.db
          .insertInto("telegram_prompts")
          .values({
            chat_id: String(chatId),
            message_id: sent.message_id,
            approval_id: a.id,
            user_id: q.from.id,
            created_at: now,
            expires_at: Math.min(now + PROMPT_TTL_MS, Number(a.expires_at)),
          })
          .execute();
        return answer(q, "Reply to my message with the reason to reject.");
      }
      case "details":
        await say(chatId, await detailsText(store.db, a), q.message?.message_id);
        return answer(q, "Details sent below.");
      case "rebuild": {
        try {
          const r = await deps.approvals.rebuild({ approvalId: a.id }, deciderOf(q.from, chatId), null);
          return answer(
            q,
            `Rebuilding (fix task ${r.taskId}): the fix runs again on the current base; a new pull request and approval follow.`,
          );
        } catch (err) {
          if (!isAppError(err)) throw err;
          await refuse(at, err.message, a);
          return answer(q, `Refused: ${err.message}`, true);
        }
      }
    }
  }

  /** The reply to a Reject prompt: its text is the reason. */
  async function onReasonReply(
    updateId: number,
    m: TelegramMessage,
    prompt: { approval_id: string; user_id: number; expires_at: number },
  ): Promise<void> {
    const from = m.from!;
    const at: Attempt = { updateId, user: from, chatId: m.chat.id, approvalId: prompt.approval_id };
    if (from.id !== Number(prompt.user_id))
      return void (await say(m.chat.id, "This prompt is for the approver who pressed Reject.", m.message_id));
    if (Number(prompt.expires_at) <= deps.now()) {
      const again = `<code>/reject ${escapeHtml(prompt.approval_id)} reason</code>`;
      return void (await say(m.chat.id, `This prompt expired. Press Reject again, or send ${again}.`, m.message_id));
    }
    const reason = (m.text ?? "").trim();
    if (!reason) return void (await say(m.chat.id, "Reply with the reason as text.", m.message_id));
    const adm = await admit(at, m.chat, true);
    const refused = adm.ok ? await rejectAs(at, adm.approval, reason.slice(0, 1000)) : adm.why;
    await store.db
      .deleteFrom("telegram_prompts")
      .where("chat_id", "=", String(m.chat.id))
      .where("message_id", "=", m.reply_to_message!.message_id)
      .execute();
    const done = `Rejected <code>${escapeHtml(prompt.approval_id)}</code> by ${escapeHtml(personOf(from))}: ${escapeHtml(reason)}`;
    await say(m.chat.id, refused ? `Refused: ${escapeHtml(refused)}` : done, m.message_id);
  }

  const commands = createTelegramCommands({
    ...deps,
    say,
    admit,
    approveAs,
    rejectAs,
    refuse,
    chatAllowed,
    isApprover,
  });

  /** Whether `/cmd@name` is addressed to this bot (asked once; when Telegram cannot say, assume so). */
  async function isOurs(name: string): Promise<boolean> {
    botName ??= api.getMe().then(
      (me) => me.username ?? null,
      () => ((botName = undefined), null),
    );
    const ours = await botName;
    return ours === null || ours.toLowerCase() === name.toLowerCase();
  }

  async function onMessage(updateId: number, m: TelegramMessage): Promise<void> {
    if (!m.from || m.from.is_bot) return;
    if (m.reply_to_message) {
      const prompt = await store.db
        .selectFrom("telegram_prompts")
        .select(["approval_id", "user_id", "expires_at"])
        .where("chat_id", "=", String(m.chat.id))
        .where("message_id", "=", m.reply_to_message.message_id)
        .executeTakeFirst();
      if (prompt) return onReasonReply(updateId, m, prompt);
    }
    const cmd = parseCommand(m.text);
    if (!cmd || (cmd.bot && !(await isOurs(cmd.bot)))) return;
    await commands.run(updateId, m, cmd);
  }

  /**
   * Handles one update (webhook body or getUpdates item) once: an update already handled is
   * skipped. Throws what is worth a retry (the database is down); the update is then not marked.
   */
  async function handleUpdate(raw: unknown): Promise<"handled" | "duplicate" | "ignored"> {
    const parsed = TelegramUpdate.safeParse(raw);
    if (!parsed.success)
      throw invalid("telegram.bad_update", `not a Telegram update: ${parsed.error.issues[0]?.message ?? "invalid"}`);
    const u = parsed.data;
    const seen = await store.db
      .selectFrom("telegram_updates")
      .select("update_id")
      .where("bot_id", "=", botId)
      .where("update_id", "=", u.update_id)
      .executeTakeFirst();
    if (seen) return "duplicate";
    let outcome: "handled" | "ignored" = "handled";
    try {
      if (u.callback_query) await onPress(u.update_id, u.callback_query);
      else if (u.message) await onMessage(u.update_id, u.message);
      else outcome = "ignored";
    } catch (err) {
      // Telegram refused one of our answers for good (bot removed from the chat, a message it
      // will not take): retrying this update would only block the ones after it.
      if (!refusedByTelegram(err)) throw err;
      log.warn(
        { updateId: u.update_id, err: { message: errorMessage(err) } },
        "Telegram refused an answer to an update; update skipped",
      );
    }
    const now = deps.now();
    await insertIfAbsent(store.db, store.dialect, "telegram_updates", {
      bot_id: botId,
      update_id: u.update_id,
      processed_at: now,
    });
    if (++handled % 200 === 1) {
      await store.db
        .deleteFrom("telegram_updates")
        .where("processed_at", "<", now - UPDATES_KEPT_MS)
        .execute();
      await store.db
        .deleteFrom("telegram_prompts")
        .where("expires_at", "<", now - UPDATES_KEPT_MS)
        .execute();
    }
    return outcome;
  }

  return { handleUpdate };
}

export type TelegramChannel = ReturnType<typeof createTelegramChannel>;
