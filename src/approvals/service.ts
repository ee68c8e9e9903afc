import type { Store } from "../store/db.ts";
import type { IncidentRow } from "../store/schema.ts";
import type { GitHost } from "../gitops/port.ts";
import type { Skill } from "../skills/schema.ts";
import { appendEvent } from "../events/repo.ts";
import { AppError, conflict, errorMessage, isAppError } from "../shared/errors.ts";
import { inlineError, isInline, runInline, type InlineDeps, type InlineOutcome } from "../skills/inline.ts";
import type { ControlJob } from "../tasks/control-jobs.ts";
import { getIncident } from "../incidents/repo.ts";
import { applyTransition } from "../incidents/service.ts";
import { queueFixTask } from "../incidents/queueing.ts";
import {
  assertDecidable,
  decide,
  findApproval,
  getApproval,
  parseAction,
  type ApprovalRow,
  type Decider,
  type PlanAction,
} from "./repo.ts";
import { createMerger, type MergeDeps } from "./merge.ts";
import { createPullRequestCleanup, PR_CLOSE, queuePullRequestClose } from "./pull-requests.ts";
import { MERGE_JOB, queueMerge } from "./requests.ts";
import { checkHead, headMovedError } from "./binding.ts";
import { createRebuild, type RebuildResult } from "./rebuild.ts";

// One approvals domain (DESIGN §6): deciding (MCP today; Telegram and the console are channels over
// this same service), expiring, merging and cleaning up pull requests. Creating approvals happens
// inside the transaction of its cause (requests.ts); cancelling them when an incident closes is
// closeAsResolved's (incidents/service.ts, through repo.ts).

export type ApprovalServiceDeps = Omit<MergeDeps, "gitHost"> & {
  gitHost?: GitHost;
  skills: () => Skill[];
  /** The runner pool fix tasks go to (RUNNER_POOL). */
  fixPool: string;
  inline?: InlineDeps;
};

export type DecisionResult = {
  approval: ApprovalRow;
  incident: IncidentRow;
  /** The fix task queued by a before_run approval. */
  taskId: string | null;
  /** The merge commit of a merge approval, when the merge is done. */
  merged: { number: number; sha: string } | null;
  /** Why a claimed merge is not done yet (a host error its job retries). */
  mergePending: string | null;
  /** The inline skill's outcome, for an approved inline skill. */
  inline: InlineOutcome | null;
};

type Ref = { approvalId?: string; incidentId?: string };
const EXPIRY = { actor: "pitcrew:verifier", channel: "engine" };

export function createApprovalService(deps: ApprovalServiceDeps) {
  const { store } = deps;
  const log = deps.log.child({ component: "approvals" });
  const merger = createMerger(deps);
  const prs = createPullRequestCleanup(deps);
  const rebuilder = createRebuild({ ...deps, closeNow: prs.closeNow });

  async function approve(
    ref: Ref,
    by: Decider,
    reason: string | null,
    opts: { mergeNow?: boolean } = {},
  ): Promise<DecisionResult> {
    const first = await findApproval(store.db, ref);
    assertDecidable(first, deps.now());
    if (first.pr_number !== null) {
      // Bound to the exact change: a pull request that moved since the request is not approved.
      const head = await checkHead(deps, first);
      if (head.moved) throw headMovedError(first, head);
      return approveMerge(first, by, reason, opts.mergeNow ?? true);
    }
    return approveRun(first, parseAction(first) as PlanAction, by, reason);
  }

  /** Claims the decision (one transaction, with the merge job), then merges right away when asked. */
  async function approveMerge(
    a: ApprovalRow,
    by: Decider,
    reason: string | null,
    mergeNow: boolean,
  ): Promise<DecisionResult> {
    if (!deps.gitHost)
      throw conflict("gitops.not_configured", "no pull-request host is configured; merge the pull request by hand");
    const claimed = await store.db.transaction().execute(async (trx) => {
      const now = deps.now();
      const approval = await decide(trx, store.dialect, a, "approved", by, reason, now);
      const inc = await getIncident(trx, a.incident_id);
      if (inc?.state !== "proposed")
        throw conflict(
          "incident.not_proposed",
          `incident ${a.incident_id} is ${inc?.state ?? "gone"}, not waiting for approval`,
        );
      const incident = await applyTransition(
        trx,
        store.dialect,
        inc,
        "approval.granted",
        {
          actor: by.actor,
          channel: by.channel,
          reason: reason ?? `merge approved by ${by.subject}`,
          data: { approvalId: a.id },
        },
        now,
      );
      await queueMerge(trx, store.dialect, approval, by, now);
      return { approval, incident };
    });
    deps.onEnqueued?.();
    const result: DecisionResult = {
      ...claimed,
      taskId: null,
      merged: null,
      mergePending: "the merge is queued",
      inline: null,
    };
    if (!mergeNow) return result;
    let out;
    try {
      out = await merger.merge(a.id, by);
    } catch (err) {
      log.warn({ err: { message: errorMessage(err) }, approvalId: a.id }, "merge failed; its job will retry");
      return { ...result, ...(await reload(a)), mergePending: `the merge will be retried: ${errorMessage(err)}` };
    }
    if (out.status === "failed") {
      const then = out.newApprovalId
        ? `a new approval (${out.newApprovalId}) was requested for the pull request's new head`
        : `approval ${a.id} is pending again`;
      throw new AppError(out.error.kind, out.error.code, `${out.error.message}; the merge was not made and ${then}`, {
        details: { ...out.error.details, newApprovalId: out.newApprovalId ?? null },
      });
    }
    const merged = out.status === "merged" ? { number: out.number, sha: out.sha } : null;
    return {
      ...result,
      ...(await reload(a)),
      merged,
      mergePending: merged ? null : out.status === "skipped" ? out.reason : null,
    };
  }

  async function reload(a: ApprovalRow): Promise<{ approval: ApprovalRow; incident: IncidentRow }> {
    return { approval: (await getApproval(store.db, a.id))!, incident: (await getIncident(store.db, a.incident_id))! };
  }

  async function approveRun(
    a: ApprovalRow,
    action: PlanAction,
    by: Decider,
    reason: string | null,
  ): Promise<DecisionResult> {
    const skill = deps.skills().find((s) => s.name === action.skill);
    if (!skill)
      throw conflict(
        "skill.not_found",
        `the approved plan names skill ${JSON.stringify(action.skill)}, which is not loaded; reload skills or resolve the incident`,
      );
    const params = action.params ?? {};
    const result = await store.db.transaction().execute(async (trx) => {
      const now = deps.now();
      const approval = await decide(trx, store.dialect, a, "approved", by, reason, now);
      let inc = (await getIncident(trx, a.incident_id))!;
      inc = await applyTransition(
        trx,
        store.dialect,
        inc,
        "approval.granted",
        {
          actor: by.actor,
          channel: by.channel,
          reason: reason ?? `approved by ${by.subject}`,
          data: { approvalId: a.id },
        },
        now,
      );
      let taskId: string | null = null;
      if (!isInline(skill)) {
        taskId = await queueFixTask(trx, store.dialect, inc, skill, params, action.approval ?? "before_run", now, {
          pool: deps.fixPool,
          actor: by.actor,
          channel: by.channel,
        });
      }
      inc = await applyTransition(
        trx,
        store.dialect,
        inc,
        "fix.started",
        {
          actor: by.actor,
          channel: by.channel,
          reason: `running ${skill.name}${isInline(skill) ? " inline" : ""} (approved)`,
          data: { taskId },
        },
        now,
      );
      return { approval, incident: inc, taskId };
    });
    if (result.taskId) deps.onEnqueued?.();
    const none = { merged: null, mergePending: null };
    if (!isInline(skill)) return { ...result, ...none, inline: null };
    const outcome = await runInlineFix(result.incident, skill, params, by);
    return { ...result, ...none, incident: (await getIncident(store.db, a.incident_id))!, inline: outcome };
  }

  /** Runs an approved inline skill outside any transaction, then records what it found. */
  async function runInlineFix(
    inc: IncidentRow,
    skill: Skill,
    params: Record<string, unknown>,
    by: Decider,
  ): Promise<InlineOutcome> {
    let outcome: InlineOutcome;
    try {
      outcome = await runInline(
        skill,
        params,
        {
          id: inc.id,
          title: inc.title,
          alertname: inc.alertname,
          namespace: inc.namespace,
          service: inc.service,
          severity: inc.severity,
          labels: JSON.parse(inc.labels),
        },
        deps.inline ?? { secrets: () => undefined },
      );
    } catch (err) {
      outcome = {
        kind: "escalate",
        summary: `${skill.name} failed: ${inlineError(err)}`,
        details: { code: isAppError(err) ? err.code : "error" },
      };
    }
    await store.db.transaction().execute(async (trx) => {
      const t = deps.now();
      const cur = (await getIncident(trx, inc.id))!;
      await appendEvent(
        trx,
        store.dialect,
        {
          type: "skill.result",
          incidentId: inc.id,
          actor: by.actor,
          channel: by.channel,
          reason: outcome.summary,
          data: { skill: skill.name, kind: outcome.kind },
          occurredAt: t,
        },
        t,
      );
      if (cur.state !== "fixing") return;
      if (outcome.kind === "applied")
        await applyTransition(
          trx,
          store.dialect,
          cur,
          "verify.started",
          { actor: by.actor, channel: by.channel, reason: outcome.summary },
          t,
        );
      // A delegation or a failure needs a person: the approval covered this skill only.
      else
        await applyTransition(
          trx,
          store.dialect,
          cur,
          "escalate",
          { actor: by.actor, channel: by.channel, reason: outcome.summary },
          t,
        );
    });
    return outcome;
  }

  /** Rejects; a proposed pull request is closed (its job is queued with the decision, and run now). */
  async function reject(ref: Ref, by: Decider, reason: string | null): Promise<DecisionResult & { closing: string[] }> {
    const first = await findApproval(store.db, ref);
    assertDecidable(first, deps.now());
    const result = await store.db.transaction().execute(async (trx) => {
      const now = deps.now();
      const approval = await decide(trx, store.dialect, first, "rejected", by, reason, now);
      const inc = (await getIncident(trx, first.incident_id))!;
      const why = `rejected by ${by.subject}${reason ? `: ${reason}` : ""}`;
      const incident = await applyTransition(
        trx,
        store.dialect,
        inc,
        "approval.rejected",
        {
          actor: by.actor,
          channel: by.channel,
          reason: reason ?? `rejected by ${by.subject}`,
          data: { approvalId: first.id },
        },
        now,
      );
      const closing = await queuePullRequestClose(trx, store.dialect, first.incident_id, why, by, now);
      return { approval, incident, closing };
    });
    deps.onEnqueued?.();
    // So the caller's answer shows the pull request closed; the job that follows finds it done.
    if (deps.gitHost) await prs.closeNow(result.closing);
    return { ...result, taskId: null, merged: null, mergePending: null, inline: null };
  }

  const jobs: Record<string, ControlJob> = { [MERGE_JOB]: merger.job, [PR_CLOSE]: prs.job };

  return {
    approve,
    reject,
    /**
     * Re-runs the fix of a pull request whose merge failed (a conflict, or the pull request moved)
     * on the current base, as a new pull request that needs a new approval; the old one is closed.
     */
    rebuild: (ref: Ref, by: Decider, reason: string | null): Promise<RebuildResult> =>
      rebuilder.rebuild(ref, by, reason),
    /** Expires pending approvals past their deadline (expireDueApprovals). */
    expireDue: async () => {
      const n = await expireDueApprovals(store, deps.now());
      if (n > 0) deps.onEnqueued?.();
      return n;
    },
    /** Merges a claimed approval's pull request (what the `approval.merge` job runs). */
    merge: merger.merge,
    /** Re-queues merges stuck in `approved`, then gives up (see merge.ts). For the sweeper. */
    recoverStuckMerges: merger.recoverStuckMerges,
    /** Closes a pull request as its `pr.close` job would. */
    closePullRequest: prs.close,
    /** The control-plane job kinds of this domain, for createControlJobs. */
    jobs,
  };
}

/**
 * Pending approvals past their deadline expire: the incident goes to a person and a proposed pull
 * request is closed (its job queued in the same transaction). Returns how many expired.
 */
export async function expireDueApprovals(store: Store, now: number): Promise<number> {
  const due = await store.db
    .selectFrom("approvals")
    .select(["id", "incident_id"])
    .where("state", "=", "pending")
    .where("expires_at", "<", now)
    .limit(500)
    .execute();
  let n = 0;
  for (const a of due) {
    await store.db.transaction().execute(async (trx) => {
      const why = "no decision before the deadline";
      const res = await trx
        .updateTable("approvals")
        .set({
          state: "expired",
          decided_at: now,
          decided_by: EXPIRY.actor,
          channel: EXPIRY.channel,
          reason: why,
        })
        .where("id", "=", a.id)
        .where("state", "=", "pending")
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) === 0) return;
      n += 1;
      await appendEvent(
        trx,
        store.dialect,
        {
          type: "approval.expired",
          incidentId: a.incident_id,
          ...EXPIRY,
          reason: why,
          data: { approvalId: a.id },
          occurredAt: now,
        },
        now,
      );
      const inc = await getIncident(trx, a.incident_id);
      if (inc?.state === "proposed")
        await applyTransition(
          trx,
          store.dialect,
          inc,
          "escalate",
          { ...EXPIRY, reason: "the approval expired without a decision" },
          now,
        );
      await queuePullRequestClose(
        trx,
        store.dialect,
        a.incident_id,
        "its approval expired without a decision",
        EXPIRY,
        now,
      );
    });
  }
  return n;
}

export type ApprovalService = ReturnType<typeof createApprovalService>;
export type { Decider };
