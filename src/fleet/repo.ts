import type { Store } from "../store/db.ts";
import { insertIfAbsent, type Executor } from "../store/sql.ts";
import type { RunnerRow } from "../store/schema.ts";
import type { Heartbeat } from "../bus/jobs.ts";

/**
 * Records a heartbeat. An older beat arriving late never moves `last_seen_at` backwards: the guard
 * is in the UPDATE's WHERE clause, because the ingester handles beats concurrently and a
 * read-then-write check lets an older beat overwrite a newer one that landed in between.
 */
export async function recordHeartbeat(db: Executor, dialect: Store["dialect"], hb: Heartbeat): Promise<void> {
  const row = {
    id: hb.runnerId,
    host: hb.host,
    version: hb.version,
    pool: hb.pool,
    concurrency: hb.concurrency,
    running: hb.running.length,
    running_task_ids: JSON.stringify(hb.running),
    totals: JSON.stringify(hb.totals),
    started_at: hb.startedAt,
    last_seen_at: hb.at,
  };
  const { id: _id, ...update } = row;
  const updateIfNewer = async () =>
    Number(
      (
        await db
          .updateTable("runners")
          .set(update)
          .where("id", "=", hb.runnerId)
          .where("last_seen_at", "<=", hb.at)
          .executeTakeFirst()
      ).numUpdatedRows,
    );
  // Usually the runner is known and this one statement is all. Nothing updated means the runner is
  // new or the beat is older; if another beat inserted the row meanwhile, ours may still be newer.
  if ((await updateIfNewer()) > 0) return;
  if (await insertIfAbsent(db, dialect, "runners", row)) return;
  await updateIfNewer();
}

export type RunnerView = RunnerRow & { stale: boolean; runningTaskIds: string[] };

/** A runner unseen for two heartbeat intervals is stale. */
export async function listRunners(db: Executor, now: number, heartbeatMs: number): Promise<RunnerView[]> {
  const rows = await db.selectFrom("runners").selectAll().orderBy("id").execute();
  return rows.map((r) => ({
    ...r,
    last_seen_at: Number(r.last_seen_at),
    started_at: Number(r.started_at),
    stale: now - Number(r.last_seen_at) > 2 * heartbeatMs,
    runningTaskIds: JSON.parse(r.running_task_ids) as string[],
  }));
}
