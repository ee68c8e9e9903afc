import { MysqlAdapter, sql, type CreateTableBuilder, type Kysely } from "kysely";
import { columnsOf } from "./helpers.ts";

// Callbacks from external agents. `external_claims` (since 0001) learns which delivery invited the
// agent and which target it answers for. `agent_results`: every result an agent reported, unique
// per lease and idempotency key, with the answer it got, so a repeat gets the same answer and
// changes nothing. `webhook_callback_ids`: the `webhook-id`s of signed callbacks seen within the
// timestamp tolerance, per target, so a replay is refused by every replica. Safe to run twice (the
// shared databases may have recorded this migration before it had content).

export async function up(db: Kysely<any>): Promise<void> {
  const isMysql = db.getExecutor().adapter instanceof MysqlAdapter;
  const text = isMysql ? sql`mediumtext` : sql`text`;
  const table = (name: string): CreateTableBuilder<string, never> => {
    const b = db.schema.createTable(name).ifNotExists();
    return isMysql ? b.modifyEnd(sql`engine=InnoDB default charset=utf8mb4 collate=utf8mb4_bin`) : b;
  };

  const has = await columnsOf(db, "external_claims");
  if (!has.has("delivery_id"))
    await db.schema.alterTable("external_claims").addColumn("delivery_id", "varchar(40)").execute();
  if (!has.has("target")) await db.schema.alterTable("external_claims").addColumn("target", "varchar(128)").execute();

  await table("agent_results")
    .addColumn("id", "varchar(40)", (c) => c.primaryKey())
    .addColumn("claim_id", "varchar(40)", (c) => c.notNull())
    .addColumn("incident_id", "varchar(40)", (c) => c.notNull())
    .addColumn("idempotency_key", "varchar(255)", (c) => c.notNull())
    // sha256 of the request's meaningful fields: the same key with another result is refused.
    .addColumn("request_hash", "varchar(64)", (c) => c.notNull())
    .addColumn("status", "varchar(16)", (c) => c.notNull())
    .addColumn("response", text, (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addUniqueConstraint("agent_results_key_uq", ["claim_id", "idempotency_key"])
    .execute();

  await table("webhook_callback_ids")
    // sha256 of target and webhook-id: fixed width, whatever the agent's ids look like.
    .addColumn("id", "varchar(64)", (c) => c.primaryKey())
    .addColumn("expires_at", "bigint", (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("webhook_callback_ids").ifExists().execute();
  await db.schema.dropTable("agent_results").ifExists().execute();
  await db.schema.alterTable("external_claims").dropColumn("target").execute();
  await db.schema.alterTable("external_claims").dropColumn("delivery_id").execute();
}
