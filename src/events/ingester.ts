import type { Logger } from "../shared/logger.ts";
import type { Store } from "../store/db.ts";
import type { TaskRow, TaskUpdate } from "../store/schema.ts";
import type { Metrics } from "../shared/metrics.ts";
import { BusEvent, TERMINAL_EVENT_TYPES, type TaskEvent } from "../bus/jobs.ts";
import type { Delivery, Subscription, TaskQueue } from "../bus/port.ts";
import { errorMessage } from "../shared/errors.ts";
import { recordHeartbeat } from "../fleet/repo.ts";
import { getTask, updateTaskIfActive } from "../tasks/repo.ts";
import { appendEvent } from "./repo.ts";
import type { TerminalHook } from "../incidents/fix-outcome.ts";
import { createGroupCommit } from "../shared/group-commit.ts";
import type { Executor } from "../store/sql.ts";

// Consumes PITCREW_EVENTS: stores each event once (by id) and moves its task on, in one
// transaction, and acks only after that commit. A redelivered event finds its row and changes
// nothing. A terminal task state is never overwritten by a late or repeated event.

export type IngestResult = "stored" | "duplicate" | "invalid";
type Applied = { result: IngestResult; applied?: { task: TaskRow; ended: boolean } };

/**
 * A task started again (delivery 2 or later) is a redelivery of its pool's message; a task's end
 * observes its duration from its first start, both times as its runner reported them (this works
 * for in-process and remote runners alike, once per event, after the commit).
 */
function countTaskEvent(
  m: Pick<Metrics, "taskDuration" | "queueRedeliveries">,
  e: TaskEvent,
  task: TaskRow,
  ended: boolean,
): void {
  if (e.type === "task.started" && e.attempt > 1) m.queueRedeliveries.inc({ pool: task.pool });
  const startedAt = task.started_at === null ? null : Number(task.started_at);
  if (!ended || startedAt === null) return;
  const outcome = e.type === "task.succeeded" ? "succeeded" : e.type === "task.failed" ? "failed" : "cancelled";
  m.taskDuration.observe({ kind: task.kind, outcome }, Math.max(0, e.at - startedAt) / 1000);
}

export function createEventIngester(deps: {
  store: Store;
  queue: TaskQueue;
  log: Logger;
  now: () => number;
  onTerminal?: TerminalHook;
  metrics?: Pick<Metrics, "taskDuration" | "queueRedeliveries">;
}) {
  const { store } = deps;
  const log = deps.log.child({ component: "event-ingester" });

  /**
   * Stores one event and moves its task on, in the caller's transaction. `applied`: what the event
   * did once committed, for the metrics (its task as it was, and whether it ended it).
   */
  async function applyIn(
    trx: Executor,
    e: TaskEvent,
    recordedAt: number,
    known?: Map<string, TaskRow>,
  ): Promise<Applied> {
    // A batch reads its tasks in one query (`known`), and keeps each as its events leave it.
    const task = known ? known.get(e.taskId) : await getTask(trx, e.taskId);
    const { id, type, taskId, runnerId, attempt, at, ...rest } = e;
    const inserted = await appendEvent(
      trx,
      store.dialect,
      {
        id,
        type,
        taskId,
        incidentId: task?.incident_id ?? null,
        actor: `runner:${runnerId}`,
        channel: "runner",
        reason: e.type === "task.failed" ? e.error.slice(0, 2000) : e.type === "task.cancelled" ? e.reason : null,
        data: { attempt, ...rest },
        occurredAt: at,
      },
      recordedAt,
    );
    if (!inserted) return { result: "duplicate" };
    if (!task) {
      log.warn({ taskId, type }, "event for an unknown task stored without a task update");
      return { result: "stored" };
    }
    const set: TaskUpdate = { updated_at: recordedAt, last_event_at: at, runner_id: runnerId };
    if (e.type === "task.started") {
      Object.assign(set, {
        state: "running",
        attempts: Math.max(task.attempts, attempt),
        started_at: task.started_at ?? at,
      });
    } else if (TERMINAL_EVENT_TYPES.has(e.type)) {
      Object.assign(set, { finished_at: at, attempts: Math.max(task.attempts, attempt) });
      if (e.type === "task.succeeded")
        Object.assign(set, { state: "succeeded", result: JSON.stringify(e.result ?? null) });
      if (e.type === "task.failed") Object.assign(set, { state: "failed", error: e.error });
      if (e.type === "task.cancelled") Object.assign(set, { state: "cancelled", error: e.reason });
    }
    const changed = await updateTaskIfActive(trx, taskId, set);
    if (changed) known?.set(taskId, { ...task, ...set } as TaskRow);
    if (changed && TERMINAL_EVENT_TYPES.has(e.type) && deps.onTerminal) {
      const outcome = e.type === "task.succeeded" ? "succeeded" : e.type === "task.failed" ? "failed" : "cancelled";
      const detail = e.type === "task.failed" ? e.error : e.type === "task.cancelled" ? e.reason : null;
      await deps.onTerminal(trx, { ...task, ...set } as typeof task, outcome, detail, recordedAt);
    }
    if (!changed && TERMINAL_EVENT_TYPES.has(e.type)) {
      log.info({ taskId, type, state: task.state }, "task already terminal; event kept in the timeline only");
    }
    return { result: "stored", applied: { task, ended: changed && TERMINAL_EVENT_TYPES.has(e.type) } };
  }

  /** After the commit that holds it: the event's metrics. */
  function committed(e: TaskEvent, a: Applied): IngestResult {
    if (a.applied && deps.metrics) countTaskEvent(deps.metrics, e, a.applied.task, a.applied.ended);
    return a.result;
  }

  /** One event in its own transaction. */
  async function applyTaskEvent(e: TaskEvent): Promise<IngestResult> {
    const a = await store.db.transaction().execute((trx) => applyIn(trx, e, deps.now()));
    return committed(e, a);
  }

  // Events that arrive while a transaction runs are stored together by the next (group commit, as
  // the alert intake does): a runner pool finishing hundreds of tasks a second is a few commits a
  // second, not one per event. Each is applied in arrival order, as it would be alone; a batch that
  // fails is applied again one event at a time, so one event's failure is only its own.
  const batches = createGroupCommit<TaskEvent, Applied>(
    { maxItems: 64, maxWeight: 64, concurrency: store.dialect === "sqlite" ? 1 : 2 },
    () => 1,
    (events) =>
      store.db.transaction().execute(async (trx) => {
        const now = deps.now();
        const ids = [...new Set(events.map((e) => e.taskId))];
        const rows = await trx.selectFrom("tasks").selectAll().where("id", "in", ids).execute();
        const known = new Map(rows.map((r) => [r.id, r]));
        const out: Applied[] = [];
        for (const e of events) out.push(await applyIn(trx, e, now, known));
        return out;
      }),
    (e) => store.db.transaction().execute((trx) => applyIn(trx, e, deps.now())),
  );

  async function handle(d: Delivery): Promise<void> {
    const parsed = BusEvent.safeParse(d.data);
    if (!parsed.success) {
      log.warn({ subject: d.subject, issue: parsed.error.issues[0]?.message }, "invalid event terminated");
      d.term("invalid event");
      return;
    }
    const e = parsed.data;
    try {
      if (e.type === "runner.heartbeat") await recordHeartbeat(store.db, store.dialect, e);
      else committed(e, await batches.submit(e));
    } catch (err) {
      log.warn(
        { err: { message: errorMessage(err) }, subject: d.subject, attempt: d.attempt },
        "event not stored; will retry",
      );
      d.nak(Math.min(10_000, 200 * 2 ** Math.min(d.attempt, 6)));
      return;
    }
    await d.ack();
  }

  return {
    applyTaskEvent,
    handle,
    start(concurrency = 64): Subscription {
      return deps.queue.consumeEvents({ concurrency }, handle);
    },
  };
}
