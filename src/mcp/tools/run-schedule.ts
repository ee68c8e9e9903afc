import { z } from "zod";
import { defineTool } from "../tool.ts";
import { mcpActor } from "../views.ts";
import { schedulesOf } from "../schedule-views.ts";

export const runSchedule = defineTool({
  name: "run_schedule",
  title: "Run a schedule now",
  description:
    "Records a run of the schedule now, outside its cron times: its task is queued (or its skill run), unless overlap: skip finds the previous run still active, which is recorded as a skip.",
  scope: "write",
  input: { name: z.string().min(1).max(63).describe("Schedule name.") },
  output: {
    state: z.enum(["fired", "skipped", "failed"]).describe("What happened to the run."),
    task_id: z.string().nullable().describe("The run's task, when it fired."),
    reason: z.string().nullable().describe("Why it was skipped or failed."),
  },
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
  async handler(args, { principal, deps }) {
    const r = await schedulesOf(deps).scheduler.runNow(args.name, mcpActor(principal));
    return {
      summary: `${args.name}: ${r.state}${r.taskId ? ` (task ${r.taskId})` : ""}${r.reason ? `: ${r.reason}` : ""}`,
      data: { state: r.state, task_id: r.taskId, reason: r.reason },
    };
  },
});
