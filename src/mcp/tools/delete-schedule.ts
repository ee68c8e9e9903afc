import { z } from "zod";
import { defineTool } from "../tool.ts";
import { mcpActor } from "../views.ts";
import { schedulesOf, ScheduleView, scheduleView } from "../schedule-views.ts";

export const deleteSchedule = defineTool({
  name: "delete_schedule",
  title: "Delete a schedule",
  description:
    "Deletes a schedule and its run history. A schedule from a file comes back at the next sync unless its file is removed.",
  scope: "write",
  input: { name: z.string().min(1).max(63).describe("Schedule name.") },
  output: { schedule: ScheduleView.describe("The schedule that was deleted.") },
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
  async handler(args, { principal, deps }) {
    const row = await schedulesOf(deps).service.remove(args.name, mcpActor(principal));
    return { summary: `schedule ${row.name} deleted`, data: { schedule: scheduleView(row) } };
  },
});
