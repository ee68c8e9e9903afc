import { z } from "zod";
import { defineTool } from "../tool.ts";
import { mcpActor } from "../views.ts";
import { ScheduleFields, schedulesOf, ScheduleView, scheduleView } from "../schedule-views.ts";

export const createSchedule = defineTool({
  name: "create_schedule",
  title: "Create a schedule",
  description:
    "Makes a schedule that queues a task (submit_task's fields) or runs an inline skill on a cron expression. Schedules made here are never pruned by a file sync.",
  scope: "write",
  input: {
    name: z.string().min(1).max(63).describe("Unique name: lowercase letters, digits and dashes."),
    ...ScheduleFields,
  },
  output: { schedule: ScheduleView.describe("The new schedule.") },
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  async handler(args, { principal, deps }) {
    const row = await schedulesOf(deps).service.create(JSON.parse(JSON.stringify(args)), mcpActor(principal));
    return {
      summary: `schedule ${row.name} created; next run ${row.next_run_at ? new Date(Number(row.next_run_at)).toISOString() : "none (disabled)"}`,
      data: { schedule: scheduleView(row) },
    };
  },
});
