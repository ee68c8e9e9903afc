import type { Insertable, Selectable } from "kysely";
import type { Store } from "../store/db.ts";
import type { Executor } from "../store/sql.ts";
import type { ApprovalsTable } from "../store/schema.ts";
import type { DiffSummary } from "../gitops/port.ts";
import { appendEvent } from "../events/repo.ts";
import { conflict, invalid, notFound } from "../shared/errors.ts";

// The approvals table. Every change of state is a conditional update whose guard is in the WHERE
// clause, so two deciders (two people, a person and the expiry, a resolve and a merge) cannot both
// win: the one that finds no row to update lost and is told who won.

export type ApprovalRow = Selectable<ApprovalsTable>;
export type NewApproval = Insertable<ApprovalsTable>;

/**
 * Who decides: the subject recorded on the approval, the actor on events, and the channel; `data`
 * (e.g. a Telegram user's id and username) is added to the decision's event.
 */
export type Decider = { subject: string; actor: string; channel: string; data?: Record<string, unknown> };

export type PullRef = { number: number; url?: string; branch?: string; sha?: string };
/** What a before_run approval approves: the recorded plan. */
export type PlanAction = { skill?: string; params?: Record<string, unknown>; approval?: string };
/** What a merge approval approves: the pull request, as the runner proposed it. */
export type MergeAction = { merge: PullRef; skill?: string | null; summary?: string | null };

export const POLICY: Decider = { subject: "policy", actor: "pitcrew:policy", channel: "policy" };

/** The change a merge approval is bound to: its diff summary and the start of its unified diff. */
export type ChangeDiff = { summary: DiffSummary; excerpt: string };

/** The approvals columns that store a change's diff (null when it is not known). */
export function diffColumns(d: ChangeDiff | null | undefined): {
  diff_summary: string | null;
  diff_excerpt: string | null;
} {
  return { diff_summary: d ? JSON.stringify(d.summary) : null, diff_excerpt: d ? d.excerpt : null };
}

/**
 * A new approval row: pending and undecided, no chat message, no pull request and no merge, unless
 * `fields` says otherwise. The one constructor every request (run, merge, re-request) goes through.
 */
export function newApprovalRow(
  fields: Pick<NewApproval, "id" | "incident_id" | "risk" | "action" | "requested_at" | "expires_at"> &
    Partial<NewApproval> & { diff?: ChangeDiff | null },
): NewApproval {
  const { diff, ...rest } = fields;
  return {
    task_id: null,
    state: "pending",
    decided_at: null,
    decided_by: null,
    channel: null,
    reason: null,
    chat_id: null,
    message_id: null,
    pr_number: null,
    pr_branch: null,
    head_sha: null,
    merge_queued_at: null,
    merge_started_at: null,
    merge_sha: null,
    merged_at: null,
    ...diffColumns(diff),
    ...rest,
    risk: rest.risk.slice(0, 16),
  };
}

/** The stored diff summary, or null when there is none (or it cannot be read). */
export function diffSummaryOf(a: Pick<ApprovalRow, "diff_summary">): DiffSummary | null {
  if (!a.diff_summary) return null;
  try {
    return JSON.parse(a.diff_summary) as DiffSummary;
  } catch {
    return null;
  }
}

export function parseAction(a: Pick<ApprovalRow, "action">): PlanAction | MergeAction {
  return JSON.parse(a.action) as PlanAction | MergeAction;
}

export function mergeActionOf(a: Pick<ApprovalRow, "action">): MergeAction | undefined {
  const action = parseAction(a);
  return "merge" in action && typeof action.merge?.number === "number" ? action : undefined;
}

/** "alice via mcp", or "policy" for an approval the policy gave. */
export function approverOf(a: Pick<ApprovalRow, "decided_by" | "channel">): string {
  if (a.channel === "policy") return "policy";
  return `${a.decided_by ?? "unknown"}${a.channel ? ` via ${a.channel}` : ""}`;
}

export const getApproval = (db: Executor, id: string): Promise<ApprovalRow | undefined> =>
  db.selectFrom("approvals").selectAll().where("id", "=", id).executeTakeFirst();

/** The approval by id, or the newest approval of the incident (pending first). */
export async function findApproval(
  db: Executor,
  ref: { approvalId?: string; incidentId?: string },
): Promise<ApprovalRow> {
  if (ref.approvalId) {
    const a = await getApproval(db, ref.approvalId);
    if (!a) throw notFound("approval.not_found", `approval ${ref.approvalId} does not exist`);
    if (ref.incidentId && a.incident_id !== ref.incidentId)
      throw invalid(
        "approval.wrong_incident",
        `approval ${a.id} belongs to incident ${a.incident_id}, not ${ref.incidentId}`,
      );
    return a;
  }
  if (!ref.incidentId) throw invalid("approval.ref_required", "give approval_id or incident_id");
  const rows = await db
    .selectFrom("approvals")
    .selectAll()
    .where("incident_id", "=", ref.incidentId)
    .orderBy("requested_at", "desc")
    .orderBy("id", "desc")
    .execute();
  const pick = rows.find((r) => r.state === "pending") ?? rows[0];
  if (!pick) throw notFound("approval.not_found", `incident ${ref.incidentId} has no approval`);
  return pick;
}

export type ApprovalFilter = {
  /** One state; `pending` lists only those that can still be decided (not past their expiry at `now`). */
  state?: string;
  incidentId?: string;
  /** Cursor: the last id of the previous page. */
  afterId?: string;
  limit?: number;
  now?: number;
};

/** Approvals, newest first by id, for lists that page by cursor. */
export async function listApprovals(db: Executor, f: ApprovalFilter = {}): Promise<ApprovalRow[]> {
  let q = db.selectFrom("approvals").selectAll();
  if (f.state) q = q.where("state", "=", f.state);
  if (f.state === "pending" && f.now !== undefined) q = q.where("expires_at", ">", f.now);
  if (f.incidentId) q = q.where("incident_id", "=", f.incidentId);
  if (f.afterId) q = q.where("id", "<", f.afterId);
  return q
    .orderBy("id", "desc")
    .limit(Math.min(f.limit ?? 50, 500))
    .execute();
}

export function assertDecidable(a: ApprovalRow, now: number): void {
  if (a.state === "superseded")
    throw conflict(
      "approval.already_decided",
      `approval ${a.id} is already superseded: ${a.reason ?? "its pull request moved"}`,
    );
  if (a.state !== "pending") {
    const when = a.decided_at ? ` at ${new Date(Number(a.decided_at)).toISOString()}` : "";
    throw conflict(
      "approval.already_decided",
      `approval ${a.id} is already ${a.state}: already decided by ${a.decided_by ?? "unknown"}${a.channel ? ` via ${a.channel}` : ""}${when}`,
    );
  }
  if (Number(a.expires_at) <= now)
    throw conflict("approval.expired", `approval ${a.id} expired at ${new Date(Number(a.expires_at)).toISOString()}`);
}

/**
 * Decides a pending, unexpired approval (the guard is in the WHERE) and writes its event. An
 * approved merge approval is claimed: its merge job is queued by the caller in this transaction.
 * Throws, naming the first decider, when someone else decided first.
 */
export async function decide(
  trx: Executor,
  dialect: Store["dialect"],
  a: ApprovalRow,
  state: "approved" | "rejected",
  by: Decider,
  reason: string | null,
  now: number,
): Promise<ApprovalRow> {
  const merge = state === "approved" && a.pr_number !== null ? { merge_queued_at: now, merge_started_at: null } : {};
  const set = {
    state,
    decided_at: now,
    decided_by: by.subject.slice(0, 255),
    channel: by.channel.slice(0, 32),
    reason,
    ...merge,
  };
  const res = await trx
    .updateTable("approvals")
    .set(set)
    .where("id", "=", a.id)
    .where("state", "=", "pending")
    .where("expires_at", ">", now)
    .executeTakeFirst();
  if (Number(res.numUpdatedRows) === 0) {
    assertDecidable((await getApproval(trx, a.id))!, now);
    throw conflict("approval.already_decided", `approval ${a.id} was decided meanwhile`);
  }
  await appendEvent(
    trx,
    dialect,
    {
      type: `approval.${state}`,
      incidentId: a.incident_id,
      taskId: a.task_id,
      actor: by.actor,
      channel: by.channel,
      reason,
      data: { ...by.data, approvalId: a.id, decidedBy: set.decided_by },
      occurredAt: now,
    },
    now,
  );
  return { ...a, ...set };
}

/**
 * Cancels what a closing incident leaves undecided: pending approvals, and merge approvals that
 * were claimed but whose merge has not started (the resolve wins over a claim nobody acted on;
 * once the first merge call went out, the claim wins). Returns the cancelled rows.
 */
export async function cancelOpenApprovals(
  trx: Executor,
  incidentId: string,
  by: { actor: string; channel: string; reason: string },
  now: number,
): Promise<ApprovalRow[]> {
  const candidates = await trx
    .selectFrom("approvals")
    .selectAll()
    .where("incident_id", "=", incidentId)
    .where((eb) =>
      eb.or([
        eb("state", "=", "pending"),
        eb.and([
          eb("state", "=", "approved"),
          eb("pr_number", "is not", null),
          eb("merged_at", "is", null),
          eb("merge_started_at", "is", null),
        ]),
      ]),
    )
    .execute();
  const cancelled: ApprovalRow[] = [];
  const set = {
    state: "cancelled",
    decided_at: now,
    decided_by: by.actor.slice(0, 255),
    channel: by.channel.slice(0, 32),
    reason: by.reason,
  };
  for (const a of candidates) {
    let q = trx.updateTable("approvals").set(set).where("id", "=", a.id).where("state", "=", a.state);
    if (a.state === "approved") q = q.where("merge_started_at", "is", null).where("merged_at", "is", null);
    if (Number((await q.executeTakeFirst()).numUpdatedRows) > 0) cancelled.push({ ...a, ...set });
  }
  return cancelled;
}

/**
 * Marks a claimed merge as started; false when the claim is gone (released, cancelled) or merged.
 * Call it first in its transaction: on MySQL the row lock is taken before InnoDB fixes the
 * transaction's snapshot, so this read and the caller's later ones see the row as it is now.
 */
export async function markMergeStarted(trx: Executor, id: string, now: number): Promise<"started" | "resumed" | false> {
  const res = await trx
    .updateTable("approvals")
    .set({
      merge_started_at: now,
    })
    .where("id", "=", id)
    .where("state", "=", "approved")
    .where("merged_at", "is", null)
    .where("merge_started_at", "is", null)
    .executeTakeFirst();
  if (Number(res.numUpdatedRows) > 0) return "started";
  // A retry of a merge this claim already started is still ours to finish (its call may have gone out).
  const a = await getApproval(trx, id);
  return a && a.state === "approved" && a.merged_at === null && a.merge_started_at !== null ? "resumed" : false;
}

/** Records the merge once; false when it was already recorded (the inline merge and its job race). */
export async function markMerged(trx: Executor, id: string, sha: string, now: number): Promise<boolean> {
  const res = await trx
    .updateTable("approvals")
    .set({
      merged_at: now,
      merge_sha: sha.slice(0, 64),
    })
    .where("id", "=", id)
    .where("merged_at", "is", null)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) > 0;
}

/**
 * Gives a failed claim back: `pending` (waiting for a decision again) or `cancelled` (the incident
 * moved on). False when the claim was not held any more or the merge was recorded meanwhile.
 */
export async function releaseClaim(
  trx: Executor,
  id: string,
  to: "pending" | "cancelled",
  reason: string,
  now: number,
): Promise<boolean> {
  const set =
    to === "pending"
      ? {
          state: "pending",
          decided_at: null,
          decided_by: null,
          channel: null,
          reason: null,
          merge_queued_at: null,
          merge_started_at: null,
        }
      : { state: "cancelled", decided_at: now, reason };
  const res = await trx
    .updateTable("approvals")
    .set(set)
    .where("id", "=", id)
    .where("state", "=", "approved")
    .where("merged_at", "is", null)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) > 0;
}
