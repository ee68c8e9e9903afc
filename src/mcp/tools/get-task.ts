import { z } from "zod";
import { defineTool } from "../tool.ts";
import { notFound } from "../../shared/errors.ts";
import { getTask as loadTask } from "../../tasks/repo.ts";
import { TaskView, taskView } from "../views.ts";

export const getTask = defineTool({
  name: "get_task",
  title: "Get a task",
  description: "Returns one task: state, payload, result or error, runner and times.",
  scope: "read",
  input: { task_id: z.string().min(1).max(40).describe("Task id (tsk_…).") },
  output: { task: TaskView.describe("The task.") },
  annotations: { readOnlyHint: true, openWorldHint: false },
  async handler(args, { deps }) {
    const task = await loadTask(deps.store.db, args.task_id);
    if (!task) throw notFound("task.not_found", `task ${args.task_id} does not exist`);
    return { summary: `task ${task.id} (${task.kind}) is ${task.state}`, data: { task: taskView(task) } };
  },
});
