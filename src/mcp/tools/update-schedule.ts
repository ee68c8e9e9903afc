import { z } from "zod";
import { defineTool } from "../tool.ts";
import { mcpActor } from "../views.ts";
import { ScheduleFields, schedulesOf, ScheduleView, scheduleView } from "../schedule-views.ts";

export const updateSchedule = defineTool({
  name: "update_schedule",
  title: "Update a schedule",
  description:
    "Changes the given fields of a schedule (e.g. enabled: false to stop it). A file schedule changed here is set back by the next sync of its file.",
  scope: "write",
  input: {
    name: z.string().min(1).max(63).describe("Schedule name."),
    ...ScheduleFields,
    cron: ScheduleFields.cron.optional(),
  },
  output: { schedule: ScheduleView.describe("The schedule afterwards.") },
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  async handler(args, { principal, deps }) {
    const { name, ...changes } = JSON.parse(JSON.stringify(args)) as { name: string } & Record<string, unknown>;
    const row = await schedulesOf(deps).service.update(name, changes, mcpActor(principal));
    return { summary: `schedule ${row.name} updated`, data: { schedule: scheduleView(row) } };
  },
});
