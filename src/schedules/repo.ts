import type { Selectable } from "kysely";
import type { Executor } from "../store/sql.ts";
import type { ScheduleRunsTable, SchedulesTable } from "../store/schema.ts";
import { parseDuration } from "../shared/duration.ts";
import { newId } from "../shared/ids.ts";
import { nextRunAt } from "./next-run.ts";
import { templateOf, type RunTemplate, type ScheduleSpec } from "./schema.ts";

export type ScheduleRow = Selectable<SchedulesTable>;
export type ScheduleRunRow = Selectable<ScheduleRunsTable>;

export const getScheduleByName = (db: Executor, name: string): Promise<ScheduleRow | undefined> =>
  db.selectFrom("schedules").selectAll().where("name", "=", name).executeTakeFirst();

export const listSchedules = (db: Executor): Promise<ScheduleRow[]> =>
  db.selectFrom("schedules").selectAll().orderBy("name").execute();

export function templateOfRow(s: Pick<ScheduleRow, "task_template">): RunTemplate {
  return JSON.parse(s.task_template) as RunTemplate;
}

/** The columns a spec sets; `next_run_at` from `now` when the schedule is (re-)enabled or its timing changed. */
export function specColumns(
  spec: ScheduleSpec,
  now: number,
): Omit<ScheduleRow, "id" | "source" | "origin" | "last_run_at" | "created_at"> {
  return {
    name: spec.name,
    description: spec.description ?? null,
    cron: spec.cron,
    timezone: spec.timezone,
    enabled: spec.enabled ? 1 : 0,
    overlap: spec.overlap,
    catch_up: spec.catch_up,
    jitter_ms: spec.jitter ? parseDuration(spec.jitter)! : 0,
    task_template: JSON.stringify(templateOf(spec)),
    next_run_at: spec.enabled ? nextRunAt(spec.cron, spec.timezone, now) : null,
    updated_at: now,
  };
}

/** The spec a row holds (for the MCP tools' views and for comparing with a file). */
export function specOfRow(r: ScheduleRow): ScheduleSpec {
  const t = templateOfRow(r);
  return {
    name: r.name,
    ...(r.description ? { description: r.description } : {}),
    cron: r.cron,
    timezone: r.timezone,
    enabled: r.enabled === 1,
    overlap: r.overlap as ScheduleSpec["overlap"],
    catch_up: r.catch_up as ScheduleSpec["catch_up"],
    ...(Number(r.jitter_ms) > 0 ? { jitter: `${Number(r.jitter_ms)}ms` } : {}),
    ...("task" in t ? { task: t.task } : { skill: t.skill, params: t.params }),
  };
}

/** Same timing and the same work: a sync leaves such a schedule as it is. */
export function sameSpec(r: ScheduleRow, spec: ScheduleSpec, now: number): boolean {
  const key = (
    c: Pick<
      ScheduleRow,
      "description" | "cron" | "timezone" | "enabled" | "overlap" | "catch_up" | "jitter_ms" | "task_template"
    >,
  ) =>
    JSON.stringify([
      c.description ?? null,
      c.cron,
      c.timezone,
      Number(c.enabled),
      c.overlap,
      c.catch_up,
      Number(c.jitter_ms),
      c.task_template,
    ]);
  return key(r) === key(specColumns(spec, now));
}

export async function insertSchedule(
  db: Executor,
  spec: ScheduleSpec,
  source: "file" | "mcp",
  origin: string,
  now: number,
): Promise<ScheduleRow> {
  const row: ScheduleRow = {
    id: newId("sch", now),
    ...specColumns(spec, now),
    source,
    origin: origin.slice(0, 512),
    last_run_at: null,
    created_at: now,
  };
  await db.insertInto("schedules").values(row).execute();
  return row;
}

export async function recentRuns(
  db: Executor,
  scheduleId: string,
  limit = 20,
): Promise<Array<ScheduleRunRow & { task_state: string | null }>> {
  return db
    .selectFrom("schedule_runs")
    .leftJoin("tasks", "tasks.id", "schedule_runs.task_id")
    .selectAll("schedule_runs")
    .select("tasks.state as task_state")
    .where("schedule_runs.schedule_id", "=", scheduleId)
    .orderBy("schedule_runs.scheduled_for", "desc")
    .limit(limit)
    .execute();
}
