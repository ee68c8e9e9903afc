import type { Store } from "../store/db.ts";
import type { Executor } from "../store/sql.ts";
import type { GitHost } from "../gitops/port.ts";
import type { Logger } from "../shared/logger.ts";
import { appendEvent } from "../events/repo.ts";
import { conflict, errorMessage, invalid, isAppError } from "../shared/errors.ts";
import { enqueueControlJob, type ControlJob } from "../tasks/control-jobs.ts";

// Pull requests Pitcrew leaves behind: an incident that closes without its pull request merged
// (resolved by itself or by hand, rejected, expired, failed) queues a `pr.close` control job in the
// closing transaction; the job closes the pull request with a comment saying why and deletes its
// branch. The same job deletes a merged pull request's branch (GITOPS_DELETE_MERGED_BRANCHES).
// Repeating it is harmless: a pull request already closed or merged is left as it is, a branch
// already gone is fine.

export const PR_CLOSE = "pr.close";

export type PrCloseJob = {
  number: number;
  branch: string | null;
  incidentId: string;
  /** Why, in words: the comment on the pull request and the timeline's reason. */
  why: string;
  /** The head Pitcrew proposed; a pull request that moved since is someone else's now and stays. */
  sha: string | null;
  /** Set after Pitcrew merged it: only the branch goes. */
  merged?: boolean;
};

type KnownPull = { number: number; branch: string | null; sha: string | null };

/**
 * The incident's pull requests that are open as far as we know and not being merged: those of
 * its merge approvals that were not merged (and whose merge is not in flight), and those its fix
 * tasks opened (`task.pr_opened`) without an approval.
 */
async function pullsToClose(trx: Executor, dialect: Store["dialect"], incidentId: string): Promise<KnownPull[]> {
  let q = trx
    .selectFrom("approvals")
    .select(["pr_number", "pr_branch", "head_sha", "state", "merge_started_at", "merged_at"])
    .where("incident_id", "=", incidentId)
    .where("pr_number", "is not", null);
  // A locking read on MySQL: the rows as they are now, not as the transaction's snapshot had
  // them, so a merge that started meanwhile is seen (SQLite has one writer at a time anyway).
  if (dialect === "mysql") q = q.forUpdate();
  const approvals = await q.execute();
  const keep = new Set<number>();
  const pulls = new Map<number, KnownPull>();
  for (const a of approvals) {
    // A superseded approval's pull request lives on under the approval that replaced it (its new head).
    if (a.state === "superseded") continue;
    const n = Number(a.pr_number);
    const inFlight = a.state === "approved" && a.merge_started_at !== null;
    if (a.merged_at !== null || inFlight) keep.add(n);
    else pulls.set(n, { number: n, branch: a.pr_branch, sha: a.head_sha });
  }
  const opened = await trx
    .selectFrom("events")
    .select("data")
    .where("incident_id", "=", incidentId)
    .where("type", "=", "task.pr_opened")
    .execute();
  for (const e of opened) {
    const d = JSON.parse(e.data) as { number?: unknown; branch?: unknown };
    if (typeof d.number !== "number" || pulls.has(d.number)) continue;
    pulls.set(d.number, { number: d.number, branch: typeof d.branch === "string" ? d.branch : null, sha: null });
  }
  return [...pulls.values()].filter((p) => !keep.has(p.number));
}

/** Queues the close of each pull request the incident leaves behind, once per pull request. Returns the job ids. */
export async function queuePullRequestClose(
  trx: Executor,
  dialect: Store["dialect"],
  incidentId: string,
  why: string,
  by: { actor: string; channel: string },
  now: number,
): Promise<string[]> {
  const ids: string[] = [];
  for (const pr of await pullsToClose(trx, dialect, incidentId)) {
    const key = `pr.close:${incidentId}:${pr.number}`;
    if (await trx.selectFrom("tasks").select("id").where("idempotency_key", "=", key).executeTakeFirst()) continue;
    const payload: PrCloseJob = { number: pr.number, branch: pr.branch, incidentId, why, sha: pr.sha, merged: false };
    ids.push(await enqueueControlJob(trx, dialect, { kind: PR_CLOSE, payload, incidentId, key }, by, now));
  }
  return ids;
}

/** Queues the deletion of a pull request's branch after Pitcrew merged it. */
export function queueMergedBranchDelete(
  trx: Executor,
  dialect: Store["dialect"],
  pr: { number: number; branch: string },
  incidentId: string,
  by: { actor: string; channel: string },
  now: number,
): Promise<string> {
  const payload: PrCloseJob = {
    number: pr.number,
    branch: pr.branch,
    incidentId,
    why: `pull request #${pr.number} was merged`,
    sha: null,
    merged: true,
  };
  return enqueueControlJob(trx, dialect, { kind: PR_CLOSE, payload, incidentId }, by, now);
}

export type PrCloseResult = { number: number; closed: boolean; branchDeleted: boolean; note: string };

function parseJob(payload: Record<string, unknown>): PrCloseJob {
  const p = payload as Partial<PrCloseJob>;
  if (typeof p.number !== "number" || typeof p.incidentId !== "string" || typeof p.why !== "string")
    throw invalid("approval.bad_job", "pr.close job without number, incidentId or why");
  return {
    number: p.number,
    branch: typeof p.branch === "string" ? p.branch : null,
    incidentId: p.incidentId,
    why: p.why,
    sha: typeof p.sha === "string" ? p.sha : null,
    merged: p.merged === true,
  };
}

export function createPullRequestCleanup(deps: { store: Store; log: Logger; now: () => number; gitHost?: GitHost }) {
  const { store } = deps;
  const ENGINE = { actor: "pitcrew:approvals", channel: "engine" };

  /**
   * Closes (if still open) and deletes the branch of one pull request. `taskId` names the job: its
   * timeline event gets an id derived from it, so the job run after an inline run adds nothing.
   */
  async function close(payload: Record<string, unknown>, taskId: string): Promise<PrCloseResult> {
    const job = parseJob(payload);
    if (!deps.gitHost)
      throw conflict(
        "gitops.not_configured",
        `no pull-request host is configured; close pull request #${job.number} by hand`,
      );
    const host = deps.gitHost;
    const pr = await host.getPullRequest(job.number).catch((err) => {
      if (isAppError(err) && err.kind === "not_found") return null;
      throw err;
    });
    let closed = false;
    let note: string;
    let deletable = false;
    if (!pr) note = "the pull request no longer exists";
    else if (job.branch && pr.branch !== job.branch)
      note = `the pull request's branch is ${pr.branch}, not ${job.branch}; left alone`;
    else if (job.merged) {
      note =
        pr.state === "merged"
          ? "merged; its branch is deleted"
          : `the pull request is ${pr.state}, not merged; branch left alone`;
      deletable = pr.state === "merged";
    } else if (pr.state === "merged") note = "already merged by someone else; left alone";
    else if (pr.state === "open" && job.sha && pr.headSha !== job.sha)
      note = `the branch moved since Pitcrew proposed it (${job.sha.slice(0, 7)} → ${pr.headSha.slice(0, 7)}); left open`;
    else {
      if (pr.state === "open") {
        await host.closePullRequest(job.number, `Closed by Pitcrew: ${job.why} (incident ${job.incidentId}).`);
        closed = true;
      }
      note = closed ? "closed" : "already closed";
      deletable = true;
    }
    // Never the base branch, whatever a record says.
    const branchDeleted =
      deletable && pr !== null && pr.branch !== pr.base ? await host.deleteBranch(pr.branch) : false;
    const t = deps.now();
    const type = job.merged ? "pr.branch_deleted" : "pr.closed";
    const reason = job.merged ? `${note}` : `pull request #${job.number}: ${note}: ${job.why}`;
    await appendEvent(
      store.db,
      store.dialect,
      {
        id: `evt_${taskId.replace(/^tsk_/, "")}`,
        type,
        incidentId: job.incidentId,
        ...ENGINE,
        reason,
        data: {
          pr: { number: job.number, branch: pr?.branch ?? job.branch, url: pr?.url ?? null },
          closed,
          branchDeleted,
          why: job.why,
        },
        occurredAt: t,
      },
      t,
    );
    return { number: job.number, closed, branchDeleted, note };
  }

  const job: ControlJob = {
    run: (payload, ctx) => close(payload, ctx.taskId),
    async onGiveUp(trx, payload, err, ctx, now) {
      const p = payload as Partial<PrCloseJob>;
      await appendEvent(
        trx,
        store.dialect,
        {
          id: `evt_${ctx.taskId.replace(/^tsk_/, "")}`,
          type: "pr.close_failed",
          incidentId: ctx.incidentId,
          ...ENGINE,
          reason: `could not close pull request #${String(p.number)}: ${errorMessage(err).slice(0, 500)}`,
          data: { pr: { number: p.number, branch: p.branch ?? null } },
          occurredAt: now,
        },
        now,
      );
    },
  };

  /** Runs the queued close now (best effort): the job that follows finds it done. */
  async function closeNow(taskIds: string[]): Promise<void> {
    for (const id of taskIds) {
      const task = await store.db
        .selectFrom("tasks")
        .select(["payload", "kind"])
        .where("id", "=", id)
        .executeTakeFirst();
      if (task?.kind !== PR_CLOSE) continue;
      await close(JSON.parse(task.payload) as Record<string, unknown>, id).catch((err) =>
        deps.log.warn(
          { err: { message: errorMessage(err) }, taskId: id },
          "closing the pull request now failed; its job will retry",
        ),
      );
    }
  }

  return { close, closeNow, job };
}
