import type { Store } from "../store/db.ts";
import { insertIfAbsent, type Executor } from "../store/sql.ts";
import { noteCommitted } from "../store/commit-hooks.ts";
import type { EventRow, IncidentRow } from "../store/schema.ts";
import { newId } from "../shared/ids.ts";
import { redactSecrets } from "../shared/redact.ts";
import { requestNotices } from "../notify/requests.ts";
import { requestWebhooks } from "../webhooks/requests.ts";

// The append-only timeline. Every state change of a task or incident writes one row here, with
// who did it (actor), through what (channel) and why (reason). Rows are never updated.

export type NewEvent = {
  id?: string;
  type: string;
  taskId?: string | null;
  incidentId?: string | null;
  actor: string;
  channel: string;
  reason?: string | null;
  data?: unknown;
  occurredAt: number;
  /** The incident as this event leaves it, for commit listeners (the metrics); not stored. */
  incident?: IncidentRow;
};

/**
 * Inserts the event unless its id is already stored. Returns true when it was new. A new event that
 * changes what people were told (an incident's card, an approval's message) also asks, in the same
 * transaction, for that notice to be delivered (notify/requests.ts); one that external agents
 * subscribe to asks for its webhooks (webhooks/requests.ts).
 */
export async function appendEvent(
  db: Executor,
  dialect: Store["dialect"],
  e: NewEvent,
  recordedAt: number,
): Promise<boolean> {
  const id = e.id ?? newId("evt", e.occurredAt);
  const data = redactSecrets(e.data ?? {});
  const row = {
    id,
    type: e.type,
    task_id: e.taskId ?? null,
    incident_id: e.incidentId ?? null,
    actor: e.actor.slice(0, 255),
    channel: e.channel.slice(0, 32),
    reason: e.reason ?? null,
    data: JSON.stringify(data),
    occurred_at: e.occurredAt,
    recorded_at: recordedAt,
  };
  const inserted = await insertIfAbsent(db, dialect, "events", row);
  if (inserted) {
    await noteCommitted(db, {
      id,
      type: row.type,
      incidentId: row.incident_id,
      taskId: row.task_id,
      actor: row.actor,
      channel: row.channel,
      reason: row.reason,
      data: (data ?? {}) as Record<string, unknown>,
      occurredAt: e.occurredAt,
      ...(e.incident && { incident: e.incident }),
    });
    await requestNotices(db, dialect, { ...e, id }, recordedAt);
    await requestWebhooks(db, dialect, { id, type: e.type, incidentId: e.incidentId }, recordedAt);
  }
  return inserted;
}

export type EventFilter = { taskId?: string; incidentId?: string; type?: string; afterSeq?: number; limit?: number };

/** Oldest first, paginated by `seq` (pass the last seq as `afterSeq`). */
export async function listEvents(db: Executor, f: EventFilter): Promise<EventRow[]> {
  let q = db.selectFrom("events").selectAll();
  if (f.taskId) q = q.where("task_id", "=", f.taskId);
  if (f.incidentId) q = q.where("incident_id", "=", f.incidentId);
  if (f.type) q = q.where("type", "=", f.type);
  if (f.afterSeq !== undefined) q = q.where("seq", ">", f.afterSeq);
  return q
    .orderBy("seq")
    .limit(Math.min(f.limit ?? 100, 1000))
    .execute();
}
