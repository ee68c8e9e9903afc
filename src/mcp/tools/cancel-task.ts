import { z } from "zod";
import { defineTool } from "../tool.ts";
import { conflict, notFound } from "../../shared/errors.ts";
import { getTask } from "../../tasks/repo.ts";
import { cancelQueuedTask, requestTaskCancel } from "../task-actions.ts";
import { mcpActor, TaskView, taskView } from "../views.ts";

export const cancelTask = defineTool({
  name: "cancel_task",
  title: "Cancel a task",
  description:
    "Cancels a task. A queued task is cancelled at once. A running task is asked to stop: its runner aborts it and reports task.cancelled (watch get_task). Cancelling a cancelled task again succeeds and changes nothing; a task that succeeded or failed cannot be cancelled.",
  scope: "write",
  input: {
    task_id: z.string().min(1).max(40).describe("Task id (tsk_…)."),
    reason: z.string().max(1000).optional().describe("Why, recorded in the timeline."),
  },
  output: {
    task: TaskView.describe("The task after the request."),
    outcome: z
      .enum(["cancelled", "cancel_requested"])
      .describe(
        "cancelled: it is cancelled (now, or it already was); cancel_requested: it is running and its runner was told to stop.",
      ),
  },
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  async handler(args, { principal, deps }) {
    const { store } = deps;
    const by = mcpActor(principal);
    const reason = args.reason ?? `cancelled by ${principal.subject}`;
    const now = deps.now();
    const task = await getTask(store.db, args.task_id);
    if (!task) throw notFound("task.not_found", `task ${args.task_id} does not exist`);
    if (task.state === "queued") {
      const done = await store.db
        .transaction()
        .execute((trx) => cancelQueuedTask(trx, store.dialect, task, by, reason, now));
      if (done) {
        // The relay sets the task's cancel marker: a runner that gets the message reports it cancelled without running it.
        deps.kick();
        const after = (await getTask(store.db, task.id))!;
        return { summary: `task ${task.id} cancelled`, data: { task: taskView(after), outcome: "cancelled" as const } };
      }
    }
    const current = (await getTask(store.db, task.id))!;
    // A repeat (a retried call, or two callers) gets the same answer, without a second event.
    if (current.state === "cancelled")
      return {
        summary: `task ${task.id} was already cancelled`,
        data: { task: taskView(current), outcome: "cancelled" as const },
      };
    if (current.state !== "running" && current.state !== "queued")
      throw conflict(
        "task.finished",
        `task ${task.id} already ${current.state}; only a queued or running task can be cancelled`,
      );
    await store.db.transaction().execute((trx) => requestTaskCancel(trx, store.dialect, current, by, reason, now));
    deps.kick();
    return {
      summary: `asked the runner${current.runner_id ? ` ${current.runner_id}` : ""} to stop task ${task.id}; it reports task.cancelled when it has`,
      data: { task: taskView(current), outcome: "cancel_requested" as const },
    };
  },
});
