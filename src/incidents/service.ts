import type { Store } from "../store/db.ts";
import type { Executor } from "../store/sql.ts";
import type { IncidentRow, IncidentsTable } from "../store/schema.ts";
import type { Updateable } from "kysely";
import { appendEvent } from "../events/repo.ts";
import { AppError, conflict } from "../shared/errors.ts";
import { isOpen, transition, type IncidentEvent, type IncidentState } from "./lifecycle.ts";

export type Actor = { actor: string; channel: string; reason?: string; data?: Record<string, unknown> };

/**
 * Moves an incident through the state machine inside the caller's transaction and writes the
 * event row that says who, through what and why. Closing clears `open_key` (new alerts then open a
 * new incident or reopen this one); the version check makes a concurrent change fail loudly
 * (and the caller retry) instead of being overwritten.
 */
export async function applyTransition(
  trx: Executor,
  dialect: Store["dialect"],
  incident: IncidentRow,
  event: IncidentEvent,
  by: Actor,
  now: number,
  extra: Updateable<IncidentsTable> = {},
): Promise<IncidentRow> {
  const from = incident.state as IncidentState;
  const r = transition(from, event);
  if (!r.ok) throw conflict("incident.illegal_transition", r.error);
  // Every state starts its own deadline (the sweeper's STUCK_AFTER) and its own retry count.
  const set: Updateable<IncidentsTable> = { state_since: now, requeues: 0, ...extra, state: r.to, updated_at: now, version: incident.version + 1 };
  if (!isOpen(r.to)) set.open_key = null;
  if (r.to === "resolved") set.resolved_at = now;
  if (isOpen(r.to) && !isOpen(from) && set.open_key === undefined) throw new Error("reopening needs an open_key");
  const res = await trx.updateTable("incidents").set(set).where("id", "=", incident.id).where("version", "=", incident.version).executeTakeFirst();
  if (Number(res.numUpdatedRows) === 0) {
    throw new AppError("conflict", "incident.concurrent_update", `incident ${incident.id} changed meanwhile`, { retryable: true });
  }
  await appendEvent(
    trx,
    dialect,
    { type: `incident.${r.to}`, incidentId: incident.id, actor: by.actor, channel: by.channel, reason: by.reason ?? null, data: { from, event, ...by.data }, occurredAt: now },
    now,
  );
  return { ...incident, ...set } as IncidentRow;
}

/**
 * Closes an incident as resolved (AlertManager's resolve or a person's) and cancels its pending
 * approvals, which are moot once the incident is closed. Returns the incident and how many
 * approvals were cancelled.
 */
export async function closeAsResolved(
  trx: Executor,
  dialect: Store["dialect"],
  incident: IncidentRow,
  event: "alert.resolved" | "resolve",
  by: Actor & { reason: string },
  now: number,
): Promise<{ incident: IncidentRow; cancelled: number }> {
  const wasProposed = incident.state === "proposed";
  const closed = await applyTransition(trx, dialect, incident, event, by, now);
  const res = await trx
    .updateTable("approvals")
    .set({ state: "cancelled", decided_at: now, decided_by: by.actor, channel: by.channel, reason: by.reason })
    .where("incident_id", "=", incident.id)
    .where("state", "=", "pending")
    .executeTakeFirst();
  const cancelled = Number(res.numUpdatedRows);
  if (wasProposed || cancelled > 0) {
    await appendEvent(trx, dialect, { type: "approval.cancelled", incidentId: incident.id, actor: by.actor, channel: by.channel, reason: by.reason, data: { approvals: cancelled }, occurredAt: now }, now);
  }
  return { incident: closed, cancelled };
}
