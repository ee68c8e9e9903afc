import { z } from "zod";
import { unavailable } from "../shared/errors.ts";
import type { ScheduleRow, ScheduleRunRow } from "../schedules/repo.ts";
import { specOfRow } from "../schedules/repo.ts";
import type { McpDeps } from "./tool.ts";

// The schedule tools' shared views and the schedules part of the deps.

export const ScheduleView = z.object({
  name: z.string().describe("Schedule name."),
  description: z.string().nullable().describe("What it is for."),
  cron: z.string().describe("Cron expression (5 fields, 6 with seconds, or @hourly-style)."),
  timezone: z.string().describe("IANA time zone the expression is read in."),
  enabled: z.boolean().describe("Whether it fires."),
  overlap: z.enum(["skip", "allow"]).describe("skip: no run while the previous run's task is active."),
  catch_up: z.enum(["skip", "once"]).describe("Runs missed while no control plane ran: skipped, or one run for all."),
  jitter_ms: z.number().describe("Per-run delay bound, in ms."),
  run: z
    .object({
      task: z.record(z.string(), z.unknown()).optional().describe("The task a run queues: submit_task's fields."),
      skill: z.string().optional().describe("Or the inline skill a run runs."),
      params: z.record(z.string(), z.unknown()).optional().describe("That skill's parameters."),
    })
    .describe("What a run does: {task: {...submit_task fields}} or {skill, params}."),
  source: z
    .enum(["file", "mcp"])
    .describe("file: from SCHEDULES_DIR (a sync may update or prune it); mcp: made through MCP."),
  origin: z.string().describe("Its file, or who made it."),
  next_run_at: z.string().nullable().describe("ISO time of the next run (null when disabled)."),
  last_run_at: z.string().nullable().describe("ISO time it last recorded a run."),
});

export const RunView = z.object({
  scheduled_for: z.string().describe("ISO time the run was for."),
  state: z.string().describe("fired, skipped or failed."),
  reason: z.string().nullable().describe("Why it was skipped or failed, or what it caught up."),
  missed: z.number().describe("Runs missed before this one."),
  task_id: z.string().nullable().describe("The run's task."),
  task_state: z.string().nullable().describe("That task's state now."),
});

const iso = (ms: number | null) => (ms === null ? null : new Date(Number(ms)).toISOString());

export function scheduleView(r: ScheduleRow): z.infer<typeof ScheduleView> {
  const spec = specOfRow(r);
  return {
    name: r.name,
    description: r.description,
    cron: r.cron,
    timezone: r.timezone,
    enabled: r.enabled === 1,
    overlap: spec.overlap,
    catch_up: spec.catch_up,
    jitter_ms: Number(r.jitter_ms),
    run: spec.task ? { task: spec.task as Record<string, unknown> } : { skill: spec.skill, params: spec.params ?? {} },
    source: r.source as "file" | "mcp",
    origin: r.origin,
    next_run_at: iso(r.next_run_at),
    last_run_at: iso(r.last_run_at),
  };
}

export function runView(r: ScheduleRunRow & { task_state: string | null }): z.infer<typeof RunView> {
  return {
    scheduled_for: iso(r.scheduled_for)!,
    state: r.state,
    reason: r.reason,
    missed: Number(r.missed),
    task_id: r.task_id,
    task_state: r.task_state,
  };
}

/** The schedules service and scheduler, or a clear error where this server runs without them. */
export function schedulesOf(deps: McpDeps): NonNullable<McpDeps["schedules"]> {
  if (!deps.schedules) throw unavailable("schedules.not_running", "schedules are not available on this server");
  return deps.schedules;
}

/** The fields a schedule is made or changed with (the task fields are submit_task's). */
export const ScheduleFields = {
  description: z.string().max(2000).optional().describe("What it is for."),
  cron: z
    .string()
    .min(1)
    .max(128)
    .describe('Cron expression, e.g. "0 3 * * *", "*/10 * * * * *" (with seconds) or "@hourly".'),
  timezone: z.string().max(64).optional().describe("IANA time zone (default UTC)."),
  enabled: z.boolean().optional().describe("Whether it fires (default true)."),
  overlap: z
    .enum(["skip", "allow"])
    .optional()
    .describe("skip (default): no run while the previous run's task is active."),
  catch_up: z
    .enum(["skip", "once"])
    .optional()
    .describe("skip (default): missed runs are skipped; once: one run for all of them."),
  jitter: z.string().max(20).optional().describe('Bound of a per-run delay, e.g. "5m".'),
  task: z
    .record(z.string(), z.unknown())
    .optional()
    .describe(
      "A task to queue: the fields of submit_task (kind, prompt, repo_url, ref, agent, model, timeout, pool, …).",
    ),
  skill: z.string().max(63).optional().describe("Or: an inline skill to run (probe, drift, http), with params."),
  params: z.record(z.string(), z.unknown()).optional().describe("The skill's parameters."),
};
