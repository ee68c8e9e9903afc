import { z } from "zod";
import { defineTool } from "../tool.ts";
import { conflict, notFound } from "../../shared/errors.ts";
import { getTask } from "../../tasks/repo.ts";
import { mcpActor, TaskView, taskView } from "../views.ts";

export const retryTask = defineTool({
  name: "retry_task",
  title: "Retry a task",
  description:
    "Queues a new task with the same kind, pool and payload as a failed or cancelled one; the new payload carries retry_of with the old task's id.",
  scope: "write",
  input: { task_id: z.string().min(1).max(40).describe("The failed or cancelled task (tsk_…).") },
  output: {
    task: TaskView.describe("The new task."),
    retry_of: z.string().describe("The task it retries."),
  },
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
  async handler(args, { principal, deps }) {
    const old = await getTask(deps.store.db, args.task_id);
    if (!old) throw notFound("task.not_found", `task ${args.task_id} does not exist`);
    if (old.state !== "failed" && old.state !== "cancelled")
      throw conflict(
        "task.not_retryable",
        `task ${old.id} is ${old.state}; only failed or cancelled tasks can be retried`,
      );
    const by = mcpActor(principal);
    const payload = { ...(JSON.parse(old.payload) as Record<string, unknown>), retry_of: old.id };
    const { task } = await deps.tasks.create({
      kind: old.kind,
      pool: old.pool,
      payload,
      incidentId: old.incident_id,
      createdBy: by.actor,
      channel: by.channel,
    });
    deps.kick();
    return { summary: `queued ${task.id} to retry ${old.id}`, data: { task: taskView(task), retry_of: old.id } };
  },
});
