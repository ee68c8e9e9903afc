import type { Config } from "../config/load.ts";
import type { Store } from "../store/db.ts";
import { renderApprovalMessage } from "./approval-message.ts";
import type { DeliveryOutcome, Sender } from "./deliverer.ts";
import { renderIncidentCard, shouldAnnounce, type Severity } from "./incident-card.ts";
import type { RateLimiter } from "./rate-limit.ts";
import {
  forgetCardMessage,
  getCardMessage,
  saveApprovalMessage,
  saveCardMessage,
  type DeliveryRow,
  type SentMessage,
} from "./repo.ts";
import { APPROVAL_MESSAGE, INCIDENT_CARD, SCHEDULE_FAILED } from "./requests.ts";
import { renderScheduleFailure } from "./schedule-message.ts";
import { chatFor } from "./routing.ts";
import type { InlineKeyboard, TelegramClient } from "./telegram-client.ts";
import { loadApprovalView, loadIncidentView } from "./views.ts";

// Telegram deliveries: an incident's card and an approval's message, each rendered from the
// database as it is now, sent once and then edited in place (the message ids are stored the
// moment Telegram answers, so a retry edits instead of sending twice). Every call takes a slot
// from the rate limiter first; a chat without a free slot leaves the row waiting for it.

export type TelegramSenderDeps = {
  store: Store;
  telegram: Pick<NonNullable<Config["telegram"]>, "defaultChat" | "routes">;
  minSeverity: Severity;
  client: TelegramClient;
  limiter: RateLimiter;
};

type Post = {
  chat: string;
  existing: SentMessage | undefined;
  text: string;
  keyboard: InlineKeyboard | null;
  incidentId?: string;
  save(m: SentMessage | null): Promise<void>;
};

export function createTelegramSender(deps: TelegramSenderDeps): Sender {
  const { store, client, limiter } = deps;

  /** Edits the message if there is one (a new one if it was deleted), else sends it. */
  async function post(p: Post, now: number): Promise<DeliveryOutcome> {
    const slot = limiter.take(p.chat, now);
    if (!slot.ok) return { status: "wait", until: slot.at, why: `rate limit of chat ${p.chat}`, target: p.chat };
    if (p.existing) {
      const r = await client.edit(p.existing.chatId, p.existing.messageId, p.text, p.keyboard ?? []);
      if (r.ok || r.error.kind === "not_modified") return { status: "sent", target: p.existing.chatId };
      if (r.error.kind !== "gone") return failed(r.error, p, now);
      // Deleted in the chat: say it again as a new message (when the chat has another slot).
      await p.save(null);
      const again = limiter.take(p.chat, now);
      if (!again.ok)
        return { status: "wait", until: again.at, why: "the old message is gone; sending a new one", target: p.chat };
    }
    const r = await client.send(p.chat, p.text, p.keyboard?.length ? p.keyboard : null);
    if (!r.ok) return failed(r.error, p, now);
    await p.save({ chatId: p.chat, messageId: r.value.messageId });
    return { status: "sent", target: p.chat };
  }

  function failed(
    error: { kind: string; description: string; retryAfterMs?: number },
    p: Post,
    now: number,
  ): DeliveryOutcome {
    if (error.kind === "rate_limited") {
      const until = now + (error.retryAfterMs ?? 1000);
      limiter.block(p.chat, until);
      return { status: "wait", until, why: `Telegram asked to wait: ${error.description}`, target: p.chat };
    }
    if (error.kind === "unavailable") return { status: "retry", error: error.description, channelDown: true };
    return { status: "dead", error: error.description, ...(p.incidentId && { incidentId: p.incidentId }) };
  }

  async function card(incidentId: string, now: number): Promise<DeliveryOutcome> {
    const view = await loadIncidentView(store.db, incidentId);
    if (!view) return { status: "skipped", why: "the incident no longer exists" };
    const existing = await getCardMessage(store.db, incidentId);
    if (!existing && !shouldAnnounce(view, deps.minSeverity))
      return { status: "skipped", why: `severity ${view.severity ?? "none"} is below NOTIFY_MIN_SEVERITY` };
    return post(
      {
        chat: existing?.chatId ?? chatFor(view.labels, deps.telegram.routes, deps.telegram.defaultChat),
        existing,
        text: renderIncidentCard(view),
        keyboard: null,
        incidentId,
        save: (m) =>
          m ? saveCardMessage(store.db, store.dialect, incidentId, m, now) : forgetCardMessage(store.db, incidentId),
      },
      now,
    );
  }

  async function approval(approvalId: string, now: number): Promise<DeliveryOutcome> {
    const view = await loadApprovalView(store.db, approvalId);
    if (!view) return { status: "skipped", why: "the approval no longer exists" };
    const existing = view.chatId && view.messageId ? { chatId: view.chatId, messageId: view.messageId } : undefined;
    // Decided before its request went out (a policy approval, or a decision during an outage): no one needs to be asked.
    if (!existing && view.state !== "pending")
      return { status: "skipped", why: `the approval is ${view.state} and was never shown` };
    const m = renderApprovalMessage(view, now);
    return post(
      {
        chat: existing?.chatId ?? chatFor(view.incident.labels, deps.telegram.routes, deps.telegram.defaultChat),
        existing,
        text: m.text,
        keyboard: m.buttons,
        incidentId: view.incident.id,
        save: (sent) => saveApprovalMessage(store.db, approvalId, sent),
      },
      now,
    );
  }

  /** A scheduled run that failed (ref: its schedule.run_failed event): one message to the default chat. */
  async function scheduleFailed(eventId: string, now: number): Promise<DeliveryOutcome> {
    const e = await store.db
      .selectFrom("events")
      .select(["task_id", "reason", "data", "occurred_at"])
      .where("id", "=", eventId)
      .executeTakeFirst();
    if (!e) return { status: "skipped", why: "the event no longer exists" };
    const data = JSON.parse(e.data ?? "{}") as { schedule?: unknown };
    const task = e.task_id
      ? await store.db.selectFrom("tasks").select("kind").where("id", "=", e.task_id).executeTakeFirst()
      : undefined;
    const text = renderScheduleFailure({
      schedule: String(data.schedule ?? "?"),
      taskId: e.task_id,
      kind: task?.kind ?? null,
      reason: e.reason,
      at: Number(e.occurred_at),
    });
    return post(
      { chat: deps.telegram.defaultChat, existing: undefined, text, keyboard: null, save: async () => undefined },
      now,
    );
  }

  return {
    readyAt: (chat, now) => limiter.nextAllowed(chat, now),
    async deliver(row: DeliveryRow, now: number): Promise<DeliveryOutcome> {
      if (row.kind === INCIDENT_CARD) return card(row.ref, now);
      if (row.kind === APPROVAL_MESSAGE) return approval(row.ref, now);
      if (row.kind === SCHEDULE_FAILED) return scheduleFailed(row.ref, now);
      return { status: "dead", error: `no Telegram message of kind ${row.kind}` };
    },
  };
}
