import type { Store } from "../store/db.ts";
import type { Executor } from "../store/sql.ts";
import type { IncidentRow, IncidentsTable } from "../store/schema.ts";
import type { Updateable } from "kysely";
import { appendEvent } from "../events/repo.ts";
import { AppError, conflict } from "../shared/errors.ts";
import { isOpen, transition, type IncidentEvent, type IncidentState } from "./lifecycle.ts";
import { approverOf, cancelOpenApprovals, mergeActionOf } from "../approvals/repo.ts";
import { queuePullRequestClose } from "../approvals/pull-requests.ts";

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
  const set: Updateable<IncidentsTable> = {
    state_since: now,
    requeues: 0,
    ...extra,
    state: r.to,
    updated_at: now,
    version: incident.version + 1,
  };
  if (!isOpen(r.to)) set.open_key = null;
  if (r.to === "resolved") set.resolved_at = now;
  // A reopened incident has no time to resolve until it resolves again.
  if (isOpen(r.to) && !isOpen(from) && extra.time_to_resolve_ms === undefined) set.time_to_resolve_ms = null;
  if (isOpen(r.to) && !isOpen(from) && set.open_key === undefined) throw new Error("reopening needs an open_key");
  const res = await trx
    .updateTable("incidents")
    .set(set)
    .where("id", "=", incident.id)
    .where("version", "=", incident.version)
    .executeTakeFirst();
  if (Number(res.numUpdatedRows) === 0) {
    throw new AppError("conflict", "incident.concurrent_update", `incident ${incident.id} changed meanwhile`, {
      retryable: true,
    });
  }
  await appendEvent(
    trx,
    dialect,
    {
      type: `incident.${r.to}`,
      incidentId: incident.id,
      actor: by.actor,
      channel: by.channel,
      reason: by.reason ?? null,
      data: { from, event, ...by.data },
      occurredAt: now,
      incident: { ...incident, ...set } as IncidentRow,
    },
    now,
  );
  return { ...incident, ...set } as IncidentRow;
}

/**
 * Closes an incident as resolved (AlertManager's resolve or a person's). What it leaves undecided
 * is cancelled: pending approvals, and approved merges whose merge has not started (the resolve
 * wins; once the merge call went out, the merge wins and is named in the reason) — their reason
 * says no action was taken and why, and `approval.cancelled` names them with its `cause`
 * (`alert_resolved` or `resolved_by_hand`). Its pull requests not merged are closed and their
 * branches deleted (`pr.close` jobs, queued here). An alert that resolves after a merged fix says
 * how long after which pull request, and who approved it, not "resolved by itself". Every resolve
 * records `time_to_resolve_ms`, from the occurrence's opening (the last `incident.detected`).
 * Returns the incident, how many approvals were cancelled and the close jobs queued.
 */
export async function closeAsResolved(
  trx: Executor,
  dialect: Store["dialect"],
  incident: IncidentRow,
  event: "alert.resolved" | "resolve",
  by: Actor & { reason: string },
  now: number,
): Promise<{ incident: IncidentRow; cancelled: number; closing: string[] }> {
  const wasProposed = incident.state === "proposed";
  const cause = event === "alert.resolved" ? "alert_resolved" : "resolved_by_hand";
  const noAction =
    event === "alert.resolved"
      ? "no action taken: the alert resolved"
      : `no action taken: resolved by ${by.actor}: ${by.reason}`;
  const cancelledRows = await cancelOpenApprovals(trx, incident.id, { ...by, reason: noAction }, now);
  const cancelled = cancelledRows.length;
  const openedAt = await occurrenceStart(trx, incident);
  const ttr = Math.max(0, now - openedAt);
  const fix = event === "alert.resolved" ? await fixBehind(trx, incident.id, openedAt, now) : null;
  const actor = fix
    ? { ...by, reason: fix.reason, data: { ...by.data, fix: fix.data, timeToResolveMs: ttr } }
    : { ...by, data: { ...by.data, timeToResolveMs: ttr } };
  const closed = await applyTransition(trx, dialect, incident, event, actor, now, {
    time_to_resolve_ms: ttr,
    ttr_observed_at: null,
  });
  if (wasProposed || cancelled > 0) {
    await appendEvent(
      trx,
      dialect,
      {
        type: "approval.cancelled",
        incidentId: incident.id,
        actor: by.actor,
        channel: by.channel,
        reason: cancelled > 0 ? noAction : by.reason,
        data: { approvals: cancelled, approvalIds: cancelledRows.map((a) => a.id), cause },
        occurredAt: now,
      },
      now,
    );
  }
  const why =
    event === "resolve" ? `incident resolved by ${by.actor}: ${by.reason}` : "the alert resolved without this change";
  const closing = await queuePullRequestClose(trx, dialect, incident.id, why, by, now);
  return { incident: closed, cancelled, closing };
}

/** When the incident's current occurrence opened: its last `incident.detected` (a reopen writes one too). */
async function occurrenceStart(trx: Executor, incident: IncidentRow): Promise<number> {
  const opened = await trx
    .selectFrom("events")
    .select("occurred_at")
    .where("incident_id", "=", incident.id)
    .where("type", "=", "incident.detected")
    .orderBy("seq", "desc")
    .limit(1)
    .executeTakeFirst();
  return opened ? Number(opened.occurred_at) : Number(incident.opened_at);
}

/** "3m12s", "1h4m", "45s", "2d3h": the two largest units, for people. */
export function humanDuration(ms: number): string {
  const units: Array<[string, number]> = [
    ["d", 86_400_000],
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1000],
  ];
  let left = Math.max(0, Math.round(ms / 1000) * 1000);
  const parts: string[] = [];
  for (const [u, size] of units) {
    if (left >= size || (u === "s" && parts.length === 0)) {
      parts.push(`${Math.floor(left / size)}${u}`);
      left %= size;
    }
    if (parts.length === 2) break;
  }
  return parts.join("");
}

/** The merged (or being merged) fix of the incident's current occurrence, described for its resolve. */
async function fixBehind(
  trx: Executor,
  incidentId: string,
  openedAt: number,
  now: number,
): Promise<{ reason: string; data: Record<string, unknown> } | null> {
  const a = await trx
    .selectFrom("approvals")
    .selectAll()
    .where("incident_id", "=", incidentId)
    .where("state", "=", "approved")
    .where("pr_number", "is not", null)
    .where((eb) => eb.or([eb("merged_at", "is not", null), eb("merge_started_at", "is not", null)]))
    .orderBy("decided_at", "desc")
    .limit(1)
    .executeTakeFirst();
  if (!a) return null;
  // A reopened incident (a flap) starts over: an earlier occurrence's fix is not this one's.
  if (Number(a.decided_at) < openedAt) return null;
  let skill = mergeActionOf(a)?.skill ?? null;
  if (!skill && a.task_id) {
    const task = await trx.selectFrom("tasks").select("payload").where("id", "=", a.task_id).executeTakeFirst();
    skill = task ? ((JSON.parse(task.payload) as { skill?: string }).skill ?? null) : null;
  }
  const what = `${skill ?? "the fix"} in pull request #${a.pr_number}`;
  const who = approverOf(a);
  const data = {
    approvalId: a.id,
    skill,
    pr: a.pr_number,
    sha: a.merge_sha,
    approvedBy: who,
    ...(a.merged_at !== null ? { afterMergeMs: Math.max(0, now - Number(a.merged_at)) } : {}),
  };
  if (a.merged_at !== null) {
    const after = humanDuration(now - Number(a.merged_at));
    return {
      reason: `alert resolved ${after} after pull request #${a.pr_number} (${skill ?? "the fix"}, merged ${(a.merge_sha ?? "").slice(0, 7)}), approved by ${who}`,
      data,
    };
  }
  return { reason: `alert resolved while the fix ${what}, approved by ${who}, was being merged`, data };
}
