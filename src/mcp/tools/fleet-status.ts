import { z } from "zod";
import { defineTool } from "../tool.ts";
import { countTasksByState, listTasks } from "../../tasks/repo.ts";
import { listRunners } from "../../fleet/repo.ts";
import { iso, RunnerOut, runnerView } from "../views.ts";

export const fleetStatus = defineTool({
  name: "fleet_status",
  title: "Fleet status",
  description: "Tasks by state, live and stale runners, and the running tasks with their runner and last progress.",
  scope: "read",
  input: {},
  output: {
    tasks_by_state: z.record(z.string(), z.number().int()).describe("Task counts by state."),
    live_runners: z.array(RunnerOut).describe("Runners heard from within two heartbeat intervals."),
    stale_runners: z.array(RunnerOut).describe("Runners not heard from for longer."),
    running: z
      .array(
        z.object({
          task_id: z.string().describe("Task id."),
          kind: z.string().describe("Task kind."),
          incident_id: z.string().nullable().describe("Its incident."),
          runner_id: z.string().nullable().describe("Runner working on it."),
          runner_stale: z.boolean().describe("True when that runner has gone quiet."),
          started_at: z.string().nullable().describe("ISO time it started."),
          last_event_at: z.string().nullable().describe("ISO time of its last event."),
          percent: z.number().nullable().describe("Last reported percent."),
          message: z.string().nullable().describe("Last progress message."),
        }),
      )
      .describe("Running tasks (at most 100), newest first."),
  },
  annotations: { readOnlyHint: true, openWorldHint: false },
  async handler(_args, { deps }) {
    const db = deps.store.db;
    const counts = await countTasksByState(db);
    const tasks_by_state = { queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0, ...counts };
    const runners = (await listRunners(db, deps.now(), deps.config.runner.heartbeatMs)).map(runnerView);
    const staleIds = new Set(runners.filter((r) => r.stale).map((r) => r.id));
    const rows = await listTasks(db, { state: "running", limit: 100 });
    const running = [];
    for (const t of rows) {
      const p = await db
        .selectFrom("events")
        .select(["data"])
        .where("task_id", "=", t.id)
        .where("type", "=", "task.progress")
        .orderBy("seq", "desc")
        .limit(1)
        .executeTakeFirst();
      const d = p ? (JSON.parse(p.data) as { percent?: number; message?: string }) : {};
      running.push({
        task_id: t.id,
        kind: t.kind,
        incident_id: t.incident_id,
        runner_id: t.runner_id,
        runner_stale: t.runner_id ? staleIds.has(t.runner_id) : false,
        started_at: iso(t.started_at),
        last_event_at: iso(t.last_event_at),
        percent: typeof d.percent === "number" ? d.percent : null,
        message: typeof d.message === "string" ? d.message : null,
      });
    }
    const live = runners.filter((r) => !r.stale);
    const stale = runners.filter((r) => r.stale);
    return {
      summary: `${tasks_by_state.queued} queued, ${tasks_by_state.running} running; ${live.length} live runner(s), ${stale.length} stale`,
      data: { tasks_by_state, live_runners: live, stale_runners: stale, running },
    };
  },
});
