import type { Executor } from "../store/sql.ts";
import { TERMINAL_TASK_STATES, type TaskRow, type TaskState, type TaskUpdate } from "../store/schema.ts";

export async function getTask(db: Executor, id: string): Promise<TaskRow | undefined> {
  return db.selectFrom("tasks").selectAll().where("id", "=", id).executeTakeFirst();
}

export type TaskFilter = { state?: TaskState; incidentId?: string; afterId?: string; limit?: number };

/** Newest first, paginated by id (ids are time-ordered): pass the last id as `afterId`. */
export async function listTasks(db: Executor, f: TaskFilter = {}): Promise<TaskRow[]> {
  let q = db.selectFrom("tasks").selectAll();
  if (f.state) q = q.where("state", "=", f.state);
  if (f.incidentId) q = q.where("incident_id", "=", f.incidentId);
  if (f.afterId) q = q.where("id", "<", f.afterId);
  return q
    .orderBy("id", "desc")
    .limit(Math.min(f.limit ?? 50, 500))
    .execute();
}

export async function countTasksByState(db: Executor): Promise<Record<string, number>> {
  const rows = await db
    .selectFrom("tasks")
    .select(["state", (eb) => eb.fn.countAll<number>().as("n")])
    .groupBy("state")
    .execute();
  return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
}

/**
 * Updates a task unless it is already terminal. Returns true when a row changed. The guard is in
 * the WHERE clause, so two writers racing cannot overwrite a terminal state.
 */
export async function updateTaskIfActive(db: Executor, id: string, set: TaskUpdate): Promise<boolean> {
  const res = await db
    .updateTable("tasks")
    .set(set)
    .where("id", "=", id)
    .where("state", "not in", [...TERMINAL_TASK_STATES])
    .executeTakeFirst();
  return Number(res.numUpdatedRows) > 0;
}
