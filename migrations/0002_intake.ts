import { MysqlAdapter, sql, type Kysely } from "kysely";

// AlertManager intake: alert rows de-duplicated per alert instance (a repeat notification or a
// retried POST updates the row instead of adding one), the alert name on incidents for lists,
// a settings table for global switches (pause/resume), and an index to count recent fixes.

export async function up(db: Kysely<any>): Promise<void> {
  const isMysql = db.getExecutor().adapter instanceof MysqlAdapter;

  await db.schema.alterTable("alerts").addColumn("dedupe", "varchar(64)").execute();
  await db.schema
    .alterTable("alerts")
    .addColumn("repeat_count", "integer", (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema.alterTable("alerts").addColumn("last_received_at", "bigint").execute();
  await db.schema.createIndex("alerts_dedupe_uq").on("alerts").column("dedupe").unique().execute();

  await db.schema.alterTable("incidents").addColumn("alertname", "varchar(255)").execute();
  await db.schema.createIndex("incidents_alertname_idx").on("incidents").columns(["alertname", "id"]).execute();

  let settings = db.schema
    .createTable("settings")
    .ifNotExists()
    .addColumn("key", "varchar(64)", (c) => c.primaryKey())
    .addColumn("value", isMysql ? sql`mediumtext` : "text", (c) => c.notNull())
    .addColumn("updated_by", "varchar(255)", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull());
  if (isMysql) settings = settings.modifyEnd(sql`engine=InnoDB default charset=utf8mb4 collate=utf8mb4_bin`);
  await settings.execute();

  await db.schema.createIndex("tasks_kind_created_idx").on("tasks").columns(["kind", "created_at"]).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  const isMysql = db.getExecutor().adapter instanceof MysqlAdapter;
  const dropIndex = (name: string, table: string) =>
    (isMysql ? db.schema.dropIndex(name).on(table) : db.schema.dropIndex(name)).execute();
  await dropIndex("tasks_kind_created_idx", "tasks");
  await db.schema.dropTable("settings").ifExists().execute();
  await dropIndex("incidents_alertname_idx", "incidents");
  await db.schema.alterTable("incidents").dropColumn("alertname").execute();
  await dropIndex("alerts_dedupe_uq", "alerts");
  await db.schema.alterTable("alerts").dropColumn("last_received_at").execute();
  await db.schema.alterTable("alerts").dropColumn("repeat_count").execute();
  await db.schema.alterTable("alerts").dropColumn("dedupe").execute();
}
