import { MysqlAdapter, sql, type Kysely } from "kysely";
import { columnsOf, createIndexIfMissing } from "./helpers.ts";

// Schedules (DESIGN §8): what the file or MCP caller said beyond the first migration's columns —
// catch-up policy, jitter, a description, and where the schedule came from (its file, or the MCP
// caller) — and, per run, why it was skipped and how many runs a catch-up stood for. Safe to run
// twice: each column is added only when missing.

export async function up(db: Kysely<any>): Promise<void> {
  const isMysql = db.getExecutor().adapter instanceof MysqlAdapter;
  const text = isMysql ? sql`mediumtext` : sql`text`;
  const have = await columnsOf(db, "schedules");
  const add = async (
    name: string,
    build: (t: ReturnType<Kysely<any>["schema"]["alterTable"]>) => { execute(): Promise<void> },
  ) => {
    if (!have.has(name)) await build(db.schema.alterTable("schedules")).execute();
  };
  await add("catch_up", (t) => t.addColumn("catch_up", "varchar(16)", (c) => c.notNull().defaultTo("skip")));
  await add("jitter_ms", (t) => t.addColumn("jitter_ms", "bigint", (c) => c.notNull().defaultTo(0)));
  await add("description", (t) => t.addColumn("description", text));
  await add("origin", (t) => t.addColumn("origin", "varchar(512)", (c) => c.notNull().defaultTo("")));
  const runs = await columnsOf(db, "schedule_runs");
  if (!runs.has("reason")) await db.schema.alterTable("schedule_runs").addColumn("reason", text).execute();
  if (!runs.has("missed"))
    await db.schema
      .alterTable("schedule_runs")
      .addColumn("missed", "integer", (c) => c.notNull().defaultTo(0))
      .execute();
  if (!runs.has("fired_at")) await db.schema.alterTable("schedule_runs").addColumn("fired_at", "bigint").execute();
  // Recent runs of a schedule, newest first.
  await createIndexIfMissing(db, "schedule_runs_recent_idx", "schedule_runs", ["schedule_id", "scheduled_for"]);
}

export async function down(db: Kysely<any>): Promise<void> {
  const isMysql = db.getExecutor().adapter instanceof MysqlAdapter;
  await (isMysql
    ? db.schema.dropIndex("schedule_runs_recent_idx").on("schedule_runs")
    : db.schema.dropIndex("schedule_runs_recent_idx")
  ).execute();
  for (const c of ["fired_at", "missed", "reason"]) await db.schema.alterTable("schedule_runs").dropColumn(c).execute();
  for (const c of ["origin", "description", "jitter_ms", "catch_up"])
    await db.schema.alterTable("schedules").dropColumn(c).execute();
}
