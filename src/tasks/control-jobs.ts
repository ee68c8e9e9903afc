import { TaskMessage } from "../bus/jobs.ts";
import type { Delivery, Subscription, TaskQueue } from "../bus/port.ts";
import { backoffMs } from "../shared/backoff.ts";
import { errorMessage, isAppError } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import type { Metrics } from "../shared/metrics.ts";
import type { Store } from "../store/db.ts";
import type { Executor } from "../store/sql.ts";
import { enqueueTask } from "./service.ts";
import { updateTaskIfActive } from "./repo.ts";

// The control plane's own jobs (pool `control`): analysing an incident, merging an approved pull
// request, closing a pull request whose incident closed without it. They travel through the outbox
// like runner tasks, so they survive a crash and run once per commit; one consumer dispatches them
// by kind and keeps the task row's state (running → succeeded | failed), so every kind gets the same
// bookkeeping, redelivery and give-up rules.

export const CONTROL_POOL = "control";

export type ControlJobContext = { taskId: string; incidentId: string | null; attempt: number };

export type ControlJob = {
  /** Does the work; the result is stored on the task. Throws to retry (AppError.retryable decides). */
  run(payload: Record<string, unknown>, job: ControlJobContext): Promise<unknown>;
  /** Runs once, when the job fails for good, in the transaction that marks its task failed. */
  onGiveUp?(
    trx: Executor,
    payload: Record<string, unknown>,
    error: unknown,
    job: ControlJobContext,
    now: number,
  ): Promise<void>;
};

export type ControlJobsDeps = {
  store: Store;
  queue: TaskQueue;
  log: Logger;
  now: () => number;
  onDone?: () => void;
  metrics?: Pick<Metrics, "queueRedeliveries">;
};

export function createControlJobs(deps: ControlJobsDeps, jobs: Record<string, ControlJob>) {
  const { store } = deps;
  const log = deps.log.child({ component: "control-jobs" });

  async function handle(d: Delivery): Promise<void> {
    const msg = TaskMessage.safeParse(d.data);
    if (!msg.success) {
      log.error({ subject: d.subject }, "invalid control job terminated");
      d.term("invalid control job");
      return;
    }
    const { taskId, kind, incidentId, payload } = msg.data;
    const job = jobs[kind];
    const ctx: ControlJobContext = { taskId, incidentId, attempt: d.attempt };
    if (!job) {
      const t = deps.now();
      await updateTaskIfActive(store.db, taskId, {
        state: "failed",
        error: `no handler for control job kind "${kind}"`,
        finished_at: t,
        updated_at: t,
      });
      log.error({ taskId, kind }, "control job of an unknown kind failed");
      d.term("unknown kind");
      return;
    }
    const started = deps.now();
    if (
      !(await updateTaskIfActive(store.db, taskId, {
        state: "running",
        attempts: d.attempt,
        started_at: started,
        updated_at: started,
        runner_id: "control-plane",
      }))
    ) {
      // Cancelled, or already done (a redelivery after an ack that did not reach the bus).
      await d.ack();
      return;
    }
    if (d.attempt > 1) deps.metrics?.queueRedeliveries.inc({ pool: CONTROL_POOL });
    const keepAlive = setInterval(() => d.working(), 5000);
    try {
      const result = await job.run(payload, ctx);
      const t = deps.now();
      await updateTaskIfActive(store.db, taskId, {
        state: "succeeded",
        result: JSON.stringify(result ?? null),
        finished_at: t,
        updated_at: t,
      });
      deps.onDone?.();
      await d.ack();
    } catch (err) {
      const retryable = isAppError(err) ? err.retryable : true;
      if (retryable && d.attempt < d.maxDeliver) {
        log.warn(
          { err: { message: errorMessage(err) }, taskId, kind, incidentId, attempt: d.attempt },
          "control job failed; will retry",
        );
        d.nak(backoffMs(d.attempt, { baseMs: 1000, maxMs: 30_000 }));
        return;
      }
      log.error({ err, taskId, kind, incidentId }, "control job failed for good");
      await store.db
        .transaction()
        .execute(async (trx) => {
          const t = deps.now();
          await updateTaskIfActive(trx, taskId, {
            state: "failed",
            error: errorMessage(err).slice(0, 2000),
            finished_at: t,
            updated_at: t,
          });
          await job.onGiveUp?.(trx, payload, err, ctx, t);
        })
        .catch((e) =>
          log.error({ err: { message: errorMessage(e) }, taskId, kind }, "could not record the failed control job"),
        );
      deps.onDone?.();
      d.term(`${kind} failed`);
    } finally {
      clearInterval(keepAlive);
    }
  }

  return {
    handle,
    start(concurrency: number): Subscription {
      return deps.queue.consumeTasks(CONTROL_POOL, { concurrency }, handle);
    },
  };
}

/**
 * Queues a control job through the outbox in the caller's transaction. `key` makes it once per
 * cause: the same key returns no second job (the caller's transaction fails on the unique key, so
 * pass a key only where a repeat is a bug, or check first).
 */
export function enqueueControlJob(
  trx: Executor,
  dialect: Store["dialect"],
  job: { kind: string; payload: Record<string, unknown>; incidentId?: string | null; key?: string },
  by: { actor: string; channel: string },
  now: number,
): Promise<string> {
  return enqueueTask(
    trx,
    dialect,
    {
      kind: job.kind,
      pool: CONTROL_POOL,
      payload: job.payload,
      incidentId: job.incidentId ?? null,
      createdBy: by.actor,
      channel: by.channel,
      idempotencyKey: job.key,
    },
    now,
  );
}
