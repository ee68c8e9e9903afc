import type { Store } from "../store/db.ts";
import type { Executor } from "../store/sql.ts";
import type { ApprovalsTable, IncidentRow } from "../store/schema.ts";
import type { Selectable } from "kysely";
import type { Logger } from "../shared/logger.ts";
import type { GitHost } from "../gitops/port.ts";
import type { Skill } from "../skills/schema.ts";
import { appendEvent } from "../events/repo.ts";
import { AppError, conflict, errorMessage, invalid, isAppError, notFound, unavailable } from "../shared/errors.ts";
import { inlineError, isInline, runInline, type InlineDeps, type InlineOutcome } from "../skills/inline.ts";
import { getIncident } from "./repo.ts";
import { applyTransition } from "./service.ts";
import { queueFixTask } from "./analysis.ts";

// Deciding a pending approval, for any channel (MCP today; the same checks DESIGN §6 asks of
// Telegram): it must exist, be pending and unexpired; a second decision answers who made the
// first. Approving a before_run approval runs the approved plan; approving a before_merge one
// merges the pull request, then watches the alert.

export type ApprovalRow = Selectable<ApprovalsTable>;
export type Decider = { subject: string; actor: string; channel: string };

export type DecisionDeps = {
  store: Store;
  log: Logger;
  now: () => number;
  skills: () => Skill[];
  gitHost?: GitHost;
  /** The runner pool fix tasks go to (RUNNER_POOL). */
  fixPool: string;
  inline?: InlineDeps;
  onEnqueued?: () => void;
};

export type DecisionResult = {
  approval: ApprovalRow;
  incident: IncidentRow;
  /** The fix task queued by a before_run approval. */
  taskId: string | null;
  /** The merge commit of a before_merge approval. */
  merged: { number: number; sha: string } | null;
  /** The inline skill's outcome, for an approved inline skill. */
  inline: InlineOutcome | null;
};

type PlanAction = { skill?: string; params?: Record<string, unknown>; approval?: string };
type MergeAction = { merge: { number: number; url?: string; branch?: string; sha?: string } };

const parseAction = (a: ApprovalRow): PlanAction | MergeAction => JSON.parse(a.action) as PlanAction | MergeAction;
const isMerge = (a: PlanAction | MergeAction): a is MergeAction => "merge" in a && typeof (a as MergeAction).merge?.number === "number";

/** The approval by id, or the newest approval of the incident (pending first). */
export async function findApproval(db: Executor, ref: { approvalId?: string; incidentId?: string }): Promise<ApprovalRow> {
  if (ref.approvalId) {
    const a = await db.selectFrom("approvals").selectAll().where("id", "=", ref.approvalId).executeTakeFirst();
    if (!a) throw notFound("approval.not_found", `approval ${ref.approvalId} does not exist`);
    if (ref.incidentId && a.incident_id !== ref.incidentId) throw invalid("approval.wrong_incident", `approval ${a.id} belongs to incident ${a.incident_id}, not ${ref.incidentId}`);
    return a;
  }
  if (!ref.incidentId) throw invalid("approval.ref_required", "give approval_id or incident_id");
  const rows = await db.selectFrom("approvals").selectAll().where("incident_id", "=", ref.incidentId).orderBy("requested_at", "desc").orderBy("id", "desc").execute();
  const pick = rows.find((r) => r.state === "pending") ?? rows[0];
  if (!pick) throw notFound("approval.not_found", `incident ${ref.incidentId} has no approval`);
  return pick;
}

function assertDecidable(a: ApprovalRow, now: number): void {
  assertPending(a);
  if (Number(a.expires_at) <= now) throw conflict("approval.expired", `approval ${a.id} expired at ${new Date(Number(a.expires_at)).toISOString()}`);
}

function assertPending(a: ApprovalRow): void {
  if (a.state !== "pending") {
    const when = a.decided_at ? ` at ${new Date(Number(a.decided_at)).toISOString()}` : "";
    throw conflict("approval.already_decided", `approval ${a.id} is already ${a.state}: already decided by ${a.decided_by ?? "unknown"}${a.channel ? ` via ${a.channel}` : ""}${when}`);
  }
}

/** Marks the approval decided unless someone else decided it first (the guard is in the WHERE). */
async function markDecided(trx: Executor, dialect: Store["dialect"], a: ApprovalRow, state: "approved" | "rejected", by: Decider, reason: string | null, now: number): Promise<ApprovalRow> {
  const res = await trx
    .updateTable("approvals")
    .set({ state, decided_at: now, decided_by: by.subject.slice(0, 255), channel: by.channel, reason })
    .where("id", "=", a.id)
    .where("state", "=", "pending")
    .executeTakeFirst();
  if (Number(res.numUpdatedRows) === 0) {
    const current = (await trx.selectFrom("approvals").selectAll().where("id", "=", a.id).executeTakeFirstOrThrow()) as ApprovalRow;
    assertDecidable(current, now);
  }
  await appendEvent(trx, dialect, { type: `approval.${state}`, incidentId: a.incident_id, taskId: a.task_id, actor: by.actor, channel: by.channel, reason, data: { approvalId: a.id }, occurredAt: now }, now);
  return { ...a, state, decided_at: now, decided_by: by.subject, channel: by.channel, reason };
}

export function createApprovalDecisions(deps: DecisionDeps) {
  const { store } = deps;

  async function reject(ref: { approvalId?: string; incidentId?: string }, by: Decider, reason: string | null): Promise<DecisionResult> {
    const now = deps.now();
    const result = await store.db.transaction().execute(async (trx) => {
      const a = await findApproval(trx, ref);
      assertDecidable(a, now);
      const approval = await markDecided(trx, store.dialect, a, "rejected", by, reason, now);
      const inc = (await getIncident(trx, a.incident_id))!;
      const incident = await applyTransition(trx, store.dialect, inc, "approval.rejected", { actor: by.actor, channel: by.channel, reason: reason ?? `rejected by ${by.subject}`, data: { approvalId: a.id } }, now);
      return { approval, incident };
    });
    const action = parseAction(result.approval);
    if (isMerge(action) && deps.gitHost) {
      // A rejected change should not stay open for someone to merge by hand.
      await deps.gitHost
        .closePullRequest(action.merge.number, `Rejected by ${by.subject}${reason ? `: ${reason}` : ""}`)
        .catch((err) => deps.log.warn({ err: { message: errorMessage(err) }, pr: action.merge.number }, "could not close the rejected pull request"));
    }
    return { ...result, taskId: null, merged: null, inline: null };
  }

  async function approve(ref: { approvalId?: string; incidentId?: string }, by: Decider, reason: string | null): Promise<DecisionResult> {
    const first = await findApproval(store.db, ref);
    assertDecidable(first, deps.now());
    const action = parseAction(first);
    if (isMerge(action)) return approveMerge(first, action, by, reason);
    return approveRun(first, action, by, reason);
  }

  async function approveMerge(a: ApprovalRow, action: MergeAction, by: Decider, reason: string | null): Promise<DecisionResult> {
    if (!deps.gitHost) throw unavailable("gitops.not_configured", "no pull-request host is configured; merge the pull request by hand");
    const inc0 = await getIncident(store.db, a.incident_id);
    if (!inc0 || inc0.state !== "proposed") throw conflict("incident.not_proposed", `incident ${a.incident_id} is ${inc0?.state ?? "gone"}, not waiting for approval`);
    // Merge first: a failed merge (conflict, head moved) leaves the approval pending to retry.
    // Pinned to the commit the runner proposed: anything pushed since was not what was approved.
    const merged = await deps.gitHost.mergePullRequest(action.merge.number, { method: "merge", sha: action.merge.sha });
    if (!merged.merged) throw new AppError("conflict", "gitops.not_merged", `pull request #${action.merge.number} was not merged`);
    const now = deps.now();
    const result = await store.db.transaction().execute(async (trx) => {
      const cur = (await trx.selectFrom("approvals").selectAll().where("id", "=", a.id).executeTakeFirstOrThrow()) as ApprovalRow;
      // The merge has happened: only a decision made meanwhile stops us, not the deadline
      // passing during the merge call.
      assertPending(cur);
      const approval = await markDecided(trx, store.dialect, cur, "approved", by, reason, now);
      await appendEvent(trx, store.dialect, { type: "pr.merged", incidentId: a.incident_id, taskId: a.task_id, actor: by.actor, channel: by.channel, reason: `pull request #${action.merge.number} merged`, data: { pr: action.merge, sha: merged.sha }, occurredAt: now }, now);
      let inc = (await getIncident(trx, a.incident_id))!;
      inc = await applyTransition(trx, store.dialect, inc, "approval.granted", { actor: by.actor, channel: by.channel, reason: reason ?? `merge approved by ${by.subject}`, data: { approvalId: a.id } }, now);
      inc = await applyTransition(trx, store.dialect, inc, "verify.started", { actor: by.actor, channel: by.channel, reason: `pull request #${action.merge.number} merged; waiting for the alert to resolve`, data: { pr: action.merge, sha: merged.sha } }, now);
      return { approval, incident: inc };
    });
    return { ...result, taskId: null, merged: { number: action.merge.number, sha: merged.sha }, inline: null };
  }

  async function approveRun(a: ApprovalRow, action: PlanAction, by: Decider, reason: string | null): Promise<DecisionResult> {
    const skill = deps.skills().find((s) => s.name === action.skill);
    if (!skill) throw conflict("skill.not_found", `the approved plan names skill ${JSON.stringify(action.skill)}, which is not loaded; reload skills or resolve the incident`);
    const params = action.params ?? {};
    const now = deps.now();
    const result = await store.db.transaction().execute(async (trx) => {
      const cur = (await trx.selectFrom("approvals").selectAll().where("id", "=", a.id).executeTakeFirstOrThrow()) as ApprovalRow;
      assertDecidable(cur, now);
      const approval = await markDecided(trx, store.dialect, cur, "approved", by, reason, now);
      let inc = (await getIncident(trx, a.incident_id))!;
      inc = await applyTransition(trx, store.dialect, inc, "approval.granted", { actor: by.actor, channel: by.channel, reason: reason ?? `approved by ${by.subject}`, data: { approvalId: a.id } }, now);
      let taskId: string | null = null;
      if (!isInline(skill)) {
        taskId = await queueFixTask(trx, store.dialect, inc, skill, params, action.approval ?? "before_run", now, { pool: deps.fixPool, actor: by.actor, channel: by.channel });
      }
      inc = await applyTransition(trx, store.dialect, inc, "fix.started", { actor: by.actor, channel: by.channel, reason: `running ${skill.name}${isInline(skill) ? " inline" : ""} (approved)`, data: { taskId } }, now);
      return { approval, incident: inc, taskId };
    });
    if (result.taskId) deps.onEnqueued?.();
    if (!isInline(skill)) return { ...result, merged: null, inline: null };
    const outcome = await runInlineFix(result.incident, skill, params, by);
    return { ...result, incident: (await getIncident(store.db, a.incident_id))!, merged: null, inline: outcome };
  }

  /** Runs an approved inline skill outside any transaction, then records what it found. */
  async function runInlineFix(inc: IncidentRow, skill: Skill, params: Record<string, unknown>, by: Decider): Promise<InlineOutcome> {
    let outcome: InlineOutcome;
    try {
      outcome = await runInline(skill, params, { id: inc.id, title: inc.title, alertname: inc.alertname, namespace: inc.namespace, service: inc.service, severity: inc.severity, labels: JSON.parse(inc.labels) }, deps.inline ?? { secrets: () => undefined });
    } catch (err) {
      outcome = { kind: "escalate", summary: `${skill.name} failed: ${inlineError(err)}`, details: { code: isAppError(err) ? err.code : "error" } };
    }
    await store.db.transaction().execute(async (trx) => {
      const t = deps.now();
      const cur = (await getIncident(trx, inc.id))!;
      await appendEvent(trx, store.dialect, { type: "skill.result", incidentId: inc.id, actor: by.actor, channel: by.channel, reason: outcome.summary, data: { skill: skill.name, kind: outcome.kind }, occurredAt: t }, t);
      if (cur.state !== "fixing") return;
      if (outcome.kind === "applied") await applyTransition(trx, store.dialect, cur, "verify.started", { actor: by.actor, channel: by.channel, reason: outcome.summary }, t);
      // A delegation or a failure needs a person: the approval covered this skill only.
      else await applyTransition(trx, store.dialect, cur, "escalate", { actor: by.actor, channel: by.channel, reason: outcome.summary }, t);
    });
    return outcome;
  }

  return { approve, reject };
}
