import type { Logger } from "../shared/logger.ts";
import type { Store } from "../store/db.ts";
import type { Executor } from "../store/sql.ts";
import type { IncidentRow } from "../store/schema.ts";
import { errorMessage } from "../shared/errors.ts";
import { formatDuration, parseDuration } from "../shared/duration.ts";
import type { Skill } from "../skills/schema.ts";
import { appendEvent } from "../events/repo.ts";
import { enqueueTask } from "../tasks/service.ts";
import { getIncident } from "./repo.ts";
import { applyTransition } from "./service.ts";
import { expireDueApprovals } from "../approvals/service.ts";
import { mergeActionOf } from "../approvals/repo.ts";

const DEFAULT_WINDOW_MS = 15 * 60_000;
const ENGINE = { actor: "pitcrew:verifier", channel: "engine" };

export type VerifierDeps = {
  store: Store;
  log: Logger;
  now: () => number;
  skills: () => Skill[];
  intervalMs?: number;
  /** The runner pool revert tasks go to (RUNNER_POOL). */
  fixPool?: string;
  /** Counts one resolve's time to resolve (the metrics histogram), once per resolve across replicas. */
  observeResolved?: (seconds: number) => void;
  onEnqueued?: () => void;
};

/**
 * Watches incidents in `verifying`: the alert resolving closes them (the intake does that); one
 * still open after its skill's `verify.alert_resolves_within` (default 15m) is escalated. With
 * `verify.on_failure: revert`, Pitcrew also queues the revert of its own merged change in the same
 * transaction (a fix task on `pitcrew/<incident>-revert` whose pull request needs approval), so an
 * unverified change is never left in place silently. Each tick also counts the resolves not yet
 * observed in the time-to-resolve histogram.
 */
export function createVerifier(deps: VerifierDeps) {
  const { store } = deps;
  const log = deps.log.child({ component: "verifier" });
  let timer: NodeJS.Timeout | undefined;

  const skillOf = (plan: string | null) => {
    const name = plan ? (JSON.parse(plan) as { skill?: string }).skill : undefined;
    return deps.skills().find((s) => s.name === name);
  };

  function windowFor(plan: string | null): number {
    const within = skillOf(plan)?.verify.alert_resolves_within;
    return (within && parseDuration(within)) || DEFAULT_WINDOW_MS;
  }

  async function tick(): Promise<number> {
    const now = deps.now();
    const rows = await store.db
      .selectFrom("incidents")
      .select(["id", "plan"])
      .where("state", "=", "verifying")
      .orderBy("id")
      .limit(500)
      .execute();
    let escalated = 0;
    for (const r of rows) {
      const since = await store.db
        .selectFrom("events")
        .select("occurred_at")
        .where("incident_id", "=", r.id)
        .where("type", "=", "incident.verifying")
        .orderBy("seq", "desc")
        .limit(1)
        .executeTakeFirst();
      const start = since ? Number(since.occurred_at) : now;
      const window = windowFor(r.plan);
      if (now - start < window) continue;
      const done = await store.db.transaction().execute(async (trx) => {
        const inc = await getIncident(trx, r.id);
        if (inc?.state !== "verifying") return false;
        const revert = skillOf(inc.plan)?.verify.on_failure === "revert" ? await revertable(trx, inc, start) : null;
        const still = `the alert still fires ${formatDuration(window)} after the fix`;
        const reason = revert
          ? `${still}; reverting pull request #${revert.number} (the revert needs approval)`
          : still;
        const escalatedInc = await applyTransition(
          trx,
          store.dialect,
          inc,
          "verify.failed",
          { ...ENGINE, reason, data: { window: formatDuration(window), ...(revert ? { revert } : {}) } },
          now,
        );
        if (revert) await queueRevert(trx, escalatedInc, revert, still, now);
        return true;
      });
      // The lifecycle log says "incident escalated" with the reason, once the change committed.
      if (done) escalated += 1;
    }
    await observeResolved();
    return escalated;
  }

  /**
   * Pitcrew's merged change the incident is verifying, when it can be reverted: the merge that
   * started this verification (an inline fix verifies without one), and not itself a revert.
   */
  async function revertable(
    trx: Executor,
    inc: IncidentRow,
    verifyingSince: number,
  ): Promise<{ approvalId: string; number: number; sha: string; skill: string | null } | null> {
    const a = await trx
      .selectFrom("approvals")
      .selectAll()
      .where("incident_id", "=", inc.id)
      .where("merged_at", "is not", null)
      .orderBy("merged_at", "desc")
      .limit(1)
      .executeTakeFirst();
    // The merge is recorded in the transaction that starts verifying: the same instant.
    if (!a?.merge_sha || a.pr_number === null || Math.abs(Number(a.merged_at) - verifyingSince) > 60_000) return null;
    const skill = mergeActionOf(a)?.skill ?? null;
    if (skill === "revert") return null;
    return { approvalId: a.id, number: a.pr_number, sha: a.merge_sha, skill };
  }

  async function queueRevert(
    trx: Executor,
    inc: IncidentRow,
    revert: { approvalId: string; number: number; sha: string; skill: string | null },
    why: string,
    now: number,
  ): Promise<void> {
    const plan = inc.plan ? (JSON.parse(inc.plan) as { risk?: string }) : {};
    const taskId = await enqueueTask(
      trx,
      store.dialect,
      {
        kind: "skill",
        pool: deps.fixPool ?? "default",
        payload: {
          incidentId: inc.id,
          skill: "revert",
          title: inc.title,
          params: {},
          approval: "before_merge",
          risk: plan.risk ?? "unknown",
          rationale: why,
          action: { revert: { sha: revert.sha, number: revert.number, why } },
          revertOf: { approvalId: revert.approvalId, skill: revert.skill },
        },
        incidentId: inc.id,
        createdBy: ENGINE.actor,
        channel: ENGINE.channel,
        idempotencyKey: `revert:${inc.id}:${revert.approvalId}`,
      },
      now,
    );
    await appendEvent(
      trx,
      store.dialect,
      {
        type: "revert.queued",
        incidentId: inc.id,
        taskId,
        ...ENGINE,
        reason: `reverting pull request #${revert.number} (merged ${revert.sha.slice(0, 7)}): ${why}; the skill asks for a revert when its fix is not verified`,
        data: { taskId, pr: revert.number, sha: revert.sha, approvalId: revert.approvalId },
        occurredAt: now,
      },
      now,
    );
    deps.onEnqueued?.();
  }

  /**
   * Resolves not yet counted in the time-to-resolve histogram: each is claimed with a conditional
   * update, so with several control planes every resolve is observed once, by one of them.
   */
  async function observeResolved(): Promise<number> {
    if (!deps.observeResolved) return 0;
    const rows = await store.db
      .selectFrom("incidents")
      .select(["id", "time_to_resolve_ms"])
      .where("ttr_observed_at", "is", null)
      .where("time_to_resolve_ms", "is not", null)
      .limit(1000)
      .execute();
    let n = 0;
    const now = deps.now();
    for (const r of rows) {
      const res = await store.db
        .updateTable("incidents")
        .set({ ttr_observed_at: now })
        .where("id", "=", r.id)
        .where("ttr_observed_at", "is", null)
        .where("time_to_resolve_ms", "=", Number(r.time_to_resolve_ms))
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) === 0) continue;
      deps.observeResolved(Number(r.time_to_resolve_ms) / 1000);
      n += 1;
    }
    return n;
  }

  /** Pending approvals past their deadline expire: their incident goes to a human, their pull request is closed. */
  const expireApprovals = (): Promise<number> => expireDueApprovals(store, deps.now());

  return {
    tick,
    expireApprovals,
    observeResolved,
    start() {
      timer = setInterval(
        () =>
          Promise.all([tick(), expireApprovals()]).catch((err) =>
            log.warn({ err: { message: errorMessage(err) } }, "verification check failed"),
          ),
        deps.intervalMs ?? 30_000,
      );
      timer.unref();
    },
    stop() {
      clearInterval(timer);
    },
  };
}
