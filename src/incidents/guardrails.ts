import { appendEvent } from "../events/repo.ts";
import type { Store } from "../store/db.ts";
import type { IncidentRow } from "../store/schema.ts";
import { insertIfAbsent, type Executor } from "../store/sql.ts";
import type { Risk } from "../skills/schema.ts";
import { applyTransition } from "./service.ts";

// The limits every new fix passes (MAX_PRS_PER_HOUR/DAY, MAX_FIXES_PER_NAMESPACE). The check and
// the queueing of the fix are one transaction, serialized across control planes by a row lock, so
// a storm of alerts on several replicas cannot queue more fixes than the limits allow.

export type Guardrails = {
  dryRun: boolean;
  maxPrsPerHour: number;
  maxPrsPerDay: number;
  maxFixesPerNamespace: number;
  autoApproveMaxRisk: Risk;
  /** STUCK_AFTER: a `fixing`/`approved` incident with nothing in flight for this long holds no namespace slot. */
  stuckAfterMs?: number;
};

export const DEFAULT_STUCK_AFTER_MS = 10 * 60_000;
const FIX_BUDGET_KEY = "guardrail.fix_budget";
const FIX_KINDS = ["skill", "agent"];
const ENGINE = { actor: "pitcrew:analysis", channel: "engine" } as const;

/**
 * Serializes the transactions that may queue a fix. Call it first in the transaction, before any
 * read: on MySQL the row lock is taken before InnoDB fixes the transaction's snapshot, so the
 * counts that follow see every fix committed by whoever held the lock before. SQLite runs one
 * write transaction at a time already.
 */
export async function lockFixBudget(trx: Executor, dialect: Store["dialect"], now: number): Promise<void> {
  if (dialect !== "mysql") return;
  const lock = () =>
    trx.selectFrom("settings").select("key").where("key", "=", FIX_BUDGET_KEY).forUpdate().executeTakeFirst();
  if (await lock()) return;
  // The migration creates the row; a database restored without it gets it back here.
  await insertIfAbsent(trx, dialect, "settings", {
    key: FIX_BUDGET_KEY,
    value: "{}",
    updated_by: "pitcrew:guardrails",
    updated_at: now,
  });
  await lock();
}

/**
 * Pull requests that fixes opened since `since` (one per task, from `task.pr_opened` events, by
 * the time Pitcrew recorded them), plus fix tasks still queued or running that may open one. A fix
 * task that failed before opening a pull request uses up nothing.
 */
export async function countPullRequests(trx: Executor, since: number): Promise<number> {
  const opened = await trx
    .selectFrom("events")
    .innerJoin("tasks", "tasks.id", "events.task_id")
    .select((eb) => eb.fn.count<number>("events.task_id").distinct().as("n"))
    .where("events.type", "=", "task.pr_opened")
    .where("events.recorded_at", ">=", since)
    .where("tasks.kind", "in", FIX_KINDS)
    .executeTakeFirstOrThrow();
  const pending = await trx
    .selectFrom("tasks")
    .select((eb) => eb.fn.countAll<number>().as("n"))
    .where("tasks.kind", "in", FIX_KINDS)
    .where("tasks.state", "in", ["queued", "running"])
    .where(({ not, exists, selectFrom }) =>
      not(
        exists(
          selectFrom("events")
            .select("events.seq")
            .whereRef("events.task_id", "=", "tasks.id")
            .where("events.type", "=", "task.pr_opened")
            .where("events.recorded_at", ">=", since),
        ),
      ),
    )
    .executeTakeFirstOrThrow();
  return Number(opened.n) + Number(pending.n);
}

/**
 * Fixes under way in a namespace: incidents with a pull request awaiting approval or a fix being
 * verified, and those `fixing` or `approved` whose work is really in flight (a queued or running
 * task, or still within STUCK_AFTER). A stranded fix holds no slot.
 */
export async function countFixesInNamespace(
  trx: Executor,
  namespace: string,
  except: string,
  now: number,
  stuckAfterMs: number,
): Promise<number> {
  const cutoff = now - stuckAfterMs;
  const r = await trx
    .selectFrom("incidents")
    .select((eb) => eb.fn.countAll<number>().as("n"))
    .where("namespace", "=", namespace)
    .where("id", "!=", except)
    .where((eb) =>
      eb.or([
        eb("state", "in", ["proposed", "verifying"]),
        eb.and([
          eb("state", "in", ["fixing", "approved"]),
          eb.or([
            eb("state_since", ">", cutoff),
            eb.exists(
              eb
                .selectFrom("tasks")
                .select("tasks.id")
                .whereRef("tasks.incident_id", "=", "incidents.id")
                .where("tasks.state", "in", ["queued", "running"]),
            ),
          ]),
        ]),
      ]),
    )
    .executeTakeFirstOrThrow();
  return Number(r.n);
}

export async function guardrailEvent(
  trx: Executor,
  dialect: Store["dialect"],
  inc: IncidentRow,
  name: string,
  reason: string,
  now: number,
  data: Record<string, unknown> = {},
) {
  await appendEvent(
    trx,
    dialect,
    { type: `guardrail.${name}`, incidentId: inc.id, ...ENGINE, reason, data, occurredAt: now },
    now,
  );
}

/**
 * The rate and namespace limits a new fix passes. When one stops it, its event is written and the
 * incident escalated, and the answer is true. The caller has taken lockFixBudget first.
 */
export async function limitsStop(
  trx: Executor,
  dialect: Store["dialect"],
  g: Guardrails,
  inc: IncidentRow,
  t: number,
): Promise<boolean> {
  const stop = async (name: string, why: string, reason: string, data: Record<string, unknown>): Promise<true> => {
    await guardrailEvent(trx, dialect, inc, name, why, t, data);
    await applyTransition(trx, dialect, inc, "escalate", { ...ENGINE, reason }, t);
    return true;
  };
  const hour = await countPullRequests(trx, t - 3_600_000);
  if (hour >= g.maxPrsPerHour) {
    const why = `${hour} pull requests opened or under way in the last hour (MAX_PRS_PER_HOUR ${g.maxPrsPerHour})`;
    return stop("max_prs_per_hour", why, "hourly pull request limit reached", { count: hour });
  }
  const day = await countPullRequests(trx, t - 86_400_000);
  if (day >= g.maxPrsPerDay) {
    const why = `${day} pull requests opened or under way in the last day (MAX_PRS_PER_DAY ${g.maxPrsPerDay})`;
    return stop("max_prs_per_day", why, "daily pull request limit reached", { count: day });
  }
  if (!inc.namespace) return false;
  const busy = await countFixesInNamespace(trx, inc.namespace, inc.id, t, g.stuckAfterMs ?? DEFAULT_STUCK_AFTER_MS);
  if (busy < g.maxFixesPerNamespace) return false;
  return stop(
    "namespace_busy",
    `${busy} fixes already under way in ${inc.namespace} (MAX_FIXES_PER_NAMESPACE ${g.maxFixesPerNamespace})`,
    `too many fixes under way in ${inc.namespace}`,
    { count: busy, namespace: inc.namespace },
  );
}
