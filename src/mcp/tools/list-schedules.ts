import { z } from "zod";
import { defineTool } from "../tool.ts";
import { cursorIn, cursorOf, limitIn, nextCursorOut } from "../views.ts";
import { schedulesOf, ScheduleView, scheduleView } from "../schedule-views.ts";

export const listSchedules = defineTool({
  name: "list_schedules",
  title: "List schedules",
  description:
    "Lists schedules by name: their cron, time zone, what a run does, where they came from (file or MCP) and the next run. Paginated: pass next_cursor back as cursor.",
  scope: "read",
  input: { cursor: cursorIn, limit: limitIn(200, 50) },
  output: { schedules: z.array(ScheduleView).describe("Schedules, by name."), next_cursor: nextCursorOut },
  annotations: { readOnlyHint: true, openWorldHint: false },
  async handler(args, { deps }) {
    const after = cursorOf("schedule", args.cursor, /^[a-z0-9][a-z0-9-]{0,62}$/);
    const all = (await schedulesOf(deps).service.list()).filter((s) => after === undefined || s.name > after);
    const page = all.slice(0, args.limit);
    const next = all.length > args.limit ? page[page.length - 1]!.name : null;
    return {
      summary: `${page.length} schedule(s)${next ? "; more with next_cursor" : ""}`,
      data: { schedules: page.map(scheduleView), next_cursor: next },
    };
  },
});
