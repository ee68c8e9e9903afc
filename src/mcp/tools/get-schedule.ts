import { z } from "zod";
import { defineTool } from "../tool.ts";
import { RunView, runView, schedulesOf, ScheduleView, scheduleView } from "../schedule-views.ts";

export const getSchedule = defineTool({
  name: "get_schedule",
  title: "Get a schedule",
  description: "One schedule with its recent runs (fired, skipped or failed, with their tasks' states), newest first.",
  scope: "read",
  input: {
    name: z.string().min(1).max(63).describe("Schedule name."),
    runs: z.number().int().min(1).max(200).default(20).describe("How many recent runs (default 20)."),
  },
  output: {
    schedule: ScheduleView.describe("The schedule."),
    runs: z.array(RunView).describe("Recent runs, newest first."),
  },
  annotations: { readOnlyHint: true, openWorldHint: false },
  async handler(args, { deps }) {
    const { service } = schedulesOf(deps);
    const s = await service.get(args.name);
    const runs = await service.runs(s, args.runs);
    return {
      summary: `${s.name}: ${s.cron} (${s.timezone})${s.enabled ? "" : ", disabled"}; ${runs.length} recent run(s)`,
      data: { schedule: scheduleView(s), runs: runs.map(runView) },
    };
  },
});
