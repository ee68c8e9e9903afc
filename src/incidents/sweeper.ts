import { appendEvent } from "../events/repo.ts";
import { errorMessage } from "../shared/errors.ts";
import { formatDuration } from "../shared/duration.ts";
import type { Logger } from "../shared/logger.ts";
import type { Metrics } from "../shared/metrics.ts";
import type { Store } from "../store/db.ts";
import type { IncidentRow, TaskRow } from "../store/schema.ts";
import type { Executor } from "../store/sql.ts";
import { getPause } from "../system/settings.ts";
import { CONTROL_POOL } from "../tasks/control-jobs.ts";
import type { Skill } from "../skills/schema.ts";
import type { TaskOutcome, TerminalHook } from "./fix-outcome.ts";
import { inlinePlanOf, parsePlanRecord } from "./follow-up.ts";
import { queueAnalysis } from "./queueing.ts";
import { getIncident } from "./repo.ts";
import { applyTransition } from "./service.ts";

// No incident stays in a transient state. An incident `detected`, `analyzing` or `fixing` for
// longer than STUCK_AFTER whose work is no longer in flight (no queued task, no running task that
// still shows signs of life) was stranded: by a crash during a Claude call, a database cut, a job
// that gave up without being able to say so. The sweeper queues its work again — the analysis job
// resumes where the incident stands — up to SWEEP_MAX_RETRIES times, then escalates it with the
// reason. A runner fix whose task ended without moving the incident gets that outcome applied.
// Every action is a conditional update on the row the sweeper read (state, version, requeues),
// so several control planes can sweep at once.

export type SweepSettings = { stuckAfterMs: number; intervalMs: number; maxRetries: number };

export type SweeperDeps = {
  store: Store;
  log: Logger;
  now: () => number;
  skills: () => Skill[];
  settings: SweepSettings;
  /** Moves an incident on from its fix task's terminal state (the event ingester's hook). */
  onTerminal?: TerminalHook;
  /** Called after work was queued (kicks the outbox relay). */
  onQueued?: () => void;
  /**
   * Further sweeps, run on every tick after this one; each answers how many incidents it acted
   * on. The place for re-queueing the merges of `approved` incidents whose merge stopped.
   */
  extra?: Array<(now: number) => Promise<number>>;
  metrics?: Pick<Metrics, "incidentsStuck" | "sweeperActions">;
};

export type SweepResult = { requeued: number; escalated: number; applied: number; extra: number };

const SWEEPER = { actor: "pitcrew:sweeper", channel: "engine" } as const;
const TRANSIENT = ["detected", "analyzing", "fixing"];
const FIX_KINDS = ["skill", "agent"];
const BATCH = 100;
const MAX_BATCHES = 10;

type Action = "requeued" | "escalated" | "applied" | "raced";

export function createSweeper(deps: SweeperDeps) {
  const { store, settings } = deps;
  const log = deps.log.child({ component: "sweeper" });
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;

  /** Incidents past their deadline with nothing in flight, oldest first. */
  function stranded(now: number, after: { since: number; id: string } | undefined): Promise<IncidentRow[]> {
    const cutoff = now - settings.stuckAfterMs;
    let q = store.db
      .selectFrom("incidents")
      .selectAll()
      .where("state", "in", TRANSIENT)
      .where("state_since", "<=", cutoff)
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom("tasks")
              .select("tasks.id")
              .whereRef("tasks.incident_id", "=", "incidents.id")
              .where((t) =>
                t.or([
                  t("tasks.state", "=", "queued"),
                  // A control job that stopped updating its row for STUCK_AFTER died with its
                  // control plane or gave up without recording it; a runner's task is the bus's
                  // and the reconciler's to settle.
                  t.and([
                    t("tasks.state", "=", "running"),
                    t.or([t("tasks.pool", "!=", CONTROL_POOL), t("tasks.updated_at", ">", cutoff)]),
                  ]),
                ]),
              ),
          ),
        ),
      );
    if (after)
      q = q.where((eb) =>
        eb.or([
          eb("state_since", ">", after.since),
          eb.and([eb("state_since", "=", after.since), eb("id", ">", after.id)]),
        ]),
      );
    return q.orderBy("state_since").orderBy("id").limit(BATCH).execute();
  }

  /** What became of the incident's latest analysis job, for the escalation's reason. */
  async function lastJob(trx: Executor, incidentId: string, now: number): Promise<string> {
    const job = await trx
      .selectFrom("tasks")
      .selectAll()
      .where("incident_id", "=", incidentId)
      .where("kind", "=", "incident.analyze")
      .orderBy("id", "desc")
      .limit(1)
      .executeTakeFirst();
    if (!job) return "no analysis job was queued";
    if (job.state === "failed") return `its last job failed: ${(job.error ?? "no error recorded").slice(0, 300)}`;
    if (job.state === "succeeded") {
      const outcome = job.result ? (JSON.parse(job.result) as { outcome?: string }).outcome : undefined;
      return `its last job ended${outcome ? ` "${outcome}"` : ""} without moving the incident`;
    }
    if (job.state === "running")
      return `its last job stopped answering ${formatDuration(Math.max(0, now - Number(job.updated_at)))} ago`;
    return `its last job was ${job.state}`;
  }

  /** Queues the incident's analysis again (it resumes where the incident stands), or escalates after maxRetries. */
  async function requeue(row: IncidentRow, what: string, now: number): Promise<Action> {
    return store.db.transaction().execute(async (trx): Promise<Action> => {
      const inc = await getIncident(trx, row.id);
      if (!inc || inc.state !== row.state || inc.version !== row.version || inc.requeues !== row.requeues)
        return "raced";
      const attempt = inc.requeues + 1;
      if (inc.requeues >= settings.maxRetries) {
        const reason = `${what} did not finish after ${attempt} attempt${attempt === 1 ? "" : "s"}: ${await lastJob(trx, inc.id, now)}`;
        await applyTransition(
          trx,
          store.dialect,
          inc,
          "escalate",
          { ...SWEEPER, reason, data: { attempts: attempt } },
          now,
        );
        return "escalated";
      }
      const res = await trx
        .updateTable("incidents")
        .set({ requeues: attempt, state_since: now })
        .where("id", "=", inc.id)
        .where("version", "=", inc.version)
        .where("requeues", "=", inc.requeues)
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) === 0) return "raced";
      await queueAnalysis(trx, store.dialect, inc, SWEEPER, now, `sweep${attempt}`);
      await appendEvent(
        trx,
        store.dialect,
        {
          type: "incident.requeued",
          incidentId: inc.id,
          ...SWEEPER,
          reason: `${what} was not in flight for ${formatDuration(settings.stuckAfterMs)}; queued again (retry ${attempt} of ${settings.maxRetries})`,
          data: { state: inc.state, attempt, maxRetries: settings.maxRetries },
          occurredAt: now,
        },
        now,
      );
      return "requeued";
    });
  }

  /** A runner fix with nothing in flight: apply its task's outcome if it ended, else hand it to a person. */
  async function settleFix(row: IncidentRow, now: number): Promise<Action> {
    const skill = parsePlanRecord(row.plan)?.skill ?? "the fix";
    const escalate = (reason: string) =>
      store.db.transaction().execute(async (trx): Promise<Action> => {
        const inc = await getIncident(trx, row.id);
        if (inc?.state !== "fixing" || inc.version !== row.version) return "raced";
        await applyTransition(trx, store.dialect, inc, "escalate", { ...SWEEPER, reason }, now);
        return "escalated";
      });
    let task: TaskRow | undefined;
    try {
      const applied = await store.db.transaction().execute(async (trx): Promise<Action | undefined> => {
        const inc = await getIncident(trx, row.id);
        if (inc?.state !== "fixing" || inc.version !== row.version) return "raced";
        task = await trx
          .selectFrom("tasks")
          .selectAll()
          .where("incident_id", "=", inc.id)
          .where("kind", "in", FIX_KINDS)
          .orderBy("id", "desc")
          .limit(1)
          .executeTakeFirst();
        if (!task || !["succeeded", "failed", "cancelled"].includes(task.state) || !deps.onTerminal) return undefined;
        await deps.onTerminal(trx, task, task.state as TaskOutcome, task.error, now);
        const after = await getIncident(trx, inc.id);
        if (!after || after.version === inc.version) return undefined;
        const reason = `fix task ${task.id} ended ${task.state} but its outcome was never applied; applied now`;
        const data = { task: task.id, outcome: task.state, state: after.state };
        await appendEvent(
          trx,
          store.dialect,
          {
            type: "incident.recovered",
            incidentId: inc.id,
            taskId: task.id,
            ...SWEEPER,
            reason,
            data,
            occurredAt: now,
          },
          now,
        );
        return "applied";
      });
      if (applied) return applied;
    } catch (err) {
      log.warn({ err: { message: errorMessage(err) }, incidentId: row.id }, "could not apply the fix task's outcome");
    }
    const t = task as TaskRow | undefined;
    return escalate(
      !t
        ? `${skill} was fixing for ${formatDuration(settings.stuckAfterMs)} with no fix task`
        : ["succeeded", "failed", "cancelled"].includes(t.state)
          ? `fix task ${t.id} of ${skill} ended ${t.state} but the incident did not move on`
          : `fix task ${t.id} of ${skill} is ${t.state} but no longer in flight`,
    );
  }

  async function sweepOne(row: IncidentRow, now: number): Promise<Action> {
    if (row.state !== "fixing") return requeue(row, "analysis", now);
    const inline = inlinePlanOf(row.plan, deps.skills());
    return inline ? requeue(row, `the inline skill ${inline.skill ?? ""}`.trimEnd(), now) : settleFix(row, now);
  }

  /** One pass: stranded incidents (unless automation is paused), then the extra sweeps. */
  async function sweep(): Promise<SweepResult> {
    const now = deps.now();
    const result: SweepResult = { requeued: 0, escalated: 0, applied: 0, extra: 0 };
    if (!(await getPause(store.db)).paused) {
      let after: { since: number; id: string } | undefined;
      let stuck = 0;
      for (let i = 0; i < MAX_BATCHES; i++) {
        const rows = await stranded(now, after);
        stuck += rows.length;
        for (const row of rows) {
          try {
            const action = await sweepOne(row, now);
            if (action !== "raced") {
              result[action] += 1;
              deps.metrics?.sweeperActions.inc({ action });
            }
          } catch (err) {
            log.warn(
              { err: { message: errorMessage(err) }, incidentId: row.id },
              "could not sweep a stranded incident",
            );
          }
        }
        if (rows.length < BATCH) break;
        const last = rows[rows.length - 1]!;
        after = { since: Number(last.state_since), id: last.id };
      }
      deps.metrics?.incidentsStuck.set(stuck);
    }
    for (const f of deps.extra ?? []) {
      try {
        result.extra += await f(now);
      } catch (err) {
        log.warn({ err: { message: errorMessage(err) } }, "an extra sweep failed");
      }
    }
    if (result.requeued > 0) deps.onQueued?.();
    if (result.requeued + result.escalated + result.applied > 0) log.info(result, "stranded incidents swept");
    return result;
  }

  /** Runs one pass unless one is already running. */
  function tick(): Promise<unknown> {
    running ??= sweep()
      .catch((err) => log.warn({ err: { message: errorMessage(err) } }, "sweep failed"))
      .finally(() => (running = undefined));
    return running;
  }

  return {
    sweep,
    start() {
      timer = setInterval(() => void tick(), settings.intervalMs);
      timer.unref();
    },
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
