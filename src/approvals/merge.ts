import type { Store } from "../store/db.ts";
import type { Executor } from "../store/sql.ts";
import type { GitHost } from "../gitops/port.ts";
import type { Logger } from "../shared/logger.ts";
import { appendEvent } from "../events/repo.ts";
import { AppError, conflict, errorMessage, invalid, isAppError, notFound } from "../shared/errors.ts";
import type { ControlJob } from "../tasks/control-jobs.ts";
import { getIncident } from "../incidents/repo.ts";
import { applyTransition } from "../incidents/service.ts";
import { isOpen, type IncidentState } from "../incidents/lifecycle.ts";
import {
  approverOf,
  getApproval,
  markMerged,
  markMergeStarted,
  mergeActionOf,
  releaseClaim,
  type ApprovalRow,
} from "./repo.ts";
import { queueMergedBranchDelete, queuePullRequestClose } from "./pull-requests.ts";
import { queueMerge, type MergeJob } from "./requests.ts";
import { checkHead } from "./binding.ts";

// Decide, then act (DESIGN §6): the decision was claimed first (approval `approved`, incident
// `approved`, this job queued in the same transaction); here the pull request is merged, pinned to
// the head the approval was given for. Success: one transaction writes `pr.merged`, moves the
// incident to `verifying` and queues the branch deletion. A failure that retrying cannot fix
// (conflict, head moved, closed, refused) releases the claim: the approval is pending again, the
// incident `proposed`, and `approval.merge_failed` says why. A host error that may pass (GitHub
// 5xx, network) is thrown, so the job retries with its backoff; when the retries run out the claim
// is released the same way. Merging again is safe: the host answers "already merged" with its sha.
// A head that moved also supersedes the released approval with a new request for the new head.
//
// The merge commit is the git record of the decision: its body names the incident, who approved,
// through what and why; its trailers (`Approved-by`, `Approved-via`, `Pitcrew-Incident`) are what
// history walks read.

export type MergeOutcome =
  | { status: "merged"; number: number; sha: string }
  | { status: "skipped"; reason: string }
  | { status: "failed"; number: number; error: AppError; newApprovalId?: string | null };

export type MergeDeps = {
  store: Store;
  log: Logger;
  now: () => number;
  gitHost?: GitHost;
  deleteMergedBranches: boolean;
  /** Recovery of claims whose merge never finished: after `stuckAfterMs`, up to `maxRetries` times. */
  sweep: { stuckAfterMs: number; maxRetries: number };
  onEnqueued?: () => void;
};

const ENGINE = { actor: "pitcrew:approvals", channel: "engine" };
const isRetryable = (err: unknown) => (isAppError(err) ? err.retryable : true);
const short = (sha: string) => sha.slice(0, 7);

function parseJob(payload: Record<string, unknown>): MergeJob {
  if (typeof payload.approvalId !== "string")
    throw invalid("approval.bad_job", "approval.merge job without an approvalId");
  return {
    approvalId: payload.approvalId,
    actor: typeof payload.actor === "string" ? payload.actor : ENGINE.actor,
    channel: typeof payload.channel === "string" ? payload.channel : ENGINE.channel,
  };
}

export function createMerger(deps: MergeDeps) {
  const { store } = deps;
  const log = deps.log.child({ component: "approvals" });

  /**
   * Gives a claim back after its merge failed for good. The incident still waiting on it goes
   * back to `proposed` (a person may decide again); an incident that moved on (resolved,
   * escalated) keeps its state, the approval is cancelled and a closed incident's PR is closed.
   */
  async function release(
    trx: Executor,
    a: ApprovalRow,
    code: string,
    message: string,
    by: { actor: string; channel: string },
    now: number,
  ): Promise<boolean> {
    const inc = await getIncident(trx, a.incident_id);
    const waiting = inc?.state === "approved";
    const reason = `merge of pull request #${a.pr_number} failed: ${message}`;
    if (!(await releaseClaim(trx, a.id, waiting ? "pending" : "cancelled", reason, now))) return false;
    await appendEvent(
      trx,
      store.dialect,
      {
        type: "approval.merge_failed",
        incidentId: a.incident_id,
        taskId: a.task_id,
        ...by,
        reason,
        data: {
          approvalId: a.id,
          code,
          pr: { number: a.pr_number, branch: a.pr_branch },
          approvedBy: approverOf(a),
          channel: a.channel,
        },
        occurredAt: now,
      },
      now,
    );
    if (waiting && inc) {
      await applyTransition(
        trx,
        store.dialect,
        inc,
        "approval.released",
        { ...by, reason: `${reason}; the approval waits for a decision again`, data: { approvalId: a.id, code } },
        now,
      );
    } else if (inc && !isOpen(inc.state as IncidentState)) {
      await queuePullRequestClose(
        trx,
        store.dialect,
        inc.id,
        `the incident is ${inc.state} and the merge failed`,
        by,
        now,
      );
    }
    return true;
  }

  async function recordMerged(a: ApprovalRow, sha: string, by: { actor: string; channel: string }): Promise<void> {
    const pr = mergeActionOf(a)?.merge ?? { number: Number(a.pr_number) };
    await store.db.transaction().execute(async (trx) => {
      const now = deps.now();
      if (!(await markMerged(trx, a.id, sha, now))) return;
      const approvedBy = approverOf(a);
      await appendEvent(
        trx,
        store.dialect,
        {
          type: "pr.merged",
          incidentId: a.incident_id,
          taskId: a.task_id,
          ...by,
          reason: `pull request #${pr.number} merged as ${short(sha)}, approved by ${approvedBy}`,
          data: { approvalId: a.id, pr, sha, approvedBy, decidedBy: a.decided_by, channel: a.channel },
          occurredAt: now,
        },
        now,
      );
      const inc = await getIncident(trx, a.incident_id);
      if (inc?.state === "approved") {
        await applyTransition(
          trx,
          store.dialect,
          inc,
          "verify.started",
          {
            ...by,
            reason: `pull request #${pr.number} merged (${short(sha)}); waiting for the alert to resolve`,
            data: { pr, sha, approvalId: a.id },
          },
          now,
        );
      }
      if (deps.deleteMergedBranches && a.pr_branch)
        await queueMergedBranchDelete(
          trx,
          store.dialect,
          { number: pr.number, branch: a.pr_branch },
          a.incident_id,
          ENGINE,
          now,
        );
    });
    deps.onEnqueued?.();
  }

  /** Merges a claimed approval's pull request. Throws only errors worth retrying. */
  async function merge(approvalId: string, by: { actor: string; channel: string } = ENGINE): Promise<MergeOutcome> {
    if (!deps.gitHost)
      throw conflict("gitops.not_configured", "no pull-request host is configured; merge the pull request by hand");
    const a = await getApproval(store.db, approvalId);
    if (!a) throw notFound("approval.not_found", `approval ${approvalId} does not exist`);
    if (a.pr_number === null) throw invalid("approval.not_a_merge", `approval ${a.id} does not approve a pull request`);
    if (a.merged_at !== null) return { status: "merged", number: a.pr_number, sha: a.merge_sha ?? "" };
    // From here on, a resolve no longer revokes the decision; an incident closed before it did.
    const claimed = await store.db.transaction().execute(async (trx) => {
      const started = await markMergeStarted(trx, a.id, deps.now());
      if (!started) return false;
      // A resumed merge may already have reached the host: it is finished whatever the incident did since.
      const inc = started === "started" ? await getIncident(trx, a.incident_id) : undefined;
      if (inc && !isOpen(inc.state as IncidentState)) {
        await releaseClaim(trx, a.id, "cancelled", `the incident is ${inc.state}`, deps.now());
        await queuePullRequestClose(trx, store.dialect, inc.id, `the incident is ${inc.state}`, ENGINE, deps.now());
        return false;
      }
      return true;
    });
    if (!claimed) {
      const cur = (await getApproval(store.db, approvalId))!;
      if (cur.merged_at !== null) return { status: "merged", number: a.pr_number, sha: cur.merge_sha ?? "" };
      deps.onEnqueued?.();
      return { status: "skipped", reason: `approval ${a.id} is ${cur.state}, not claimed for a merge` };
    }
    try {
      const r = await deps.gitHost.mergePullRequest(a.pr_number, {
        method: "merge",
        sha: a.head_sha ?? undefined,
        ...(await mergeMessage(a)),
      });
      if (!r.merged) throw conflict("gitops.not_merged", `pull request #${a.pr_number} was not merged`);
      await recordMerged(a, r.sha, by);
      return { status: "merged", number: a.pr_number, sha: r.sha };
    } catch (err) {
      if (isRetryable(err)) throw err;
      const error = isAppError(err) ? err : new AppError("conflict", "gitops.merge_failed", errorMessage(err));
      await store.db.transaction().execute((trx) => release(trx, a, error.code, error.message, by, deps.now()));
      deps.onEnqueued?.();
      log.warn({ approvalId, incidentId: a.incident_id, code: error.code }, "merge failed; claim released");
      return {
        status: "failed",
        number: a.pr_number,
        error,
        ...(error.code === "gitops.head_moved" ? { newApprovalId: await rebind(a.id) } : {}),
      };
    }
  }

  /** After a merge refused for a moved head: the approval (pending again) is superseded by one for the new head. */
  async function rebind(approvalId: string): Promise<string | null> {
    try {
      const cur = await getApproval(store.db, approvalId);
      const head = cur ? await checkHead(deps, cur) : { moved: false as const };
      return head.moved ? head.newApprovalId : null;
    } catch (err) {
      log.warn(
        { err: { message: errorMessage(err) }, approvalId },
        "could not request a new approval for the moved pull request",
      );
      return null;
    }
  }

  /** The merge commit's body and trailers: the incident, who approved it, through what, and why. */
  async function mergeMessage(a: ApprovalRow): Promise<{ body: string; trailers: Record<string, string> }> {
    const inc = await getIncident(store.db, a.incident_id);
    const policy = a.channel === "policy";
    const who = policy ? "policy" : (a.decided_by ?? "unknown");
    const via = policy ? "policy" : (a.channel ?? "unknown");
    const reason = (a.reason ?? "").trim().slice(0, 1000);
    // The policy's reason already says "approved by policy: …".
    const decision = policy
      ? reason
        ? reason[0]!.toUpperCase() + reason.slice(1)
        : "Approved by policy"
      : `Approved by ${who} via ${via}${reason ? `: ${reason}` : ""}`;
    const body = [`Incident ${a.incident_id}${inc ? `: ${inc.title.slice(0, 200)}` : ""}`, decision].join("\n");
    return { body, trailers: { "Approved-by": who, "Approved-via": via, "Pitcrew-Incident": a.incident_id } };
  }

  /** The `approval.merge` control job. */
  const job: ControlJob = {
    async run(payload) {
      const p = parseJob(payload);
      const out = await merge(p.approvalId, p);
      return out.status === "failed"
        ? { status: out.status, number: out.number, code: out.error.code, reason: out.error.message }
        : out;
    },
    async onGiveUp(trx, payload, err, _ctx, now) {
      const p = parseJob(payload);
      const a = await getApproval(trx, p.approvalId);
      if (a?.state !== "approved" || a.merged_at !== null) return;
      await release(trx, a, isAppError(err) ? err.code : "error", `gave up retrying: ${errorMessage(err)}`, p, now);
    },
  };

  /**
   * Claims whose merge never finished (a crash between claim and merge, a job that gave up without
   * releasing): queued again after STUCK_AFTER, up to SWEEP_MAX_RETRIES times; then the claim is
   * cancelled with `approval.merge_failed` and the incident escalated, its pull request left open
   * for a person. Returns what it did.
   */
  async function recoverStuckMerges(now = deps.now()): Promise<{ requeued: number; gaveUp: number }> {
    const due = await store.db
      .selectFrom("approvals")
      .selectAll()
      .where("state", "=", "approved")
      .where("merge_queued_at", "<", now - deps.sweep.stuckAfterMs)
      .where("merged_at", "is", null)
      .where("pr_number", "is not", null)
      .orderBy("merge_queued_at")
      .limit(100)
      .execute();
    let requeued = 0;
    let gaveUp = 0;
    for (const a of due) {
      await store.db.transaction().execute(async (trx) => {
        if (Number(a.merge_requeues) >= deps.sweep.maxRetries) {
          const why = `the merge did not complete after ${Number(a.merge_requeues) + 1} attempt(s); merge or close pull request #${a.pr_number} by hand`;
          const inc = await getIncident(trx, a.incident_id);
          if (!(await releaseClaim(trx, a.id, "cancelled", why, now))) return;
          await appendEvent(
            trx,
            store.dialect,
            {
              type: "approval.merge_failed",
              incidentId: a.incident_id,
              taskId: a.task_id,
              ...ENGINE,
              reason: why,
              data: {
                approvalId: a.id,
                channel: a.channel,
                code: "approval.merge_stuck",
                pr: { number: a.pr_number, branch: a.pr_branch },
                approvedBy: approverOf(a),
              },
              occurredAt: now,
            },
            now,
          );
          if (inc?.state === "approved")
            await applyTransition(
              trx,
              store.dialect,
              inc,
              "escalate",
              { ...ENGINE, reason: why, data: { approvalId: a.id } },
              now,
            );
          gaveUp += 1;
          return;
        }
        // Compare-and-swap on the queue time: two control planes sweeping at once queue it once.
        const res = await trx
          .updateTable("approvals")
          .set({ merge_queued_at: now, merge_requeues: Number(a.merge_requeues) + 1 })
          .where("id", "=", a.id)
          .where("state", "=", "approved")
          .where("merge_queued_at", "=", Number(a.merge_queued_at))
          .executeTakeFirst();
        if (Number(res.numUpdatedRows) === 0) return;
        await queueMerge(trx, store.dialect, a, ENGINE, now);
        await appendEvent(
          trx,
          store.dialect,
          {
            type: "approval.merge_requeued",
            incidentId: a.incident_id,
            ...ENGINE,
            reason: `merge of pull request #${a.pr_number} not done ${Math.round((now - Number(a.merge_queued_at)) / 1000)} s after it was queued; queued again`,
            data: { approvalId: a.id, attempt: Number(a.merge_requeues) + 2 },
            occurredAt: now,
          },
          now,
        );
        requeued += 1;
      });
    }
    if (requeued + gaveUp > 0) deps.onEnqueued?.();
    return { requeued, gaveUp };
  }

  return { merge, job, recoverStuckMerges };
}
