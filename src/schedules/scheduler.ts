import type { Config } from "../config/load.ts";
import { appendEvent } from "../events/repo.ts";
import { conflict, errorMessage, invalid, isAppError, notFound } from "../shared/errors.ts";
import { newId } from "../shared/ids.ts";
import type { Logger } from "../shared/logger.ts";
import type { Store } from "../store/db.ts";
import { insertIfAbsent, type Executor } from "../store/sql.ts";
import { inlineUnavailable, isInline, type InlineDeps } from "../skills/inline.ts";
import type { Skill } from "../skills/schema.ts";
import { enqueueControlJob } from "../tasks/control-jobs.ts";
import { buildTaskRequest } from "../tasks/request.ts";
import { enqueueTask } from "../tasks/service.ts";
import { jitterFor, lastRunAtOrBefore, nextRunAt, runsBetween } from "./next-run.ts";
import { getScheduleByName, templateOfRow, type ScheduleRow } from "./repo.ts";

// Firing schedules exactly once, whichever control planes run: every replica looks for schedules
// whose next run is due; a run is one row of `schedule_runs`, unique on (schedule, scheduled_for),
// inserted in the same transaction that moves `next_run_at` on (compare-and-swap) and queues the
// run's task through the outbox — the replica whose insert wins fires it, the others find the row
// and do nothing. Runs missed while no control plane ran are skipped (`catch_up: skip`, recorded)
// or fired once (`catch_up: once`, with how many were missed). `overlap: skip` records a skipped
// run while the previous run's task is still queued or running.

export const SCHEDULE_SKILL_JOB = "schedule.skill";

/** A run whose time passed less than this ago is on time; older ones were missed. */
const GRACE_MS = 60_000;
/** Missed runs are counted up to this many (computing each run time costs about half a millisecond). */
const MISSED_CAP = 1000;

export type SchedulerDeps = {
  store: Store;
  log: Logger;
  now: () => number;
  skills: () => Skill[];
  config: Pick<Config, "agents" | "runner" | "gitops" | "allowedRepos">;
  /** What inline skills need here: a skill that cannot run with it (Argo CD not configured) is skipped, not failed. */
  inline?: Pick<InlineDeps, "argocd">;
  /** Wakes the outbox relay after a run queued work. */
  onQueued?: () => void;
  tickMs?: number;
};

export type RunOutcome = {
  state: "fired" | "skipped" | "failed";
  scheduledFor: number;
  taskId: string | null;
  reason: string | null;
  missed: number;
};

/** A run that is not worth firing here (not a failure): recorded as skipped with the reason. */
class SkipRun extends Error {}

const SCHEDULER = (name: string) => ({ actor: `schedule:${name}`, channel: "schedule" });

export function createScheduler(deps: SchedulerDeps) {
  const { store } = deps;
  const log = deps.log.child({ component: "scheduler" });
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;

  /** The previous run's task, when it is still queued or running. */
  async function activeRun(trx: Executor, scheduleId: string): Promise<string | undefined> {
    const r = await trx
      .selectFrom("schedule_runs")
      .innerJoin("tasks", "tasks.id", "schedule_runs.task_id")
      .select("tasks.id")
      .where("schedule_runs.schedule_id", "=", scheduleId)
      .where("tasks.state", "in", ["queued", "running"])
      .limit(1)
      .executeTakeFirst();
    return r?.id;
  }

  /** Queues the run's work (a task, or an inline skill as a control job). Throws an AppError when it cannot. */
  async function queueWork(trx: Executor, s: ScheduleRow, scheduledFor: number, now: number): Promise<string> {
    const t = templateOfRow(s);
    const by = SCHEDULER(s.name);
    const key = `schedule:${s.id}:${scheduledFor}`;
    if ("task" in t) {
      const { kind, pool, payload } = buildTaskRequest(t.task, deps.config);
      return enqueueTask(
        trx,
        store.dialect,
        {
          kind,
          pool,
          payload: { ...payload, schedule: s.name },
          createdBy: by.actor,
          channel: by.channel,
          idempotencyKey: key,
        },
        now,
      );
    }
    const skill = deps.skills().find((k) => k.name === t.skill);
    if (!skill) throw invalid("schedule.skill_not_found", `skill ${t.skill} is not loaded`);
    if (!isInline(skill))
      throw invalid(
        "schedule.skill_not_inline",
        `skill ${t.skill} changes the GitOps repository for an incident; a schedule can run inline skills (probe, drift, http) or a task`,
      );
    const unavailable = inlineUnavailable(skill, deps.inline ?? {});
    if (unavailable) throw new SkipRun(`skill ${t.skill} cannot run here: ${unavailable}`);
    return enqueueControlJob(
      trx,
      store.dialect,
      { kind: SCHEDULE_SKILL_JOB, payload: { schedule: s.name, skill: t.skill, params: t.params }, key },
      by,
      now,
    );
  }

  /** Records one run (fired, skipped or failed) in the caller's transaction; false when another replica recorded it first. */
  async function record(
    trx: Executor,
    s: ScheduleRow,
    scheduledFor: number,
    missed: number,
    now: number,
    opts: { skip?: string; catchUp?: boolean } = {},
  ): Promise<RunOutcome | undefined> {
    const skip = opts.skip;
    const id = newId("srn", now);
    const inserted = await insertIfAbsent(trx, store.dialect, "schedule_runs", {
      id,
      schedule_id: s.id,
      scheduled_for: scheduledFor,
      task_id: null,
      state: "pending",
      created_at: now,
      reason: null,
      missed,
      fired_at: null,
    });
    if (!inserted) return undefined;
    let out: RunOutcome;
    const busy = skip ? undefined : s.overlap === "skip" ? await activeRun(trx, s.id) : undefined;
    if (skip || busy) {
      out = {
        state: "skipped",
        scheduledFor,
        taskId: null,
        reason: skip ?? `the previous run's task ${busy} is still active (overlap: skip)`,
        missed,
      };
    } else {
      try {
        const why = opts.catchUp
          ? `catch-up: one run for ${missed} missed while no control plane was running`
          : missed
            ? `${missed} earlier run(s) missed`
            : null;
        out = { state: "fired", scheduledFor, taskId: await queueWork(trx, s, scheduledFor, now), reason: why, missed };
      } catch (err) {
        if (err instanceof SkipRun) out = { state: "skipped", scheduledFor, taskId: null, reason: err.message, missed };
        else if (isAppError(err))
          out = { state: "failed", scheduledFor, taskId: null, reason: `${err.message} (${err.code})`, missed };
        else throw err;
      }
    }
    await trx
      .updateTable("schedule_runs")
      .set({ state: out.state, task_id: out.taskId, reason: out.reason, fired_at: out.state === "fired" ? now : null })
      .where("id", "=", id)
      .execute();
    await trx.updateTable("schedules").set({ last_run_at: now }).where("id", "=", s.id).execute();
    await appendEvent(
      trx,
      store.dialect,
      {
        type: `schedule.${out.state}`,
        taskId: out.taskId,
        ...SCHEDULER(s.name),
        reason: out.reason,
        data: { schedule: s.name, scheduleId: s.id, runId: id, scheduledFor, missed },
        occurredAt: now,
      },
      now,
    );
    return out;
  }

  /** Fires what is due of one schedule read at `now`; undefined when another replica got there first. */
  async function fireDue(s: ScheduleRow, now: number): Promise<RunOutcome | undefined> {
    const nominal = Number(s.next_run_at);
    if (now < nominal + jitterFor(s.name, nominal, Number(s.jitter_ms))) return undefined;
    // How many runs were due (counted up to MISSED_CAP) and the latest of them.
    const due = runsBetween(s.cron, s.timezone, nominal - 1, now, MISSED_CAP);
    const latest = (due.capped ? lastRunAtOrBefore(s.cron, s.timezone, now, nominal) : due.last) ?? nominal;
    const onTime = now - latest <= GRACE_MS;
    const missed = onTime ? due.count - 1 : due.count;
    const next = nextRunAt(s.cron, s.timezone, Math.max(now, latest));
    return store.db.transaction().execute(async (trx) => {
      // Compare-and-swap: a replica that moved it first, or a change through MCP, wins.
      const moved = await trx
        .updateTable("schedules")
        .set({ next_run_at: next, updated_at: now })
        .where("id", "=", s.id)
        .where("next_run_at", "=", nominal)
        .where("enabled", "=", 1)
        .executeTakeFirst();
      if (Number(moved.numUpdatedRows) === 0) return undefined;
      if (onTime) return record(trx, s, latest, missed, now);
      if (s.catch_up === "once") return record(trx, s, latest, missed, now, { catchUp: true });
      return record(trx, s, latest, missed, now, {
        skip: `${missed} run(s) missed while no control plane was running (catch_up: skip)`,
      });
    });
  }

  async function tick(): Promise<number> {
    const now = deps.now();
    const due = await store.db
      .selectFrom("schedules")
      .selectAll()
      .where("enabled", "=", 1)
      .where("next_run_at", "<=", now)
      .orderBy("next_run_at")
      .limit(100)
      .execute();
    let n = 0;
    for (const s of due) {
      try {
        const out = await fireDue(s, now);
        if (!out) continue;
        n += 1;
        if (out.state === "fired")
          log.info(
            {
              schedule: s.name,
              taskId: out.taskId,
              scheduledFor: new Date(out.scheduledFor).toISOString(),
              missed: out.missed,
            },
            "schedule fired",
          );
        else log.warn({ schedule: s.name, state: out.state, reason: out.reason }, "schedule run not fired");
      } catch (err) {
        log.warn(
          { err: { message: errorMessage(err) }, schedule: s.name },
          "schedule run failed; retried at the next tick",
        );
      }
    }
    if (n > 0) deps.onQueued?.();
    return n;
  }

  /** `run_schedule`: a run now, outside the cron times (overlap still applies). */
  async function runNow(name: string, by: { actor: string; channel: string }): Promise<RunOutcome> {
    const now = deps.now();
    const out = await store.db.transaction().execute(async (trx) => {
      const s = await getScheduleByName(trx, name);
      if (!s) throw notFound("schedule.not_found", `schedule ${name} does not exist`);
      const r = await record(trx, s, now, 0, now);
      if (!r) throw conflict("schedule.busy", `schedule ${name} already ran at this instant`);
      await appendEvent(
        trx,
        store.dialect,
        {
          type: "schedule.run_requested",
          taskId: r.taskId,
          ...by,
          reason: `run of ${name} requested`,
          data: { schedule: name },
          occurredAt: now,
        },
        now,
      );
      return r;
    });
    deps.onQueued?.();
    return out;
  }

  return {
    tick,
    runNow,
    start() {
      const loop = () => {
        running = tick()
          .catch((err) => log.warn({ err: { message: errorMessage(err) } }, "scheduler tick failed"))
          .finally(() => {
            running = undefined;
            if (timer) timer = setTimeout(loop, deps.tickMs ?? 500);
          });
      };
      timer = setTimeout(loop, 0);
    },
    async stop() {
      clearTimeout(timer);
      timer = undefined;
      await running;
    },
  };
}

export type Scheduler = ReturnType<typeof createScheduler>;
