import { z } from "zod";
import { parseDuration } from "../shared/duration.ts";
import { isAppError } from "../shared/errors.ts";
import { TaskRequest } from "../tasks/request.ts";
import { checkCron } from "./next-run.ts";

// A schedule (DESIGN §8): a cron expression in a time zone, and what to run — a task (the fields of
// `submit_task`) or an inline skill (probe, drift, remote http) with its parameters. The same shape
// comes from `schedules/*.yaml` and from the MCP tools.

export const ScheduleName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "lowercase letters, digits and dashes, up to 63");

const Duration = z.string().refine((s) => parseDuration(s) !== undefined, "expected a duration like 30s, 5m, 1h");

export const ScheduleSpec = z
  .object({
    name: ScheduleName,
    description: z.string().max(2000).optional(),
    cron: z.string().min(1).max(128),
    timezone: z.string().min(1).max(64).default("UTC"),
    enabled: z.boolean().default(true),
    /** skip: do not fire while the previous run's task is still queued or running (the skip is recorded). */
    overlap: z.enum(["skip", "allow"]).default("skip"),
    /** After the control planes were down: skip the missed runs, or fire the latest once (counting the missed). */
    catch_up: z.enum(["skip", "once"]).default("skip"),
    /** Each run is delayed by a fixed-per-run amount below this, the same on every replica. */
    jitter: Duration.optional(),
    task: TaskRequest.optional(),
    skill: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{0,62}$/)
      .optional(),
    params: z.record(z.string(), z.unknown()).optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    if ((s.task === undefined) === (s.skill === undefined))
      ctx.addIssue({ code: "custom", message: "give exactly one of task or skill", path: [] });
    if (s.params !== undefined && s.skill === undefined)
      ctx.addIssue({ code: "custom", message: "params go with skill", path: ["params"] });
    try {
      checkCron(s.cron, s.timezone);
    } catch (err) {
      const message = isAppError(err) ? err.message : String(err);
      ctx.addIssue({
        code: "custom",
        message,
        path: [isAppError(err) && err.code === "schedule.bad_timezone" ? "timezone" : "cron"],
      });
    }
  });
export type ScheduleSpec = z.infer<typeof ScheduleSpec>;

/** What a run does, as stored on the schedule (`task_template`). */
export type RunTemplate = { task: TaskRequest } | { skill: string; params: Record<string, unknown> };

export function templateOf(s: Pick<ScheduleSpec, "task" | "skill" | "params">): RunTemplate {
  return s.task ? { task: s.task } : { skill: s.skill!, params: s.params ?? {} };
}
