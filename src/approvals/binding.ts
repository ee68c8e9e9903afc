import type { Store } from "../store/db.ts";
import type { Executor } from "../store/sql.ts";
import type { GitHost, PullDiff } from "../gitops/port.ts";
import type { Logger } from "../shared/logger.ts";
import { appendEvent } from "../events/repo.ts";
import { AppError, errorMessage } from "../shared/errors.ts";
import { newId } from "../shared/ids.ts";
import { getApproval, mergeActionOf, newApprovalRow, type ApprovalRow, type ChangeDiff } from "./repo.ts";
import { MERGE_APPROVAL_TTL_MS } from "./requests.ts";

// An approval is bound to the exact change: the pull request's head sha and its diff, stored when
// the approval is requested and shown to the approver. A decision for a pull request that moved
// since (someone pushed to its branch) would approve a change nobody saw: it is refused, the
// approval is `superseded`, and a new one is requested for the new head with its own diff — the
// new `approval.requested` event sends the approver a new message. The merge stays pinned to the
// approved sha, the last line of defence if the branch moves between the check and the merge.

const ENGINE = { actor: "pitcrew:approvals", channel: "engine" };
const short = (sha: string) => sha.slice(0, 7);

/** The diff a runner reported with its pull request (the task's result), when it is well formed. */
export function diffOfResult(result: { diffSummary?: unknown; diffExcerpt?: unknown }): ChangeDiff | null {
  const s = result.diffSummary as ChangeDiff["summary"] | undefined;
  if (
    !s ||
    typeof s !== "object" ||
    !Array.isArray(s.files) ||
    typeof s.added !== "number" ||
    typeof s.removed !== "number"
  )
    return null;
  return { summary: s, excerpt: typeof result.diffExcerpt === "string" ? result.diffExcerpt.slice(0, 4000) : "" };
}

/**
 * Supersedes a pending merge approval whose pull request moved to `head`, and requests a new one
 * for the new head, in the caller's transaction. Returns the new approval's id, or null when the
 * approval was no longer pending (decided or superseded meanwhile: nothing is written).
 */
export async function supersedeForNewHead(
  trx: Executor,
  dialect: Store["dialect"],
  old: ApprovalRow,
  head: PullDiff,
  now: number,
): Promise<string | null> {
  const id = newId("apr", now);
  const n = Number(old.pr_number);
  const moved = `pull request #${n} moved from ${short(old.head_sha ?? "")} to ${short(head.headSha)} since approval ${old.id} was requested`;
  const res = await trx
    .updateTable("approvals")
    .set({
      state: "superseded",
      decided_at: now,
      decided_by: ENGINE.actor,
      channel: ENGINE.channel,
      reason: `${moved}; superseded by ${id}`,
    })
    .where("id", "=", old.id)
    .where("state", "=", "pending")
    .executeTakeFirst();
  if (Number(res.numUpdatedRows) === 0) return null;
  const action = mergeActionOf(old);
  const pr = { ...(action?.merge ?? { number: n }), sha: head.headSha };
  const expires = now + MERGE_APPROVAL_TTL_MS;
  await trx
    .insertInto("approvals")
    .values(
      newApprovalRow({
        id,
        incident_id: old.incident_id,
        task_id: old.task_id,
        risk: old.risk,
        action: JSON.stringify({ ...(action ?? {}), merge: pr }),
        requested_at: now,
        expires_at: expires,
        pr_number: n,
        pr_branch: old.pr_branch,
        head_sha: head.headSha.slice(0, 64),
        diff: head,
      }),
    )
    .execute();
  await appendEvent(
    trx,
    dialect,
    {
      type: "approval.superseded",
      incidentId: old.incident_id,
      taskId: old.task_id,
      ...ENGINE,
      reason: `${moved}; a new approval is requested for the new head`,
      data: {
        approvalId: old.id,
        newApprovalId: id,
        pr: { number: n, branch: old.pr_branch },
        from: old.head_sha,
        to: head.headSha,
      },
      occurredAt: now,
    },
    now,
  );
  await appendEvent(
    trx,
    dialect,
    {
      type: "approval.requested",
      incidentId: old.incident_id,
      taskId: old.task_id,
      ...ENGINE,
      reason: `merge of pull request #${n} needs approval again: it moved to ${short(head.headSha)}`,
      data: { approvalId: id, pr, risk: old.risk, expiresAt: expires, diff: head.summary, supersedes: old.id },
      occurredAt: now,
    },
    now,
  );
  return id;
}

export type HeadCheck = { moved: false } | { moved: true; from: string; to: string; newApprovalId: string | null };

export type BindingDeps = { store: Store; log: Logger; now: () => number; gitHost?: GitHost; onEnqueued?: () => void };

/**
 * Compares the pull request's head with the one a pending merge approval was requested for; when
 * it moved, supersedes the approval and requests a new one (see above). A host that cannot say
 * (down, pull request gone) is no reason to refuse: the merge is pinned to the approved head.
 */
export async function checkHead(deps: BindingDeps, a: ApprovalRow): Promise<HeadCheck> {
  if (!deps.gitHost || a.pr_number === null || !a.head_sha || a.state !== "pending") return { moved: false };
  const host = deps.gitHost;
  const pr = await host.getPullRequest(a.pr_number).catch((err: unknown) => {
    deps.log.warn(
      { err: { message: errorMessage(err) }, approvalId: a.id },
      "could not read the pull request's head; the merge stays pinned to the approved one",
    );
    return null;
  });
  if (pr?.state !== "open" || pr.headSha === a.head_sha) return { moved: false };
  // The diff of the head the new approval is for; a host that fails here fails the decision (retry).
  const head = await host.pullRequestDiff(a.pr_number);
  const newApprovalId = await deps.store.db
    .transaction()
    .execute((trx) => supersedeForNewHead(trx, deps.store.dialect, a, head, deps.now()));
  deps.onEnqueued?.();
  if (newApprovalId) return { moved: true, from: a.head_sha, to: head.headSha, newApprovalId };
  // Someone else superseded (or decided) it first: name the approval that replaced it, if any.
  const cur = await getApproval(deps.store.db, a.id);
  const next = cur?.state === "superseded" ? (/superseded by (apr_\S+)$/.exec(cur.reason ?? "")?.[1] ?? null) : null;
  return { moved: true, from: a.head_sha, to: head.headSha, newApprovalId: next };
}

/** The refusal of a decision whose pull request moved. */
export function headMovedError(a: ApprovalRow, head: Extract<HeadCheck, { moved: true }>): AppError {
  const next = head.newApprovalId
    ? `a new approval (${head.newApprovalId}) was requested for the new head; review it and decide again`
    : "decide again on the pull request's current approval";
  return new AppError(
    "conflict",
    "approval.head_moved",
    `pull request #${a.pr_number} changed since approval ${a.id} was requested: its head moved from ${short(head.from)} to ${short(head.to)}; nothing was approved, ${next}`,
    { details: { approvalId: a.id, newApprovalId: head.newApprovalId, from: head.from, to: head.to } },
  );
}
