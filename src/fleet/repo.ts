import type { Store } from "../store/db.ts";
import { upsert, type Executor } from "../store/sql.ts";
import type { RunnerRow } from "../store/schema.ts";
import type { Heartbeat } from "../bus/jobs.ts";

/** Records a heartbeat. An older beat arriving late never moves `last_seen_at` backwards. */
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
  const existing = await db.selectFrom("runners").select("last_seen_at").where("id", "=", hb.runnerId).executeTakeFirst();
  if (existing && Number(existing.last_seen_at) > hb.at) return;
  const { id: _id, ...update } = row;
  await upsert(db, dialect, "runners", row, "id", update);
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
