import { ulidFactory } from "../shared/ids.ts";
import { sql } from "kysely";
import type { Dialect } from "../store/db.ts";
import type { Executor } from "../store/sql.ts";

// Asking for a delivery, in the transaction of the change it reports. appendEvent (events/repo.ts)
// calls requestNotices for every new event, so no code path that moves an incident or an approval
// can forget its notice. The request is one statement: an insert of a pending row, or — when the
// same message is already pending — a bump of its `requests` counter, so a burst of changes is one
// send that renders the state as it is then. In-process listeners (the deliverer) are told, so
// they wake right after the commit instead of at their next poll.

export const TELEGRAM = "telegram";
export const INCIDENT_CARD = "incident.card";
export const APPROVAL_MESSAGE = "approval.message";
/** A scheduled run that failed: one message about it (ref: the event), sent to the default chat. */
export const SCHEDULE_FAILED = "schedule.run_failed";

/** Events that change what an incident's card says. */
const CARD_EVENTS = new Set([
  "incident.detected",
  "incident.proposed",
  "incident.approved",
  "incident.verifying",
  "incident.resolved",
  "incident.escalated",
  "incident.failed",
  "incident.rejected",
  "incident.suppressed",
  "pr.merged",
  "approval.merge_failed",
  "agent.claimed",
  "agent.result",
  "agent.lease_expired",
]);

/** Events that change what an approval's message says (they name the approval in data.approvalId). */
const APPROVAL_EVENTS = new Set([
  "approval.requested",
  "approval.approved",
  "approval.rejected",
  "approval.expired",
  "approval.cancelled",
  "approval.superseded",
  "approval.merge_failed",
  "pr.merged",
]);

const APPROVAL_PRIORITY = 10;
const CARD_PRIORITY = 0;

const nextId = ulidFactory();
export const newDeliveryId = (now: number): string => `dlv_${nextId(now)}`;
const listeners = new Set<() => void>();

/** Called (synchronously, maybe before the requesting transaction commits) after each request. */
export function onDeliveryRequested(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** Wakes the deliverer (a change that made rows due without requesting them, e.g. a redelivery). */
export function kickDeliverer(): void {
  for (const l of listeners) l();
}

export type DeliveryRequest = {
  channel: string;
  kind: string;
  ref: string;
  target?: string;
  priority?: number;
  payload?: string | null;
  /** Webhook deliveries: the incident, and the hash of the bearer token the body carries. */
  incidentId?: string | null;
  tokenHash?: string | null;
  /** The row's id (default: a new one). */
  id?: string;
};

export const pendingKey = (d: Pick<DeliveryRequest, "channel" | "kind" | "ref" | "target">) =>
  `${d.channel}|${d.kind}|${d.target ?? ""}|${d.ref}`.slice(0, 255);

/** Asks for a delivery; one pending row per (channel, kind, target, ref), however often asked. */
export async function requestDelivery(db: Executor, dialect: Dialect, d: DeliveryRequest, now: number): Promise<void> {
  const row = {
    id: d.id ?? newDeliveryId(now),
    channel: d.channel,
    kind: d.kind,
    ref: d.ref,
    target: d.target ?? "",
    payload: d.payload ?? null,
    pending_key: pendingKey(d),
    state: "pending",
    priority: d.priority ?? 0,
    requests: 1,
    attempts: 0,
    next_attempt_at: now,
    last_error: null,
    created_at: now,
    updated_at: now,
    sent_at: null,
    incident_id: d.incidentId ?? null,
    token_hash: d.tokenHash ?? null,
    last_status: null,
  };
  const bump = { requests: sql<number>`requests + 1`, updated_at: now };
  const q = db.insertInto("deliveries").values(row);
  if (dialect === "mysql") await q.onDuplicateKeyUpdate(bump).execute();
  else await q.onConflict((oc) => oc.column("pending_key").doUpdateSet(bump)).execute();
  kickDeliverer();
}

export type NoticeEvent = { id?: string; type: string; incidentId?: string | null; data?: unknown; occurredAt: number };

/**
 * The deliveries an event asks for: the incident's card, the messages of the approvals it changes,
 * and a message of its own for a scheduled run that failed.
 */
export async function requestNotices(db: Executor, dialect: Dialect, e: NoticeEvent, now: number): Promise<void> {
  if (e.type === SCHEDULE_FAILED && e.id) {
    await requestDelivery(
      db,
      dialect,
      { channel: TELEGRAM, kind: SCHEDULE_FAILED, ref: e.id, priority: CARD_PRIORITY },
      now,
    );
    return;
  }
  if (!e.incidentId) return;
  const card = CARD_EVENTS.has(e.type);
  if (!card && !APPROVAL_EVENTS.has(e.type)) return;
  if (card)
    await requestDelivery(
      db,
      dialect,
      { channel: TELEGRAM, kind: INCIDENT_CARD, ref: e.incidentId, priority: CARD_PRIORITY },
      now,
    );
  if (!APPROVAL_EVENTS.has(e.type)) return;
  for (const id of await approvalsOf(db, e)) {
    await requestDelivery(
      db,
      dialect,
      { channel: TELEGRAM, kind: APPROVAL_MESSAGE, ref: id, priority: APPROVAL_PRIORITY },
      now,
    );
  }
}

async function approvalsOf(db: Executor, e: NoticeEvent): Promise<string[]> {
  const data = (typeof e.data === "object" && e.data ? e.data : {}) as { approvalId?: unknown; approvalIds?: unknown };
  if (typeof data.approvalId === "string") return [data.approvalId];
  if (Array.isArray(data.approvalIds)) return data.approvalIds.filter((x): x is string => typeof x === "string");
  if (e.type !== "approval.cancelled") return [];
  // A closing incident cancels its open approvals in the same statement time as this event.
  const rows = await db
    .selectFrom("approvals")
    .select("id")
    .where("incident_id", "=", e.incidentId!)
    .where("state", "=", "cancelled")
    .where("decided_at", "=", e.occurredAt)
    .execute();
  return rows.map((r) => r.id);
}
