import { MysqlAdapter, sql, type Kysely } from "kysely";
import { createIndexIfMissing } from "./helpers.ts";

// Durable deliveries (DESIGN §6): a message for an outside service (a Telegram notice or approval
// message today, a signed webhook later) is a `deliveries` row, requested in the transaction of
// the change it reports and sent by one replica at a time with attempts, backoff and a final
// `dead`. While a row is pending, `pending_key` (channel|kind|target|ref) is set and unique, so
// a burst of changes to one incident is one pending row: each request bumps `requests`, and the
// sender marks the row done only if no request came in while it was sending. Telegram messages
// are rendered from the database when sent, so one send always shows the latest state.
//
// `notice_messages` remembers the Telegram message of each incident's card, so later changes edit
// it (approval messages keep theirs on `approvals.chat_id` / `message_id`).
//
// Safe to run again: databases that recorded this migration while it was an empty placeholder get
// it applied by hand (`up` skips what exists).

export async function up(db: Kysely<any>): Promise<void> {
  const isMysql = db.getExecutor().adapter instanceof MysqlAdapter;
  const text = isMysql ? sql`mediumtext` : sql`text`;
  const end = isMysql ? sql`engine=InnoDB default charset=utf8mb4 collate=utf8mb4_bin` : sql``;

  await db.schema
    .createTable("deliveries")
    .ifNotExists()
    .addColumn("id", "varchar(40)", (c) => c.primaryKey())
    .addColumn("channel", "varchar(32)", (c) => c.notNull())
    .addColumn("kind", "varchar(64)", (c) => c.notNull())
    .addColumn("ref", "varchar(255)", (c) => c.notNull())
    .addColumn("target", "varchar(255)", (c) => c.notNull())
    .addColumn("payload", text)
    .addColumn("pending_key", "varchar(255)")
    .addColumn("state", "varchar(16)", (c) => c.notNull())
    .addColumn("priority", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("requests", "integer", (c) => c.notNull().defaultTo(1))
    .addColumn("attempts", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("next_attempt_at", "bigint", (c) => c.notNull())
    .addColumn("last_error", "varchar(1000)")
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .addColumn("sent_at", "bigint")
    .modifyEnd(end)
    .execute();
  await createIndexIfMissing(db, "deliveries_pending_uq", "deliveries", ["pending_key"], { unique: true });
  await createIndexIfMissing(db, "deliveries_due_idx", "deliveries", ["state", "next_attempt_at"]);
  await createIndexIfMissing(db, "deliveries_prune_idx", "deliveries", ["state", "updated_at"]);

  await db.schema
    .createTable("notice_messages")
    .ifNotExists()
    .addColumn("incident_id", "varchar(40)", (c) => c.primaryKey())
    .addColumn("chat_id", "varchar(64)", (c) => c.notNull())
    .addColumn("message_id", "varchar(32)", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .modifyEnd(end)
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("notice_messages").ifExists().execute();
  await db.schema.dropTable("deliveries").ifExists().execute();
}
