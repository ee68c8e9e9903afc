import { z } from "zod";
import { defineTool } from "../tool.ts";
import { invalid, notFound } from "../../shared/errors.ts";
import { getTask } from "../../tasks/repo.ts";
import { getIncident } from "../../incidents/repo.ts";
import { EventView, eventView } from "../views.ts";

export const getLatestEvent = defineTool({
  name: "get_latest_event",
  title: "Get the latest event",
  description:
    "The newest event of a task or incident, how old it is, and whether the task looks stale: running, with nothing heard for more than three heartbeat intervals.",
  scope: "read",
  input: {
    task_id: z.string().max(40).optional().describe("A task (give task_id or incident_id)."),
    incident_id: z.string().max(40).optional().describe("An incident (give task_id or incident_id)."),
  },
  output: {
    event: EventView.nullable().describe("The newest event, or null when there is none."),
    age_seconds: z.number().nullable().describe("Seconds since it happened."),
    state: z.string().describe("The task's or incident's current state."),
    stale: z
      .boolean()
      .describe("True when the task is running and its last event is older than 3 × the heartbeat interval."),
    stale_after_seconds: z.number().describe("The staleness threshold used."),
  },
  annotations: { readOnlyHint: true, openWorldHint: false },
  async handler(args, { deps }) {
    if (!args.task_id === !args.incident_id)
      throw invalid("event.scope_required", "give exactly one of task_id or incident_id");
    const db = deps.store.db;
    let state: string;
    if (args.task_id) {
      const t = await getTask(db, args.task_id);
      if (!t) throw notFound("task.not_found", `task ${args.task_id} does not exist`);
      state = t.state;
    } else {
      const i = await getIncident(db, args.incident_id!);
      if (!i) throw notFound("incident.not_found", `incident ${args.incident_id} does not exist`);
      state = i.state;
    }
    let q = db.selectFrom("events").selectAll();
    q = args.task_id ? q.where("task_id", "=", args.task_id) : q.where("incident_id", "=", args.incident_id!);
    const row = await q.orderBy("seq", "desc").limit(1).executeTakeFirst();
    const now = deps.now();
    const age = row ? Math.max(0, (now - Number(row.occurred_at)) / 1000) : null;
    const thresholdMs = 3 * deps.config.runner.heartbeatMs;
    const stale = !!args.task_id && state === "running" && (row ? now - Number(row.occurred_at) > thresholdMs : true);
    const what = args.task_id ? `task ${args.task_id}` : `incident ${args.incident_id}`;
    return {
      summary: row
        ? `${what} (${state}): ${row.type} ${Math.round(age!)}s ago${stale ? " — looks stale" : ""}`
        : `${what} (${state}) has no events`,
      data: {
        event: row ? eventView(row) : null,
        age_seconds: age,
        state,
        stale,
        stale_after_seconds: thresholdMs / 1000,
      },
    };
  },
});
