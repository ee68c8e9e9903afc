import { hostname } from "node:os";
import { TaskMessage, type TaskEvent } from "../src/bus/jobs.ts";
import { taskRetryBackoff, type Delivery, type Subscription, type TaskQueue } from "../src/bus/port.ts";
import { backoffMs } from "../src/shared/backoff.ts";
import { isAppError, errorMessage } from "../src/shared/errors.ts";
import { newId } from "../src/shared/ids.ts";
import type { Logger } from "../src/shared/logger.ts";
import type { ExecContext, Executor } from "./executors/types.ts";

export type RunnerOptions = {
  id: string;
  pool: string;
  concurrency: number;
  heartbeatMs: number;
  ackWaitMs: number;
  version: string;
  /** How long stop() lets running tasks finish before giving them back to the queue. */
  drainTimeoutMs: number;
};

type Running = { controller: AbortController; taskId: string };

// Distributive Omit, so each event variant keeps its own fields.
type EventBody = TaskEvent extends infer E
  ? E extends TaskEvent
    ? Omit<E, "id" | "taskId" | "runnerId" | "attempt" | "at">
    : never
  : never;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A runner pulls tasks for one pool, runs them with the executor of their kind and reports what
 * happens as events. It acks a task only after its terminal event is stored by the bus, so a
 * runner that dies mid-task leaves the task to be redelivered, never lost.
 *
 * The bus's task markers (no database here) keep redeliveries honest: before starting a task the
 * runner reads its marker — `cancelled` ends it as cancelled without running it (whether or not
 * this runner heard the cancel notice), `done` means its terminal event is already stored (an ack
 * that did not reach the bus) and the message is only acked. After storing a terminal event the
 * runner marks the task `done`, then acks.
 */
export function createRunner(
  deps: { queue: TaskQueue; log: Logger; executors: Record<string, Executor>; now?: () => number },
  opts: RunnerOptions,
) {
  const { queue } = deps;
  const now = deps.now ?? Date.now;
  const log = deps.log.child({ runnerId: opts.id });
  const running = new Map<string, Running>();
  const totals = { succeeded: 0, failed: 0, cancelled: 0 };
  const startedAt = now();
  let tasksSub: Subscription | undefined;
  let controlSub: Subscription | undefined;
  let beat: NodeJS.Timeout | undefined;
  let stopping = false;

  async function emit(task: TaskMessage, attempt: number, body: EventBody, retries = 0): Promise<void> {
    const event = {
      ...body,
      id: newId("evt"),
      taskId: task.taskId,
      runnerId: opts.id,
      attempt,
      at: now(),
    } as TaskEvent;
    for (let i = 0; ; i++) {
      try {
        await queue.publishTaskEvent(event);
        return;
      } catch (err) {
        if (i >= retries) throw err;
        await sleep(backoffMs(i + 1, { baseMs: 250, maxMs: 5000 }));
      }
    }
  }

  async function heartbeat(): Promise<void> {
    await queue.publishHeartbeat({
      type: "runner.heartbeat",
      id: newId("evt"),
      runnerId: opts.id,
      host: hostname(),
      version: opts.version,
      pool: opts.pool,
      concurrency: opts.concurrency,
      running: [...running.keys()],
      totals: { ...totals },
      startedAt,
      at: now(),
    });
  }

  async function handle(d: Delivery): Promise<void> {
    const parsed = TaskMessage.safeParse(d.data);
    if (!parsed.success) {
      const taskId = (d.data as { taskId?: unknown } | undefined)?.taskId;
      const why = `invalid task message: ${parsed.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; ")}`;
      log.error({ subject: d.subject, why }, "task message terminated");
      if (typeof taskId === "string" && taskId.length > 0 && taskId.length <= 40) {
        const stub = {
          v: 1,
          taskId,
          kind: "unknown",
          pool: opts.pool,
          incidentId: null,
          payload: {},
          createdAt: now(),
        } as TaskMessage;
        await emit(stub, d.attempt, { type: "task.failed", error: why, code: "task.invalid_message" }, 3).catch(
          () => {},
        );
      }
      d.term(why);
      return;
    }
    const task = parsed.data;
    const tlog = log.child({ taskId: task.taskId, kind: task.kind, attempt: d.attempt });
    const controller = new AbortController();
    // Listed before the marker is read, so a cancel notice arriving meanwhile still aborts it.
    running.set(task.taskId, { controller, taskId: task.taskId });
    const keepAlive = setInterval(() => d.working(), Math.max(250, Math.floor(opts.ackWaitMs / 3)));
    try {
      await run(task, d, controller, tlog);
    } finally {
      clearInterval(keepAlive);
      running.delete(task.taskId);
    }
  }

  /**
   * Stores the terminal event (retrying while the message stays ours), marks the task done, acks.
   * Returns false when the event could not be stored: the message was nak'ed and comes back. A
   * failed ack is only logged: the redelivery finds the `done` marker and is acked without a run.
   */
  async function finish(task: TaskMessage, d: Delivery, body: EventBody, tlog: Logger): Promise<boolean> {
    try {
      await emit(task, d.attempt, body, 8);
    } catch (err) {
      tlog.error({ err: { message: errorMessage(err) } }, "could not report the task outcome; it will be redelivered");
      d.nak(5000);
      return false;
    }
    await markDone(task.taskId, tlog);
    await d
      .ack()
      .catch((err) =>
        tlog.warn({ err: { message: errorMessage(err) } }, "ack not confirmed; a redelivery will find the task done"),
      );
    return true;
  }

  async function markDone(taskId: string, tlog: Logger): Promise<void> {
    for (let i = 1; ; i++) {
      try {
        await queue.markTask(taskId, "done");
        return;
      } catch (err) {
        // The outcome is stored either way; without the marker only a failed ack could re-run it.
        if (i >= 3) return void tlog.warn({ err: { message: errorMessage(err) } }, "task not marked done");
        await sleep(backoffMs(i, { baseMs: 250, maxMs: 2000 }));
      }
    }
  }

  async function run(task: TaskMessage, d: Delivery, controller: AbortController, tlog: Logger): Promise<void> {
    let mark;
    try {
      mark = await queue.taskMark(task.taskId);
    } catch (err) {
      // Unknown whether it was cancelled or finished: never start it blind.
      tlog.warn({ err: { message: errorMessage(err) } }, "task marker unreadable; redelivering");
      d.nak(backoffMs(d.attempt, { baseMs: 1000, maxMs: 10_000 }));
      return;
    }
    if (mark === "done") {
      tlog.info("task already finished; redelivery acknowledged");
      await d.ack().catch((err) => tlog.warn({ err: { message: errorMessage(err) } }, "ack not confirmed"));
      return;
    }
    if (mark === "cancelled") {
      if (await finish(task, d, { type: "task.cancelled", reason: "cancelled before a runner started it" }, tlog)) {
        totals.cancelled += 1;
        tlog.info("task cancelled before it started");
      }
      return;
    }
    const ctx: ExecContext = {
      signal: controller.signal,
      attempt: d.attempt,
      progress: (message, percent) =>
        emit(task, d.attempt, { type: "task.progress", message, percent }).then(() => d.working()),
      log: (stream, line) => emit(task, d.attempt, { type: "task.log", stream, line: line.slice(0, 16_000) }),
      prOpened: (pr) =>
        emit(task, d.attempt, { type: "task.pr_opened", url: pr.url, branch: pr.branch, number: pr.number }, 3),
      // Asked before an irreversible step (opening a pull request): the notice may have been missed,
      // or the task ended elsewhere meanwhile (failed by the control plane, finished by a duplicate delivery).
      assertNotCancelled: async () => {
        if (!controller.signal.aborted) {
          const mark = await queue.taskMark(task.taskId);
          if (mark) controller.abort(mark === "cancelled" ? "cancelled" : "ended elsewhere");
        }
        if (controller.signal.aborted) throw controller.signal.reason;
      },
    };
    let outcome: EventBody;
    try {
      const executor = deps.executors[task.kind];
      if (!executor) {
        outcome = {
          type: "task.failed",
          error: `no executor for task kind "${task.kind}" on this runner`,
          code: "task.unknown_kind",
        };
      } else {
        if (controller.signal.aborted) throw controller.signal.reason;
        await emit(task, d.attempt, { type: "task.started" }, 3);
        const result = await executor(task, ctx);
        if (controller.signal.aborted) throw controller.signal.reason;
        outcome = { type: "task.succeeded", result: result ?? null };
      }
    } catch (err) {
      const reason = controller.signal.aborted ? controller.signal.reason : undefined;
      if (reason === "shutdown") {
        tlog.info("runner stopping; task handed back to the queue");
        d.nak();
        return;
      }
      if (reason === "ended elsewhere") {
        tlog.info("task ended elsewhere while it ran; stopped before its pull request");
        await d.ack().catch(() => {});
        return;
      }
      if (reason === "cancelled") {
        outcome = { type: "task.cancelled", reason: "cancelled on request" };
      } else {
        const retryable = isAppError(err) ? err.retryable : true;
        const message = errorMessage(err);
        if (retryable && d.attempt < d.maxDeliver) {
          await emit(task, d.attempt, {
            type: "task.log",
            stream: "runner",
            line: `attempt ${d.attempt} failed, will retry: ${message}`,
          }).catch(() => {});
          d.nak(backoffMs(d.attempt, taskRetryBackoff));
          tlog.warn({ error: message }, "task attempt failed; retrying");
          return;
        }
        const why = retryable ? `failed after ${d.attempt} attempts: ${message}` : message;
        outcome = { type: "task.failed", error: why, code: isAppError(err) ? err.code : "task.error" };
      }
    }
    if (!(await finish(task, d, outcome, tlog))) return;
    if (outcome.type === "task.succeeded") totals.succeeded += 1;
    else if (outcome.type === "task.cancelled") totals.cancelled += 1;
    else totals.failed += 1;
    if (outcome.type === "task.failed") tlog.warn({ error: outcome.error }, "task failed");
    else tlog.info(outcome.type === "task.succeeded" ? "task succeeded" : "task cancelled");
  }

  return {
    start(): void {
      // A notice for a task not running here needs no memory: its marker is read before any start.
      controlSub = queue.subscribeControl((taskId, action) => {
        if (action === "cancel") running.get(taskId)?.controller.abort("cancelled");
      });
      tasksSub = queue.consumeTasks(opts.pool, { concurrency: opts.concurrency }, handle);
      const tick = () =>
        heartbeat().catch((err) => log.warn({ err: { message: errorMessage(err) } }, "heartbeat not published"));
      void tick();
      beat = setInterval(tick, opts.heartbeatMs);
      log.info({ pool: opts.pool, concurrency: opts.concurrency }, "runner started");
    },
    async stop(): Promise<void> {
      if (stopping) return;
      stopping = true;
      const drained = tasksSub?.stop();
      const timer = setTimeout(() => {
        for (const r of running.values()) r.controller.abort("shutdown");
      }, opts.drainTimeoutMs);
      await drained;
      clearTimeout(timer);
      await controlSub?.stop();
      clearInterval(beat);
      await heartbeat().catch(() => {});
      log.info(totals, "runner stopped");
    },
    runningTaskIds: () => [...running.keys()],
    totals: () => ({ ...totals }),
  };
}

export type Runner = ReturnType<typeof createRunner>;

/** The runner's options from configuration; `id` differs for the in-process runner. */
export function runnerOptions(
  config: {
    runner: { pool: string; concurrency: number; heartbeatMs: number };
    task: { ackWaitMs: number };
    shutdownTimeoutMs: number;
  },
  id: string,
  version: string,
): RunnerOptions {
  return {
    id,
    pool: config.runner.pool,
    concurrency: config.runner.concurrency,
    heartbeatMs: config.runner.heartbeatMs,
    ackWaitMs: config.task.ackWaitMs,
    version,
    // Leave the last two seconds of the shutdown budget for closing connections.
    drainTimeoutMs: Math.max(100, config.shutdownTimeoutMs - 2000),
  };
}
