import type { Store } from "../store/db.ts";
import type { Executor } from "../store/sql.ts";
import type { TaskRow } from "../store/schema.ts";
import { addToOutbox } from "../bus/outbox.ts";
import { appendEvent } from "../events/repo.ts";
import { incidentFixHook } from "../incidents/fix-outcome.ts";

// A cancel is durable: the bus's `cancelled` marker is queued through the outbox in the cancelling
// transaction, so a runner that was not listening when the notice went out (or that gets the task
// later) reads the marker before it starts the task or opens its pull request.

/**
 * Cancels a task that no runner has started, in the caller's transaction: the state guard is in the
 * WHERE clause, so a task a runner picked up meanwhile is left alone (false). A cancelled fix moves
 * its incident on exactly as a runner's cancel would (the same terminal hook).
 */
export async function cancelQueuedTask(
  trx: Executor,
  dialect: Store["dialect"],
  task: TaskRow,
  by: { actor: string; channel: string },
  reason: string,
  now: number,
): Promise<boolean> {
  const res = await trx
    .updateTable("tasks")
    .set({ state: "cancelled", error: reason, finished_at: now, updated_at: now })
    .where("id", "=", task.id)
    .where("state", "=", "queued")
    .executeTakeFirst();
  if (Number(res.numUpdatedRows) === 0) return false;
  await addToOutbox(trx, { topic: "control", taskId: task.id, mark: "cancelled" }, now);
  await appendEvent(
    trx,
    dialect,
    {
      type: "task.cancelled",
      taskId: task.id,
      incidentId: task.incident_id,
      ...by,
      reason,
      data: { from: "queued" },
      occurredAt: now,
    },
    now,
  );
  await incidentFixHook(dialect)(
    trx,
    { ...task, state: "cancelled", error: reason, finished_at: now, updated_at: now },
    "cancelled",
    reason,
    now,
  );
  return true;
}

/**
 * Asks the runner of a running task to stop, in the caller's transaction: the marker also stops a
 * redelivery of the task and any runner before its pull request. The runner reports task.cancelled.
 */
export async function requestTaskCancel(
  trx: Executor,
  dialect: Store["dialect"],
  task: TaskRow,
  by: { actor: string; channel: string },
  reason: string,
  now: number,
): Promise<void> {
  await addToOutbox(trx, { topic: "control", taskId: task.id, mark: "cancelled" }, now);
  await appendEvent(
    trx,
    dialect,
    { type: "task.cancel_requested", taskId: task.id, incidentId: task.incident_id, ...by, reason, occurredAt: now },
    now,
  );
}
