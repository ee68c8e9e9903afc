import { z } from "zod";
import { defineTool } from "../tool.ts";
import { invalid } from "../../shared/errors.ts";
import { listEvents as queryEvents } from "../../events/repo.ts";
import { cursorIn, EventView, eventView, limitIn, nextCursorOut } from "../views.ts";

export const listEvents = defineTool({
  name: "list_events",
  title: "List events",
  description:
    "The timeline of a task or an incident, oldest first (who did what, through what, why). Paginated by sequence: pass next_cursor back as cursor to read on; to poll for new events, pass the last seq seen as cursor.",
  scope: "read",
  input: {
    task_id: z.string().max(40).optional().describe("Events of this task (give task_id or incident_id)."),
    incident_id: z.string().max(40).optional().describe("Events of this incident (give task_id or incident_id)."),
    type: z.string().max(64).optional().describe("Only events of this type, e.g. task.progress."),
    cursor: cursorIn,
    limit: limitIn(500, 100),
  },
  output: {
    events: z.array(EventView).describe("Events, oldest first."),
    next_cursor: nextCursorOut,
  },
  annotations: { readOnlyHint: true, openWorldHint: false },
  async handler(args, { deps }) {
    if (!args.task_id && !args.incident_id) throw invalid("event.scope_required", "give task_id or incident_id");
    let afterSeq: number | undefined;
    if (args.cursor !== undefined) {
      afterSeq = Number(args.cursor);
      if (!Number.isSafeInteger(afterSeq) || afterSeq < 0)
        throw invalid("event.bad_cursor", "cursor: expected the next_cursor of an earlier call of this tool");
    }
    const rows = await queryEvents(deps.store.db, {
      taskId: args.task_id,
      incidentId: args.incident_id,
      type: args.type,
      afterSeq,
      limit: args.limit,
    });
    // To poll for newer events after the last page, pass the seq of the last event seen as cursor.
    const next = rows.length === args.limit ? String(rows[rows.length - 1]!.seq) : null;
    return {
      summary: `${rows.length} event(s)${next ? "; more with next_cursor" : ""}`,
      data: { events: rows.map(eventView), next_cursor: next },
    };
  },
});
