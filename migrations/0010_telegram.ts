import { MysqlAdapter, sql, type CreateTableBuilder, type Kysely } from "kysely";

// Telegram as an approvals channel. `telegram_prompts`: a Reject press asks for a reason with a
// ForceReply message; the reply names that message, so the prompt is keyed by chat and message and
// says which approval and which person it is for, until when. `telegram_updates`: the updates
// already handled, per bot, so an update Telegram sends again (a webhook answer it did not get, a
// poller that took over before the offset was saved) changes nothing more. Both are created only
// when missing (the shared databases may have recorded this migration while it was still empty).

export async function up(db: Kysely<any>): Promise<void> {
  const isMysql = db.getExecutor().adapter instanceof MysqlAdapter;
  const table = (name: string): CreateTableBuilder<string, never> => {
    const b = db.schema.createTable(name).ifNotExists();
    return isMysql ? b.modifyEnd(sql`engine=InnoDB default charset=utf8mb4 collate=utf8mb4_bin`) : b;
  };

  await table("telegram_prompts")
    .addColumn("chat_id", "varchar(64)", (c) => c.notNull())
    .addColumn("message_id", "bigint", (c) => c.notNull())
    .addColumn("approval_id", "varchar(40)", (c) => c.notNull())
    .addColumn("user_id", "bigint", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("expires_at", "bigint", (c) => c.notNull())
    .addPrimaryKeyConstraint("telegram_prompts_pk", ["chat_id", "message_id"])
    .execute();

  await table("telegram_updates")
    .addColumn("bot_id", "varchar(24)", (c) => c.notNull())
    .addColumn("update_id", "bigint", (c) => c.notNull())
    .addColumn("processed_at", "bigint", (c) => c.notNull())
    .addPrimaryKeyConstraint("telegram_updates_pk", ["bot_id", "update_id"])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("telegram_updates").ifExists().execute();
  await db.schema.dropTable("telegram_prompts").ifExists().execute();
}
