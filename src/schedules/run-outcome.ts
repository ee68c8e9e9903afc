import { appendEvent } from "../events/repo.ts";
import type { TerminalHook } from "../incidents/fix-outcome.ts";
import type { Store } from "../store/db.ts";
import type { Executor } from "../store/sql.ts";

// A scheduled run that failed is announced like a failed fix: a `schedule.run_failed` event on the
// run's task, which the notices (chat) and webhooks pick up. Runner tasks get it from the task's
// terminal hook (the event ingester, the reconciler); skill runs from their control job.

export const SCHEDULE_ACTOR_PREFIX = "schedule:";

export function recordRunFailed(
  trx: Executor,
  dialect: Store["dialect"],
  taskId: string,
  schedule: string,
  reason: string,
  now: number,
): Promise<boolean> {
  return appendEvent(
    trx,
    dialect,
    {
      type: "schedule.run_failed",
      taskId,
      actor: `${SCHEDULE_ACTOR_PREFIX}${schedule}`,
      channel: "schedule",
      reason: reason.slice(0, 2000),
      data: { schedule },
      occurredAt: now,
    },
    now,
  );
}

/** The terminal hook part for scheduled tasks: a failure is recorded as `schedule.run_failed`. */
export function scheduleRunHook(dialect: Store["dialect"]): TerminalHook {
  return async (trx, task, outcome, detail, now) => {
    if (outcome !== "failed" || !task.created_by.startsWith(SCHEDULE_ACTOR_PREFIX)) return;
    await recordRunFailed(
      trx,
      dialect,
      task.id,
      task.created_by.slice(SCHEDULE_ACTOR_PREFIX.length),
      detail ?? task.error ?? "failed",
      now,
    );
  };
}
