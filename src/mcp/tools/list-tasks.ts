import { z } from "zod";
import { defineTool } from "../tool.ts";
import { listTasks as queryTasks } from "../../tasks/repo.ts";
import { cursorIn, cursorOf, limitIn, nextCursorOut, TaskView, taskView } from "../views.ts";

export const listTasks = defineTool({
  name: "list_tasks",
  title: "List tasks",
  description:
    "Lists tasks, newest first, optionally by state or incident. Paginated: pass next_cursor back as cursor.",
  scope: "read",
  input: {
    state: z
      .enum(["queued", "running", "succeeded", "failed", "cancelled"])
      .optional()
      .describe("Only tasks in this state."),
    incident_id: z.string().max(40).optional().describe("Only tasks of this incident."),
    cursor: cursorIn,
    limit: limitIn(200, 50),
  },
  output: {
    tasks: z.array(TaskView).describe("Tasks, newest first."),
    next_cursor: nextCursorOut,
  },
  annotations: { readOnlyHint: true, openWorldHint: false },
  async handler(args, { deps }) {
    const rows = await queryTasks(deps.store.db, {
      state: args.state,
      incidentId: args.incident_id,
      afterId: cursorOf("task", args.cursor, "tsk"),
      limit: args.limit,
    });
    const next = rows.length === args.limit ? rows[rows.length - 1]!.id : null;
    return {
      summary: `${rows.length} task(s)${args.state ? ` ${args.state}` : ""}${next ? "; more with next_cursor" : ""}`,
      data: { tasks: rows.map(taskView), next_cursor: next },
    };
  },
});
