import { hostname } from "node:os";
import { TaskMessage, type TaskEvent } from "../src/bus/jobs.ts";
import type { Delivery, Subscription, TaskQueue } from "../src/bus/port.ts";
import { isAppError, errorMessage } from "../src/shared/errors.ts";
import { newId } from "../src/shared/ids.ts";
import type { Logger } from "../src/shared/logger.ts";
import type { Executor } from "./executors/types.ts";

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
type EventBody = TaskEvent extends infer E ? (E extends TaskEvent ? Omit<E, "id" | "taskId" | "runnerId" | "attempt" | "at"> : never) : never;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A runner pulls tasks for one pool, runs them with the executor of their kind and reports what
 * happens as events. It acks a task only after its terminal event is stored by the bus, so a
 * runner that dies mid-task leaves the task to be redelivered, never lost.
 */
export function createRunner(deps: { queue: TaskQueue; log: Logger; executors: Record<string, Executor>; now?: () => number }, opts: RunnerOptions) {
  const { queue } = deps;
  const now = deps.now ?? Date.now;
  const log = deps.log.child({ runnerId: opts.id });
  const running = new Map<string, Running>();
  const earlyCancels = new Map<string, number>();
  const totals = { succeeded: 0, failed: 0, cancelled: 0 };
  const startedAt = now();
  let tasksSub: Subscription | undefined;
  let controlSub: Subscription | undefined;
  let beat: NodeJS.Timeout | undefined;
  let stopping = false;

  async function emit(task: TaskMessage, attempt: number, body: EventBody, retries = 0): Promise<void> {
    const event = { ...body, id: newId("evt"), taskId: task.taskId, runnerId: opts.id, attempt, at: now() } as TaskEvent;
    for (let i = 0; ; i++) {
      try {
        await queue.publishTaskEvent(event);
        return;
      } catch (err) {
        if (i >= retries) throw err;
        await sleep(Math.min(5000, 250 * 2 ** i));
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
        const stub = { v: 1, taskId, kind: "unknown", pool: opts.pool, incidentId: null, payload: {}, createdAt: now() } as TaskMessage;
        await emit(stub, d.attempt, { type: "task.failed", error: why, code: "task.invalid_message" }, 3).catch(() => {});
      }
      d.term(why);
      return;
    }
    const task = parsed.data;
    const tlog = log.child({ taskId: task.taskId, kind: task.kind, attempt: d.attempt });
    const controller = new AbortController();
    if (earlyCancels.delete(task.taskId)) controller.abort("cancelled");
    running.set(task.taskId, { controller, taskId: task.taskId });
    const keepAlive = setInterval(() => d.working(), Math.max(250, Math.floor(opts.ackWaitMs / 3)));
    const finish = async (body: EventBody) => {
      // The terminal event must be stored before the ack; keep the message ours while retrying.
      await emit(task, d.attempt, body, 8);
      await d.ack();
    };
    try {
      const executor = deps.executors[task.kind];
      if (!executor) {
        await finish({ type: "task.failed", error: `no executor for task kind "${task.kind}" on this runner`, code: "task.unknown_kind" });
        totals.failed += 1;
        return;
      }
      if (controller.signal.aborted) throw controller.signal.reason;
      await emit(task, d.attempt, { type: "task.started" }, 3);
      const result = await executor(task, {
        signal: controller.signal,
        attempt: d.attempt,
        progress: (message, percent) => emit(task, d.attempt, { type: "task.progress", message, percent }).then(() => d.working()),
        log: (stream, line) => emit(task, d.attempt, { type: "task.log", stream, line: line.slice(0, 16_000) }),
        prOpened: (pr) => emit(task, d.attempt, { type: "task.pr_opened", url: pr.url, branch: pr.branch, number: pr.number }, 3),
      });
      if (controller.signal.aborted) throw controller.signal.reason;
      await finish({ type: "task.succeeded", result: result ?? null });
      totals.succeeded += 1;
      tlog.info("task succeeded");
    } catch (err) {
      const reason = controller.signal.aborted ? controller.signal.reason : undefined;
      if (reason === "shutdown") {
        tlog.info("runner stopping; task handed back to the queue");
        d.nak();
        return;
      }
      try {
        if (reason === "cancelled") {
          await finish({ type: "task.cancelled", reason: "cancelled on request" });
          totals.cancelled += 1;
          tlog.info("task cancelled");
          return;
        }
        const retryable = isAppError(err) ? err.retryable : true;
        const message = errorMessage(err);
        if (retryable && d.attempt < d.maxDeliver) {
          await emit(task, d.attempt, { type: "task.log", stream: "runner", line: `attempt ${d.attempt} failed, will retry: ${message}` }).catch(() => {});
          d.nak(Math.min(60_000, 1000 * 2 ** (d.attempt - 1)));
          tlog.warn({ error: message }, "task attempt failed; retrying");
          return;
        }
        const why = retryable ? `failed after ${d.attempt} attempts: ${message}` : message;
        await finish({ type: "task.failed", error: why, code: isAppError(err) ? err.code : "task.error" });
        totals.failed += 1;
        tlog.warn({ error: why }, "task failed");
      } catch (publishErr) {
        // The terminal event could not be stored: leave the message unacked; it comes back.
        tlog.error({ err: { message: errorMessage(publishErr) } }, "could not report the task outcome; it will be redelivered");
        d.nak(5000);
      }
    } finally {
      clearInterval(keepAlive);
      running.delete(task.taskId);
    }
  }

  return {
    start(): void {
      controlSub = queue.subscribeControl((taskId, action) => {
        if (action !== "cancel") return;
        const r = running.get(taskId);
        if (r) r.controller.abort("cancelled");
        else {
          earlyCancels.set(taskId, now());
          for (const [id, at] of earlyCancels) if (now() - at > 600_000) earlyCancels.delete(id);
        }
      });
      tasksSub = queue.consumeTasks(opts.pool, { concurrency: opts.concurrency }, handle);
      const tick = () => heartbeat().catch((err) => log.warn({ err: { message: errorMessage(err) } }, "heartbeat not published"));
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
  config: { runner: { pool: string; concurrency: number; heartbeatMs: number }; task: { ackWaitMs: number }; shutdownTimeoutMs: number },
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
