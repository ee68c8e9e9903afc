import type { Store } from "../store/db.ts";
import type { Executor } from "../store/sql.ts";
import type { IncidentRow } from "../store/schema.ts";
import type { Logger } from "../shared/logger.ts";
import type { Skill } from "../skills/schema.ts";
import { appendEvent } from "../events/repo.ts";
import { conflict } from "../shared/errors.ts";
import { getIncident } from "../incidents/repo.ts";
import { applyTransition } from "../incidents/service.ts";
import { queueFixTask } from "../incidents/queueing.ts";
import { findApproval, mergeActionOf, type ApprovalRow, type Decider } from "./repo.ts";
import { queuePullRequestClose } from "./pull-requests.ts";

// Rebuild (DESIGN §6): a merge that failed because the base moved under the pull request (a
// conflict), or because the pull request itself moved, is not fixed by approving again. A person
// asks for a rebuild (Telegram's button, MCP's rebuild_fix): the incident's fix runs again on the
// current base as a new fix task — on its own branch (`…-rebuild-<n>`), so it never finds and
// reuses the pull request it replaces — whose pull request asks for a new approval. The old pull
// request is closed (`pr.close`), its pending approval cancelled, all in one transaction.

export type RebuildDeps = {
  store: Store;
  log: Logger;
  now: () => number;
  skills: () => Skill[];
  fixPool: string;
  onEnqueued?: () => void;
  /** Runs queued pr.close jobs now (best effort), as a rejection does. */
  closeNow?: (taskIds: string[]) => Promise<void>;
};

export type RebuildResult = {
  /** The approval the rebuild replaces (now cancelled, or already closed before). */
  approval: ApprovalRow;
  incident: IncidentRow;
  /** The new fix task. */
  taskId: string;
  /** Which rebuild of this incident it is (its branch ends in `-rebuild-<n>`). */
  rebuild: number;
  /** pr.close jobs queued for the pull request(s) it replaces. */
  closing: string[];
  /** Why a rebuild was allowed: the failed merge or the moved pull request. */
  cause: string;
};

/** Failures a rebuild answers: the base moved under the pull request, or the pull request moved. */
const REBUILDABLE = new Set(["gitops.merge_conflict", "gitops.head_moved"]);

/** The merge failure (or head move) that makes the approval's pull request worth rebuilding, in words; null if none. */
async function rebuildCause(db: Executor, a: ApprovalRow): Promise<string | null> {
  const rows = await db
    .selectFrom("events")
    .select(["type", "reason", "data"])
    .where("incident_id", "=", a.incident_id)
    .where("type", "in", ["approval.merge_failed", "approval.superseded"])
    .orderBy("seq", "desc")
    .limit(100)
    .execute();
  for (const e of rows) {
    const d = JSON.parse(e.data) as { approvalId?: string; newApprovalId?: string; code?: string };
    if (e.type === "approval.merge_failed" && d.approvalId === a.id && d.code && REBUILDABLE.has(d.code))
      return e.reason ?? d.code;
    if (e.type === "approval.superseded" && (d.approvalId === a.id || d.newApprovalId === a.id))
      return e.reason ?? "the pull request moved";
  }
  return null;
}

export function createRebuild(deps: RebuildDeps) {
  const { store } = deps;

  async function rebuild(
    ref: { approvalId?: string; incidentId?: string },
    by: Decider,
    reason: string | null,
  ): Promise<RebuildResult> {
    const a = await findApproval(store.db, ref);
    const notAllowed = (why: string) => conflict("approval.rebuild_not_allowed", `approval ${a.id}: ${why}`);
    if (a.pr_number === null) throw notAllowed("it approves a plan, not a pull request; there is nothing to rebuild");
    if (a.merged_at !== null) throw notAllowed(`pull request #${a.pr_number} is already merged`);
    const action = mergeActionOf(a);
    const task = a.task_id
      ? await store.db.selectFrom("tasks").select("payload").where("id", "=", a.task_id).executeTakeFirst()
      : undefined;
    const ran = task
      ? (JSON.parse(task.payload) as {
          skill?: string;
          params?: Record<string, unknown>;
          action?: { revert?: unknown };
        })
      : {};
    if (ran.action?.revert)
      throw notAllowed(
        `pull request #${a.pr_number} is Pitcrew's revert of a change; revert by hand, or resolve the incident`,
      );
    const cause = await rebuildCause(store.db, a);
    if (!cause)
      throw notAllowed(
        `rebuild is for a merge that failed with a conflict or a pull request that moved; pull request #${a.pr_number} had neither — approve or reject it`,
      );
    const inc0 = await getIncident(store.db, a.incident_id);
    const plan = inc0?.plan ? (JSON.parse(inc0.plan) as { skill?: string; params?: Record<string, unknown> }) : {};
    const name = action?.skill ?? ran.skill ?? plan.skill;
    const skill = deps.skills().find((s) => s.name === name);
    if (!skill)
      throw conflict(
        "skill.not_found",
        `the pull request was made by skill ${JSON.stringify(name ?? null)}, which is not loaded; reload skills or resolve the incident`,
      );
    const params = ran.params ?? (plan.skill === skill.name ? plan.params : undefined) ?? {};

    const result = await store.db.transaction().execute(async (trx) => {
      const now = deps.now();
      const inc = await getIncident(trx, a.incident_id);
      if (!inc || !["proposed", "escalated"].includes(inc.state)) {
        throw conflict(
          "incident.not_rebuildable",
          `incident ${a.incident_id} is ${inc?.state ?? "gone"}; a rebuild needs it waiting for a decision (proposed) or with a person (escalated)`,
        );
      }
      const who = `${by.subject} via ${by.channel}`;
      const why = `rebuilt on the current base as a new pull request (requested by ${who}${reason ? `: ${reason}` : ""})`;
      // What still waits for a decision on this incident waits for the rebuilt pull request instead.
      const pending = await trx
        .selectFrom("approvals")
        .select("id")
        .where("incident_id", "=", inc.id)
        .where("state", "=", "pending")
        .execute();
      if (pending.length > 0) {
        await trx
          .updateTable("approvals")
          .set({
            state: "cancelled",
            decided_at: now,
            decided_by: by.subject.slice(0, 255),
            channel: by.channel.slice(0, 32),
            reason: why,
          })
          .where("incident_id", "=", inc.id)
          .where("state", "=", "pending")
          .execute();
        await appendEvent(
          trx,
          store.dialect,
          {
            type: "approval.cancelled",
            incidentId: inc.id,
            actor: by.actor,
            channel: by.channel,
            reason: why,
            data: { approvals: pending.length, approvalIds: pending.map((p) => p.id), cause: "rebuild" },
            occurredAt: now,
          },
          now,
        );
      }
      const n = (await countRebuilds(trx, inc.id)) + 1;
      const fixing = await applyTransition(
        trx,
        store.dialect,
        inc,
        "rebuild",
        {
          actor: by.actor,
          channel: by.channel,
          reason: `rebuild ${n} of ${skill.name} on the current base, requested by ${who}${reason ? `: ${reason}` : ""} (${cause})`,
          data: { approvalId: a.id, pr: { number: a.pr_number, branch: a.pr_branch }, rebuild: n, cause },
        },
        now,
      );
      const closing = await queuePullRequestClose(trx, store.dialect, inc.id, why, by, now);
      const taskId = await queueFixTask(
        trx,
        store.dialect,
        fixing,
        skill,
        params,
        "before_merge",
        now,
        { pool: deps.fixPool, actor: by.actor, channel: by.channel },
        { rebuild: n },
      );
      return { incident: fixing, taskId, rebuild: n, closing };
    });
    deps.onEnqueued?.();
    // So the old pull request is closed by the time the answer comes; its job then finds it done.
    await deps.closeNow?.(result.closing);
    const approval = (await findApproval(store.db, { approvalId: a.id }))!;
    return { ...result, approval, cause };
  }

  return { rebuild };
}

/** Rebuilds so far of the incident: its `rebuild` transitions. */
async function countRebuilds(trx: Executor, incidentId: string): Promise<number> {
  const r = await trx
    .selectFrom("events")
    .select((eb) => eb.fn.countAll<number>().as("n"))
    .where("incident_id", "=", incidentId)
    .where("type", "=", "incident.fixing")
    .where("data", "like", '%"event":"rebuild"%')
    .executeTakeFirst();
  return Number(r?.n ?? 0);
}
