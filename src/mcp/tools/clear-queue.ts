import { z } from "zod";
import { defineTool } from "../tool.ts";
import { invalid } from "../../shared/errors.ts";
import { cancelQueuedTask } from "../task-actions.ts";
import { mcpActor } from "../views.ts";

export const clearQueue = defineTool({
  name: "clear_queue",
  title: "Clear the queue",
  description:
    "Cancels every queued task (optionally of one pool). Running tasks are not touched. Requires confirm: true.",
  scope: "admin",
  input: {
    confirm: z.boolean().describe("Must be true: this cancels every queued task."),
    pool: z.string().max(64).optional().describe("Only tasks queued to this pool."),
    reason: z.string().max(1000).optional().describe("Why, recorded on every cancelled task."),
  },
  output: {
    cancelled: z.number().int().describe("How many queued tasks were cancelled."),
    task_ids: z.array(z.string()).describe("The cancelled tasks."),
  },
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  async handler(args, { principal, deps }) {
    if (args.confirm !== true)
      throw invalid(
        "queue.confirm_required",
        "clear_queue cancels every queued task; call it again with confirm: true",
      );
    const { store } = deps;
    const by = mcpActor(principal);
    const reason = args.reason ?? `queue cleared by ${principal.subject}`;
    const now = deps.now();
    const ids = await store.db.transaction().execute(async (trx) => {
      let q = trx.selectFrom("tasks").selectAll().where("state", "=", "queued");
      if (args.pool) q = q.where("pool", "=", args.pool);
      const done: string[] = [];
      for (const task of await q.orderBy("id").execute()) {
        if (await cancelQueuedTask(trx, store.dialect, task, by, reason, now)) done.push(task.id);
      }
      return done;
    });
    // Each cancel queued its marker and notice through the outbox: runners that get a message
    // already on the bus see the marker and never start it.
    if (ids.length > 0) deps.kick();
    return { summary: `cancelled ${ids.length} queued task(s)`, data: { cancelled: ids.length, task_ids: ids } };
  },
});
