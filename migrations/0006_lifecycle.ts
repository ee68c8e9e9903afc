import { MysqlAdapter, sql, type Kysely } from "kysely";
import { createIndexIfMissing } from "./helpers.ts";

// No incident stays in a transient state: `state_since` is when it entered its state (or when the
// sweeper last queued its work again), so its deadline is state_since + STUCK_AFTER; `requeues`
// counts the sweeper's retries in the current state. The `guardrail.fix_budget` settings row is
// locked by every transaction that may queue a fix, so the hourly/daily/namespace limits hold
// with several control planes on one database; pull requests opened are counted from
// `task.pr_opened` events by the time they were recorded.
//
// Written to be safe to run again: databases that ran this migration while it was still an empty
// placeholder get it applied by hand (`up` skips what exists).

const FIX_BUDGET_KEY = "guardrail.fix_budget";

export async function up(db: Kysely<any>): Promise<void> {
  const incidents = (await db.introspection.getTables()).find((t) => t.name === "incidents");
  const has = (c: string) => !!incidents?.columns.some((col) => col.name === c);
  if (!has("state_since")) {
    await db.schema
      .alterTable("incidents")
      .addColumn("state_since", "bigint", (c) => c.notNull().defaultTo(0))
      .execute();
    await db.updateTable("incidents").set({ state_since: sql`updated_at` }).execute();
  }
  if (!has("requeues"))
    await db.schema
      .alterTable("incidents")
      .addColumn("requeues", "integer", (c) => c.notNull().defaultTo(0))
      .execute();
  await createIndexIfMissing(db, "incidents_state_since_idx", "incidents", ["state", "state_since"]);
  await createIndexIfMissing(db, "events_type_recorded_idx", "events", ["type", "recorded_at"]);
  const row = await db.selectFrom("settings").select("key").where("key", "=", FIX_BUDGET_KEY).executeTakeFirst();
  if (!row)
    await db
      .insertInto("settings")
      .values({ key: FIX_BUDGET_KEY, value: "{}", updated_by: "pitcrew:migration", updated_at: Date.now() })
      .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  const isMysql = db.getExecutor().adapter instanceof MysqlAdapter;
  const dropIndex = (name: string, table: string) =>
    (isMysql ? db.schema.dropIndex(name).on(table) : db.schema.dropIndex(name)).execute();
  await db.deleteFrom("settings").where("key", "=", FIX_BUDGET_KEY).execute();
  await dropIndex("events_type_recorded_idx", "events");
  await dropIndex("incidents_state_since_idx", "incidents");
  await db.schema.alterTable("incidents").dropColumn("requeues").execute();
  await db.schema.alterTable("incidents").dropColumn("state_since").execute();
}
