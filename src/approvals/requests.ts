import type { Updateable } from "kysely";
import type { Store } from "../store/db.ts";
import type { Executor } from "../store/sql.ts";
import type { IncidentRow, IncidentsTable, TaskRow } from "../store/schema.ts";
import { appendEvent } from "../events/repo.ts";
import { formatDuration } from "../shared/duration.ts";
import { newId } from "../shared/ids.ts";
import { enqueueControlJob } from "../tasks/control-jobs.ts";
import { applyTransition } from "../incidents/service.ts";
import { newApprovalRow, type ChangeDiff, type Decider, type NewApproval, type PullRef } from "./repo.ts";

// Creating approvals, inside the transaction of their cause: a plan that must be approved before it
// runs (analysis), a pull request that must be approved before it merges, and a pull request the
// policy (or an earlier before_run decision) approves at once — which then takes the same merge
// path as a person's approval: a claimed approval and an `approval.merge` job.

export const MERGE_JOB = "approval.merge";
export const RUN_APPROVAL_TTL_MS = 3_600_000;
export const MERGE_APPROVAL_TTL_MS = 24 * 3_600_000;

/** The payload of an `approval.merge` job: the approval, and who its events are written as. */
export type MergeJob = { approvalId: string; actor: string; channel: string };

export function queueMerge(
  trx: Executor,
  dialect: Store["dialect"],
  approval: { id: string; incident_id: string },
  by: { actor: string; channel: string },
  now: number,
): Promise<string> {
  const payload: MergeJob = { approvalId: approval.id, actor: by.actor, channel: by.channel };
  return enqueueControlJob(trx, dialect, { kind: MERGE_JOB, payload, incidentId: approval.incident_id }, by, now);
}

/** A before_run approval of the recorded plan; the incident waits in `proposed`. */
export async function requestRunApproval(
  trx: Executor,
  dialect: Store["dialect"],
  inc: IncidentRow,
  plan: { skill: string; risk: string } & Record<string, unknown>,
  by: { actor: string; channel: string },
  now: number,
): Promise<string> {
  const id = `apr_${inc.id.slice(4)}_${inc.version}`;
  const expires = now + RUN_APPROVAL_TTL_MS;
  await trx
    .insertInto("approvals")
    .values(
      newApprovalRow({
        id,
        incident_id: inc.id,
        risk: plan.risk,
        action: JSON.stringify(plan),
        requested_at: now,
        expires_at: expires,
      }),
    )
    .execute();
  await appendEvent(
    trx,
    dialect,
    {
      type: "approval.requested",
      incidentId: inc.id,
      ...by,
      reason: `${plan.risk}-risk skill ${plan.skill} needs approval before it runs`,
      data: { approvalId: id, expiresAt: expires, within: formatDuration(RUN_APPROVAL_TTL_MS) },
      occurredAt: now,
    },
    now,
  );
  await applyTransition(
    trx,
    dialect,
    inc,
    "fix.proposed",
    { ...by, reason: "awaiting approval before running the fix" },
    now,
  );
  return id;
}

export type ProposedPull = {
  incident: IncidentRow;
  /** The fix task that opened it; null for an external agent's pull request. */
  task: TaskRow | null;
  pr: PullRef;
  risk: string;
  skill: string | null;
  summary: string | null;
  /** The change at `pr.sha`, as the runner measured it: shown to the approver, bound to the approval. */
  diff?: ChangeDiff | null;
};

function mergeApprovalRow(p: ProposedPull, now: number, decided: Partial<NewApproval> = {}): NewApproval {
  return newApprovalRow({
    id: p.task ? `apr_${p.task.id.slice(4)}` : newId("apr", now),
    incident_id: p.incident.id,
    task_id: p.task?.id ?? null,
    risk: p.risk,
    action: JSON.stringify({ merge: p.pr, skill: p.skill, summary: p.summary }),
    requested_at: now,
    expires_at: now + MERGE_APPROVAL_TTL_MS,
    pr_number: p.pr.number,
    pr_branch: p.pr.branch?.slice(0, 255) ?? null,
    head_sha: p.pr.sha?.slice(0, 64) ?? null,
    diff: p.diff,
    ...decided,
  });
}

/**
 * The pull request waits for a person: a pending merge approval, the incident `proposed` (by
 * `fix.proposed`, `revert.proposed` for the revert of an unverified fix, or `agent.proposed` for an
 * external agent's pull request; `extra` is written with the transition).
 */
export async function requestMergeApproval(
  trx: Executor,
  dialect: Store["dialect"],
  p: ProposedPull,
  by: { actor: string; channel: string },
  now: number,
  event: "fix.proposed" | "revert.proposed" | "agent.proposed" = "fix.proposed",
  extra: Updateable<IncidentsTable> = {},
): Promise<string> {
  const row = mergeApprovalRow(p, now);
  await trx.insertInto("approvals").values(row).execute();
  await appendEvent(
    trx,
    dialect,
    {
      type: "approval.requested",
      incidentId: p.incident.id,
      taskId: p.task?.id ?? null,
      ...by,
      reason: `merge of pull request #${p.pr.number} needs approval`,
      data: { approvalId: row.id, pr: p.pr, risk: p.risk, expiresAt: row.expires_at, diff: p.diff?.summary ?? null },
      occurredAt: now,
    },
    now,
  );
  await applyTransition(
    trx,
    dialect,
    p.incident,
    event,
    {
      ...by,
      reason: `pull request #${p.pr.number} opened: ${p.pr.url ?? p.pr.branch ?? ""}`.trim(),
      data: { taskId: p.task?.id ?? null, pr: p.pr },
    },
    now,
    extra,
  );
  return row.id;
}

/**
 * The pull request needs no person's decision (policy), or had it before it ran (`approver`): an
 * approval decided at once, the incident `fixing` → `proposed` → `approved`, and the same merge job
 * a person's approval queues. Returns the approval id.
 */
export async function approveMergeAtOnce(
  trx: Executor,
  dialect: Store["dialect"],
  p: ProposedPull,
  approver: Decider,
  reason: string,
  by: { actor: string; channel: string },
  now: number,
): Promise<string> {
  const row = mergeApprovalRow(p, now, {
    state: "approved",
    decided_at: now,
    decided_by: approver.subject.slice(0, 255),
    channel: approver.channel.slice(0, 32),
    reason,
    merge_queued_at: now,
  });
  await trx.insertInto("approvals").values(row).execute();
  await appendEvent(
    trx,
    dialect,
    {
      type: "approval.approved",
      incidentId: p.incident.id,
      taskId: p.task?.id ?? null,
      actor: approver.actor,
      channel: approver.channel,
      reason,
      data: { approvalId: row.id, pr: p.pr, risk: p.risk, diff: p.diff?.summary ?? null },
      occurredAt: now,
    },
    now,
  );
  const proposed = await applyTransition(
    trx,
    dialect,
    p.incident,
    "fix.proposed",
    {
      ...by,
      reason: `pull request #${p.pr.number} opened: ${p.pr.url ?? p.pr.branch ?? ""}`.trim(),
      data: { taskId: p.task?.id ?? null, pr: p.pr },
    },
    now,
  );
  await applyTransition(
    trx,
    dialect,
    proposed,
    "approval.granted",
    { actor: approver.actor, channel: approver.channel, reason, data: { approvalId: row.id } },
    now,
  );
  await queueMerge(trx, dialect, row, approver, now);
  return row.id;
}
