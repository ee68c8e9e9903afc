import { MysqlAdapter, sql, type CreateTableBuilder, type Kysely } from "kysely";
import { columnsOf, createIndexIfMissing } from "./helpers.ts";

// Signed webhooks to external agents (DESIGN §7).
//
// A webhook delivery is a `deliveries` row of channel `webhook` (the durable mechanism of the
// Telegram notices): `kind` is the webhook event, `ref` the timeline event it reports, `target`
// the target's name, `payload` the body as it was snapshotted when the event happened. New
// columns: `incident_id` (which incident a delivery is about, for listing and for the callbacks),
// `token_hash` (hex sha256 of the per-delivery bearer token the body carries; the token itself is
// never stored) and `last_status` (the HTTP status of the last attempt).
//
// `webhook_targets`: targets registered through MCP (`spec` holds them), and the state of any
// target, file or MCP, that answered 410 Gone (`disabled_at` for the URL in `disabled_url`).
// `webhook_keys`: the Ed25519 keys of JWS-signed deliveries, generated once so every replica signs
// with the same key; `active_key` is 'active' on the one key in use (unique), NULL once retired.
// Retired public keys stay published at /.well-known/jwks.json for a while.
//
// Safe to run again: databases that recorded this migration while it was an empty placeholder get
// it applied by hand (`up` skips what exists).

export async function up(db: Kysely<any>): Promise<void> {
  const isMysql = db.getExecutor().adapter instanceof MysqlAdapter;
  const text = isMysql ? sql`mediumtext` : sql`text`;
  const table = (name: string): CreateTableBuilder<string, never> => {
    const b = db.schema.createTable(name).ifNotExists();
    return isMysql ? b.modifyEnd(sql`engine=InnoDB default charset=utf8mb4 collate=utf8mb4_bin`) : b;
  };

  const have = await columnsOf(db, "deliveries");
  if (!have.has("incident_id"))
    await db.schema.alterTable("deliveries").addColumn("incident_id", "varchar(40)").execute();
  if (!have.has("token_hash"))
    await db.schema.alterTable("deliveries").addColumn("token_hash", "varchar(64)").execute();
  if (!have.has("last_status")) await db.schema.alterTable("deliveries").addColumn("last_status", "integer").execute();
  await createIndexIfMissing(db, "deliveries_incident_idx", "deliveries", ["incident_id", "id"]);
  await createIndexIfMissing(db, "deliveries_channel_idx", "deliveries", ["channel", "id"]);

  await table("webhook_targets")
    .addColumn("name", "varchar(64)", (c) => c.primaryKey())
    .addColumn("source", "varchar(8)", (c) => c.notNull())
    .addColumn("spec", text)
    .addColumn("disabled_at", "bigint")
    .addColumn("disabled_url", "varchar(2048)")
    .addColumn("disabled_reason", "varchar(1000)")
    .addColumn("created_by", "varchar(255)", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .execute();

  await table("webhook_keys")
    .addColumn("kid", "varchar(64)", (c) => c.primaryKey())
    .addColumn("alg", "varchar(16)", (c) => c.notNull())
    .addColumn("public_jwk", text, (c) => c.notNull())
    .addColumn("private_jwk", text, (c) => c.notNull())
    .addColumn("active_key", "varchar(16)")
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("retired_at", "bigint")
    .execute();
  await createIndexIfMissing(db, "webhook_keys_active_uq", "webhook_keys", ["active_key"], { unique: true });
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("webhook_keys").ifExists().execute();
  await db.schema.dropTable("webhook_targets").ifExists().execute();
  const isMysql = db.getExecutor().adapter instanceof MysqlAdapter;
  for (const name of ["deliveries_channel_idx", "deliveries_incident_idx"]) {
    const b = db.schema.dropIndex(name).ifExists();
    await (isMysql ? b.on("deliveries") : b).execute();
  }
  for (const c of ["last_status", "token_hash", "incident_id"])
    await db.schema.alterTable("deliveries").dropColumn(c).execute();
}
