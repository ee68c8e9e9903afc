import type { Selectable } from "kysely";
import type { Dialect } from "../store/db.ts";
import { upsert, type Executor } from "../store/sql.ts";
import type { DeliveriesTable } from "../store/schema.ts";

// The deliveries table (requests.ts asks; the deliverer sends) and where sent messages live, so
// that later changes edit them: an incident's card in notice_messages, an approval's message on
// the approval row.

export type DeliveryRow = Selectable<DeliveriesTable>;

/** Pending rows that are due, approval messages first, oldest first. */
export function dueDeliveries(
  db: Executor,
  now: number,
  limit: number,
  skipChannels: string[] = [],
): Promise<DeliveryRow[]> {
  let q = db.selectFrom("deliveries").selectAll().where("state", "=", "pending").where("next_attempt_at", "<=", now);
  if (skipChannels.length) q = q.where("channel", "not in", skipChannels);
  return q.orderBy("priority", "desc").orderBy("next_attempt_at").orderBy("id").limit(limit).execute();
}

/** When the next pending row of the given channels is due (null: none pending). */
export async function nextDueAt(db: Executor, skipChannels: string[] = []): Promise<number | null> {
  let q = db
    .selectFrom("deliveries")
    .select((eb) => eb.fn.min("next_attempt_at").as("at"))
    .where("state", "=", "pending");
  if (skipChannels.length) q = q.where("channel", "not in", skipChannels);
  const r = await q.executeTakeFirst();
  return r?.at === null || r?.at === undefined ? null : Number(r.at);
}

/**
 * Closes a pending row as sent, skipped or dead. A sent or skipped row closes only if no request
 * arrived since it was read (`requests` unchanged): otherwise what was sent may be stale, and the
 * row stays pending to be rendered again. Returns whether it closed.
 */
export async function finishDelivery(
  db: Executor,
  row: DeliveryRow,
  state: "sent" | "skipped" | "dead",
  now: number,
  opts: { target?: string; error?: string; attempts?: number; lastStatus?: number } = {},
): Promise<boolean> {
  let q = db
    .updateTable("deliveries")
    .set({
      state,
      pending_key: null,
      updated_at: now,
      ...(state === "sent" ? { sent_at: now } : {}),
      ...(opts.target !== undefined ? { target: opts.target.slice(0, 255) } : {}),
      ...(opts.error !== undefined ? { last_error: opts.error.slice(0, 1000) } : {}),
      ...(opts.attempts !== undefined ? { attempts: opts.attempts } : {}),
      ...(opts.lastStatus !== undefined ? { last_status: opts.lastStatus } : {}),
    })
    .where("id", "=", row.id)
    .where("state", "=", "pending");
  if (state !== "dead") q = q.where("requests", "=", Number(row.requests));
  return Number((await q.executeTakeFirst()).numUpdatedRows) > 0;
}

/**
 * Closes rows as `skipped` without an attempt, in one update per distinct `requests` count: each
 * only if still pending and unchanged since it was read (as finishDelivery). Returns the ids closed.
 */
export async function skipDeliveries(
  db: Executor,
  rows: Array<Pick<DeliveryRow, "id" | "requests">>,
  why: string,
  now: number,
): Promise<number> {
  const byRequests = new Map<number, string[]>();
  for (const r of rows) byRequests.set(Number(r.requests), [...(byRequests.get(Number(r.requests)) ?? []), r.id]);
  let closed = 0;
  for (const [requests, ids] of byRequests) {
    const res = await db
      .updateTable("deliveries")
      .set({ state: "skipped", pending_key: null, updated_at: now, last_error: why.slice(0, 1000) })
      .where("id", "in", ids)
      .where("state", "=", "pending")
      .where("requests", "=", requests)
      .executeTakeFirst();
    closed += Number(res.numUpdatedRows);
  }
  return closed;
}

/**
 * Leaves rows pending until `at` (a rate limit, a backoff, or at once when they changed meanwhile);
 * `target` records where they go once the sender has routed them.
 */
export async function postponeDeliveries(
  db: Executor,
  ids: string[],
  at: number,
  now: number,
  opts: { attempts?: number; error?: string; target?: string; lastStatus?: number } = {},
): Promise<void> {
  if (ids.length === 0) return;
  await db
    .updateTable("deliveries")
    .set({
      next_attempt_at: at,
      updated_at: now,
      ...(opts.attempts !== undefined ? { attempts: opts.attempts } : {}),
      ...(opts.error !== undefined ? { last_error: opts.error.slice(0, 1000) } : {}),
      ...(opts.target !== undefined ? { target: opts.target.slice(0, 255) } : {}),
      ...(opts.lastStatus !== undefined ? { last_status: opts.lastStatus } : {}),
    })
    .where("id", "in", ids)
    .where("state", "=", "pending")
    .execute();
}

/**
 * Claims the next attempt of a row on a fixed schedule: counts it and moves the row's next attempt
 * to when a retry would be due (at least `claimMs` away, longer than a send can take), in one
 * conditional update, so a second replica that read the same row claims nothing. Returns the row
 * as claimed, or undefined when someone else did (or it is no longer due).
 */
export async function claimAttempt(
  db: Executor,
  row: DeliveryRow,
  now: number,
  schedule: { delaysMs: number[]; claimMs: number },
): Promise<DeliveryRow | undefined> {
  const attempts = Number(row.attempts) + 1;
  const next = now + Math.max(schedule.delaysMs[attempts - 1] ?? 0, schedule.claimMs);
  const res = await db
    .updateTable("deliveries")
    .set({ attempts, next_attempt_at: next, updated_at: now })
    .where("id", "=", row.id)
    .where("state", "=", "pending")
    .where("attempts", "=", Number(row.attempts))
    .where("next_attempt_at", "<=", now)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) > 0 ? { ...row, attempts, next_attempt_at: next, updated_at: now } : undefined;
}

/** Drops pending rows of channels nobody sends (Telegram not configured): they must not pile up, nor go out later. */
export async function dropUnsendable(db: Executor, sendable: string[]): Promise<number> {
  let q = db.deleteFrom("deliveries").where("state", "=", "pending");
  if (sendable.length) q = q.where("channel", "not in", sendable);
  return Number((await q.executeTakeFirst()).numDeletedRows);
}

/** Forgets finished rows: sent and skipped after `keepDoneMs`, dead after `keepDeadMs`. */
export async function pruneDeliveries(
  db: Executor,
  now: number,
  keep: { doneMs: number; deadMs: number },
): Promise<number> {
  const done = await db
    .deleteFrom("deliveries")
    .where("state", "in", ["sent", "skipped"])
    .where("updated_at", "<", now - keep.doneMs)
    .executeTakeFirst();
  const dead = await db
    .deleteFrom("deliveries")
    .where("state", "=", "dead")
    .where("updated_at", "<", now - keep.deadMs)
    .executeTakeFirst();
  return Number(done.numDeletedRows) + Number(dead.numDeletedRows);
}

export type SentMessage = { chatId: string; messageId: string };

export async function getCardMessage(db: Executor, incidentId: string): Promise<SentMessage | undefined> {
  const r = await db
    .selectFrom("notice_messages")
    .select(["chat_id", "message_id"])
    .where("incident_id", "=", incidentId)
    .executeTakeFirst();
  return r ? { chatId: r.chat_id, messageId: r.message_id } : undefined;
}

export async function saveCardMessage(
  db: Executor,
  dialect: Dialect,
  incidentId: string,
  m: SentMessage,
  now: number,
): Promise<void> {
  const row = { incident_id: incidentId, chat_id: m.chatId, message_id: m.messageId, created_at: now, updated_at: now };
  await upsert(db, dialect, "notice_messages", row, "incident_id", {
    chat_id: m.chatId,
    message_id: m.messageId,
    updated_at: now,
  });
}

export async function forgetCardMessage(db: Executor, incidentId: string): Promise<void> {
  await db.deleteFrom("notice_messages").where("incident_id", "=", incidentId).execute();
}

export async function saveApprovalMessage(db: Executor, approvalId: string, m: SentMessage | null): Promise<void> {
  await db
    .updateTable("approvals")
    .set({ chat_id: m?.chatId ?? null, message_id: m?.messageId ?? null })
    .where("id", "=", approvalId)
    .execute();
}
