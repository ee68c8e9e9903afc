import { z } from "zod";
import { defineTool } from "../tool.ts";
import { notFound } from "../../shared/errors.ts";
import { getTask } from "../../tasks/repo.ts";
import { iso } from "../views.ts";

export const getTaskProgress = defineTool({
  name: "get_task_progress",
  title: "Get a task's progress",
  description: "A task's state and the last progress its runner reported (percent and message).",
  scope: "read",
  input: { task_id: z.string().min(1).max(40).describe("Task id (tsk_…).") },
  output: {
    task_id: z.string().describe("Task id."),
    state: z.enum(["queued", "running", "succeeded", "failed", "cancelled"]).describe("Task state."),
    runner_id: z.string().nullable().describe("Runner working on it."),
    percent: z.number().nullable().describe("Last reported percent done (0–100), or null."),
    message: z.string().nullable().describe("Last progress message, or null."),
    progress_at: z.string().nullable().describe("ISO time of the last progress report."),
    started_at: z.string().nullable().describe("ISO time it started."),
    finished_at: z.string().nullable().describe("ISO time it finished."),
  },
  annotations: { readOnlyHint: true, openWorldHint: false },
  async handler(args, { deps }) {
    const db = deps.store.db;
    const task = await getTask(db, args.task_id);
    if (!task) throw notFound("task.not_found", `task ${args.task_id} does not exist`);
    const last = await db
      .selectFrom("events")
      .select(["data", "occurred_at"])
      .where("task_id", "=", task.id)
      .where("type", "=", "task.progress")
      .orderBy("seq", "desc")
      .limit(1)
      .executeTakeFirst();
    const p = last ? (JSON.parse(last.data) as { message?: string; percent?: number }) : {};
    const percent = typeof p.percent === "number" ? p.percent : null;
    const message = typeof p.message === "string" ? p.message : null;
    const progress = percent !== null ? `${percent}%` : "no progress reported";
    return {
      summary: `task ${task.id} is ${task.state}: ${progress}${message ? ` (${message})` : ""}`,
      data: {
        task_id: task.id,
        state: task.state,
        runner_id: task.runner_id,
        percent,
        message,
        progress_at: iso(last?.occurred_at),
        started_at: iso(task.started_at),
        finished_at: iso(task.finished_at),
      },
    };
  },
});
