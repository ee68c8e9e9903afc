import type { TaskMessage } from "../bus/jobs.ts";
import type { TaskQueue } from "../bus/port.ts";
import type { Store } from "../store/db.ts";

/**
 * The in-process queue forgets everything on restart; the database does not. Re-queues every task
 * that is still queued or was running, in creation order. Ids double as message ids, so a task
 * that the outbox relay also publishes is queued once.
 */
export async function requeuePendingTasks(store: Store, queue: TaskQueue): Promise<number> {
  let count = 0;
  let after = "";
  for (;;) {
    const rows = await store.db
      .selectFrom("tasks")
      .select(["id", "kind", "pool", "incident_id", "payload", "created_at"])
      .where("state", "in", ["queued", "running"])
      .where("id", ">", after)
      .orderBy("id")
      .limit(500)
      .execute();
    if (rows.length === 0) return count;
    for (const r of rows) {
      const msg: TaskMessage = {
        v: 1,
        taskId: r.id,
        kind: r.kind,
        pool: r.pool,
        incidentId: r.incident_id,
        payload: JSON.parse(r.payload),
        createdAt: Number(r.created_at),
      };
      const { duplicate } = await queue.publishTask(r.pool, r.id, msg);
      if (!duplicate) count += 1;
    }
    after = rows[rows.length - 1]!.id;
  }
}
