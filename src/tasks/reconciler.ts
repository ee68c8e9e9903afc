import { taskRetryBackoff } from "../bus/port.ts";
import { errorMessage } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import type { Store } from "../store/db.ts";
import { CONTROL_POOL } from "./control-jobs.ts";
import type { TaskService } from "./service.ts";

// Dead letters without the advisory. The bus announces a task that used all its deliveries once,
// to whoever listens at that moment (tasks/dead-letter.ts, the fast path); a control plane that was
// down or reconnecting misses it, and a runner that vanished with nobody left to take the task
// announces nothing. The reconciler finds such tasks from the database alone: handed to the bus,
// no event for longer than every delivery could take, and not running on a live runner. They end
// `failed` with the reason through TaskService.fail (the incident's terminal hook runs, and the
// bus marks them done so a late delivery is acked without running). Every change is a guarded
// conditional update, so any number of control-plane replicas can run it.

export type ReconcilerSettings = {
  ackWaitMs: number;
  maxDeliver: number;
  /** Runners' heartbeat interval: a runner unseen for two is not live. */
  heartbeatMs: number;
  intervalMs: number;
};

/**
 * How long a task can stay on the bus with no event while a delivery may still run it: every
 * delivery's ack wait plus the longest retry backoff before it, and slack for relay and ingest lag.
 */
export function deliveryBudgetMs(s: Pick<ReconcilerSettings, "ackWaitMs" | "maxDeliver">): number {
  return s.maxDeliver * (s.ackWaitMs + taskRetryBackoff.maxMs) + Math.max(30_000, s.ackWaitMs);
}

const iso = (ms: number) => new Date(ms).toISOString();

export type ReconcilerDeps = {
  store: Store;
  tasks: Pick<TaskService, "fail">;
  log: Logger;
  now: () => number;
  /** While the bus is away, events and heartbeats cannot arrive: silence then proves nothing. */
  busHealthy?: () => Promise<boolean>;
};

export function createTaskReconciler(deps: ReconcilerDeps, settings: ReconcilerSettings) {
  const db = deps.store.db;
  const log = deps.log.child({ component: "task-reconciler" });
  const budget = deliveryBudgetMs(settings);
  // A control plane judges only what it has watched for a whole budget: after a restart (an
  // embedded one re-queues its pending tasks then) every task gets a fresh budget.
  const startedAt = deps.now();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<number> | undefined;

  /** One pass; returns how many tasks it failed. */
  async function tick(): Promise<number> {
    const now = deps.now();
    const cutoff = now - budget;
    if (startedAt > cutoff) return 0;
    if (deps.busHealthy && !(await deps.busHealthy())) return 0;
    const live = await db
      .selectFrom("runners")
      .select(["running_task_ids"])
      .where("last_seen_at", ">=", now - 2 * settings.heartbeatMs)
      .execute();
    const busy = new Set(live.flatMap((r) => JSON.parse(r.running_task_ids) as string[]));
    let failed = 0;
    let after = "";
    for (;;) {
      const rows = await db
        .selectFrom("tasks")
        // A task's outbox row: unsent means the bus has not had it yet (pruned rows were sent).
        .leftJoin("outbox", (j) => j.onRef("outbox.msg_id", "=", "tasks.id").on("outbox.topic", "=", "task"))
        .select(["tasks.id", "tasks.state", "tasks.runner_id", "tasks.updated_at", "outbox.sent_at"])
        .where("tasks.state", "in", ["queued", "running"])
        .where("tasks.pool", "!=", CONTROL_POOL)
        .where("tasks.updated_at", "<", cutoff)
        .where((eb) => eb.or([eb("outbox.id", "is", null), eb("outbox.sent_at", "<", cutoff)]))
        .where("tasks.id", ">", after)
        .orderBy("tasks.id")
        .limit(500)
        .execute();
      if (rows.length === 0) return failed;
      after = rows[rows.length - 1]!.id;
      const stale = rows.filter((r) => !busy.has(r.id));
      const runnerIds = [...new Set(stale.map((r) => r.runner_id).filter((id): id is string => !!id))];
      const seen = new Map(
        runnerIds.length === 0
          ? []
          : (await db.selectFrom("runners").select(["id", "last_seen_at"]).where("id", "in", runnerIds).execute()).map(
              (r) => [r.id, Number(r.last_seen_at)] as const,
            ),
      );
      for (const t of stale) {
        const lastEvent = Math.max(Number(t.updated_at), Number(t.sent_at ?? 0));
        const where =
          t.state === "running" && t.runner_id
            ? `runner ${t.runner_id} last seen ${seen.has(t.runner_id) ? iso(seen.get(t.runner_id)!) : "never"}, last event ${iso(lastEvent)}`
            : `no runner started it; on the bus since ${iso(lastEvent)}`;
        const reason = `no runner finished the task: deliveries exhausted or its runner vanished (${where})`;
        if (await deps.tasks.fail(t.id, reason, "system:reconciler", "queue")) {
          failed += 1;
          log.warn({ taskId: t.id, runnerId: t.runner_id, state: t.state }, "task ended failed: no runner finished it");
        }
      }
    }
  }

  return {
    tick,
    deliveryBudgetMs: budget,
    start() {
      timer = setInterval(() => {
        // One pass at a time: a slow database must not stack passes.
        running ??= tick()
          .catch((err) => (log.warn({ err: { message: errorMessage(err) } }, "task reconciliation failed"), 0))
          .finally(() => (running = undefined));
      }, settings.intervalMs);
      timer.unref();
    },
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}

export type TaskReconciler = ReturnType<typeof createTaskReconciler>;
