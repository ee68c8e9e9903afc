import { createHash } from "node:crypto";
import type { Logger } from "../shared/logger.ts";
import type { Store } from "../store/db.ts";
import { appendEvent } from "../events/repo.ts";
import { errorMessage } from "../shared/errors.ts";
import type { Metrics } from "../shared/metrics.ts";

/** A runner silent for longer than this has gone away (scaled down, renamed): it is no longer counted as stale. */
const STALE_WINDOW_MS = 3_600_000;

/**
 * Watches the fleet: a runner unseen for two heartbeat intervals is stale, and every task still
 * `running` on it is flagged with a `task.runner_lost` event (once per task and runner). The task
 * itself is left alone: the bus redelivers it after its ack deadline.
 */
export function createFleetMonitor(deps: {
  store: Store;
  log: Logger;
  now: () => number;
  heartbeatMs: number;
  metrics?: Pick<Metrics, "runners">;
}) {
  const { store } = deps;
  const log = deps.log.child({ component: "fleet-monitor" });
  let timer: NodeJS.Timeout | undefined;

  /** Runners heard within two heartbeats are live; silent longer but heard within the hour, stale; older ones are gone. */
  async function countRunners(now: number): Promise<void> {
    if (!deps.metrics) return;
    const rows = await store.db
      .selectFrom("runners")
      .select("last_seen_at")
      .where("last_seen_at", ">=", now - STALE_WINDOW_MS)
      .execute();
    const live = rows.filter((r) => Number(r.last_seen_at) >= now - 2 * deps.heartbeatMs).length;
    deps.metrics.runners.set({ state: "live" }, live);
    deps.metrics.runners.set({ state: "stale" }, rows.length - live);
  }

  async function tick(): Promise<number> {
    const now = deps.now();
    await countRunners(now);
    // Only running tasks whose runner went quiet: the runners table keeps every runner ever seen.
    const orphaned = await store.db
      .selectFrom("tasks")
      .innerJoin("runners", "runners.id", "tasks.runner_id")
      .select(["tasks.id", "tasks.incident_id", "tasks.runner_id", "runners.last_seen_at"])
      .where("tasks.state", "=", "running")
      .where("runners.last_seen_at", "<", now - 2 * deps.heartbeatMs)
      .execute();
    let flagged = 0;
    for (const t of orphaned) {
      const lastSeen = Number(t.last_seen_at);
      // Deterministic id: every replica and every tick writes the same event, stored once.
      const id = `evt_lost_${createHash("sha256").update(`${t.id}|${t.runner_id}|${lastSeen}`).digest("hex").slice(0, 28)}`;
      const inserted = await appendEvent(
        store.db,
        store.dialect,
        {
          id,
          type: "task.runner_lost",
          taskId: t.id,
          incidentId: t.incident_id,
          actor: "system:fleet",
          channel: "fleet",
          reason: `runner ${t.runner_id} unseen since ${new Date(lastSeen).toISOString()}; the task will be redelivered after its ack deadline`,
          data: { runnerId: t.runner_id, lastSeenAt: lastSeen },
          occurredAt: now,
        },
        now,
      );
      if (inserted) {
        flagged += 1;
        log.warn({ taskId: t.id, runnerId: t.runner_id }, "task's runner vanished");
      }
    }
    return flagged;
  }

  return {
    tick,
    start() {
      timer = setInterval(
        () => tick().catch((err) => log.warn({ err: { message: errorMessage(err) } }, "fleet check failed")),
        deps.heartbeatMs,
      );
      timer.unref();
    },
    stop() {
      clearInterval(timer);
    },
  };
}
