import type { Dialect } from "../store/db.ts";
import { insertIfAbsent, type Executor } from "../store/sql.ts";

// One sender at a time across control-plane replicas: a `settings` row whose `updated_by` is the
// holder and `updated_at` when it last renewed. Taking and renewing are one conditional update
// (mine, or expired), so two replicas never both hold it; a holder that dies stops renewing and
// another takes over once `ttlMs` has passed.

export async function holdLease(
  db: Executor,
  dialect: Dialect,
  key: string,
  owner: string,
  now: number,
  ttlMs: number,
): Promise<boolean> {
  const res = await db
    .updateTable("settings")
    .set({ updated_by: owner, updated_at: now, value: JSON.stringify({ owner, until: now + ttlMs }) })
    .where("key", "=", key)
    .where((eb) => eb.or([eb("updated_by", "=", owner), eb("updated_at", "<=", now - ttlMs)]))
    .executeTakeFirst();
  if (Number(res.numUpdatedRows) > 0) return true;
  // First use on this database: create the row free, then compete for it like anyone else.
  if (await insertIfAbsent(db, dialect, "settings", { key, value: "{}", updated_by: "", updated_at: 0 }))
    return holdLease(db, dialect, key, owner, now, ttlMs);
  return false;
}

/** Gives the lease up at once (a clean stop), so another replica need not wait for it to expire. */
export async function releaseLease(db: Executor, key: string, owner: string): Promise<void> {
  await db
    .updateTable("settings")
    .set({ updated_at: 0, value: "{}" })
    .where("key", "=", key)
    .where("updated_by", "=", owner)
    .execute();
}
