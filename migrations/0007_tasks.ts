import { MysqlAdapter, type Kysely } from "kysely";

// The task reconciler looks up each pending task's outbox row (was it handed to the bus yet?) by
// its message id, which is the task id.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex("outbox_msg_idx").on("outbox").columns(["msg_id"]).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  const isMysql = db.getExecutor().adapter instanceof MysqlAdapter;
  await (isMysql
    ? db.schema.dropIndex("outbox_msg_idx").on("outbox")
    : db.schema.dropIndex("outbox_msg_idx")
  ).execute();
}
