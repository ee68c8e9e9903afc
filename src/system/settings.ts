import type { Store } from "../store/db.ts";
import { upsert, type Executor } from "../store/sql.ts";
import { appendEvent } from "../events/repo.ts";

// Global switches that every control-plane replica must agree on live in the database.

export type PauseState = { paused: boolean; by: string | null; at: number | null; reason: string | null };

const PAUSE_KEY = "automation.paused";

export async function getPause(db: Executor): Promise<PauseState> {
  const row = await db
    .selectFrom("settings")
    .select(["value", "updated_by", "updated_at"])
    .where("key", "=", PAUSE_KEY)
    .executeTakeFirst();
  if (!row) return { paused: false, by: null, at: null, reason: null };
  const v = JSON.parse(row.value) as { paused: boolean; reason?: string };
  return { paused: v.paused, by: row.updated_by, at: Number(row.updated_at), reason: v.reason ?? null };
}

/** Pauses or resumes automation; writes a `system.paused` / `system.resumed` event. */
export async function setPause(
  store: Store,
  paused: boolean,
  by: { actor: string; channel: string; reason?: string },
  now: number,
): Promise<void> {
  await store.db.transaction().execute(async (trx) => {
    const value = JSON.stringify({ paused, reason: by.reason ?? null });
    await upsert(
      trx,
      store.dialect,
      "settings",
      { key: PAUSE_KEY, value, updated_by: by.actor, updated_at: now },
      "key",
      { value, updated_by: by.actor, updated_at: now },
    );
    await appendEvent(
      trx,
      store.dialect,
      {
        type: paused ? "system.paused" : "system.resumed",
        actor: by.actor,
        channel: by.channel,
        reason: by.reason ?? null,
        occurredAt: now,
      },
      now,
    );
  });
}
