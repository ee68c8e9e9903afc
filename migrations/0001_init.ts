import { MysqlAdapter, sql, type ColumnDataType, type CreateTableBuilder, type Expression, type Kysely } from "kysely";

// One migration set for MySQL/MariaDB/TiDB and SQLite. The few type differences are chosen here:
// long text is MEDIUMTEXT on MySQL (TEXT stops at 64 KiB), and every MySQL table is utf8mb4 with a
// binary collation so that ids and labels compare exactly as they do in SQLite.

type Types = { text: ColumnDataType | Expression<unknown>; isMysql: boolean };

function typesFor(db: Kysely<any>): Types {
  const isMysql = db.getExecutor().adapter instanceof MysqlAdapter;
  return { text: isMysql ? sql`mediumtext` : "text", isMysql };
}

function table(db: Kysely<any>, t: Types, name: string): CreateTableBuilder<string, never> {
  const b = db.schema.createTable(name).ifNotExists();
  return t.isMysql ? b.modifyEnd(sql`engine=InnoDB default charset=utf8mb4 collate=utf8mb4_bin`) : b;
}

async function index(db: Kysely<any>, name: string, tableName: string, columns: string[], unique = false) {
  let b = db.schema.createIndex(name).on(tableName).columns(columns);
  if (unique) b = b.unique();
  await b.execute();
}

export async function up(db: Kysely<any>): Promise<void> {
  const t = typesFor(db);
  const id = "varchar(40)";

  await table(db, t, "incidents")
    .addColumn("id", id, (c) => c.primaryKey())
    .addColumn("fingerprint", "varchar(255)", (c) => c.notNull())
    .addColumn("dedupe_key", "varchar(255)")
    .addColumn("open_key", "varchar(255)")
    .addColumn("title", "varchar(1024)", (c) => c.notNull())
    .addColumn("state", "varchar(24)", (c) => c.notNull())
    .addColumn("source", "varchar(32)", (c) => c.notNull())
    .addColumn("severity", "varchar(64)")
    .addColumn("namespace", "varchar(253)")
    .addColumn("service", "varchar(253)")
    .addColumn("labels", t.text, (c) => c.notNull())
    .addColumn("annotations", t.text, (c) => c.notNull())
    .addColumn("plan", t.text)
    .addColumn("flap_count", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("failed_fixes", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("truncated_alerts", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("version", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("opened_at", "bigint", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .addColumn("resolved_at", "bigint")
    .execute();
  await index(db, "incidents_open_key_uq", "incidents", ["open_key"], true);
  await index(db, "incidents_state_id_idx", "incidents", ["state", "id"]);
  await index(db, "incidents_fingerprint_idx", "incidents", ["fingerprint", "opened_at"]);
  await index(db, "incidents_dedupe_key_idx", "incidents", ["dedupe_key", "opened_at"]);
  await index(db, "incidents_namespace_state_idx", "incidents", ["namespace", "state"]);

  await table(db, t, "alerts")
    .addColumn("id", id, (c) => c.primaryKey())
    .addColumn("incident_id", id)
    .addColumn("fingerprint", "varchar(255)", (c) => c.notNull())
    .addColumn("status", "varchar(16)", (c) => c.notNull())
    .addColumn("alertname", "varchar(255)", (c) => c.notNull())
    .addColumn("labels", t.text, (c) => c.notNull())
    .addColumn("annotations", t.text, (c) => c.notNull())
    .addColumn("starts_at", "bigint", (c) => c.notNull())
    .addColumn("ends_at", "bigint")
    .addColumn("generator_url", t.text)
    .addColumn("receiver", "varchar(255)")
    .addColumn("group_key", t.text)
    .addColumn("received_at", "bigint", (c) => c.notNull())
    .execute();
  await index(db, "alerts_incident_idx", "alerts", ["incident_id", "id"]);
  await index(db, "alerts_fingerprint_idx", "alerts", ["fingerprint", "received_at"]);

  await table(db, t, "tasks")
    .addColumn("id", id, (c) => c.primaryKey())
    .addColumn("incident_id", id)
    .addColumn("kind", "varchar(64)", (c) => c.notNull())
    .addColumn("pool", "varchar(64)", (c) => c.notNull())
    .addColumn("state", "varchar(16)", (c) => c.notNull())
    .addColumn("payload", t.text, (c) => c.notNull())
    .addColumn("result", t.text)
    .addColumn("error", t.text)
    .addColumn("attempts", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("runner_id", "varchar(128)")
    .addColumn("idempotency_key", "varchar(255)")
    .addColumn("created_by", "varchar(255)", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .addColumn("started_at", "bigint")
    .addColumn("finished_at", "bigint")
    .addColumn("last_event_at", "bigint")
    .execute();
  await index(db, "tasks_idempotency_uq", "tasks", ["idempotency_key"], true);
  await index(db, "tasks_state_id_idx", "tasks", ["state", "id"]);
  await index(db, "tasks_incident_idx", "tasks", ["incident_id", "id"]);
  await index(db, "tasks_runner_state_idx", "tasks", ["runner_id", "state"]);

  await table(db, t, "events")
    .addColumn("seq", t.isMysql ? "bigint" : "integer", (c) => c.primaryKey().autoIncrement())
    .addColumn("id", id, (c) => c.notNull())
    .addColumn("type", "varchar(64)", (c) => c.notNull())
    .addColumn("task_id", id)
    .addColumn("incident_id", id)
    .addColumn("actor", "varchar(255)", (c) => c.notNull())
    .addColumn("channel", "varchar(32)", (c) => c.notNull())
    .addColumn("reason", t.text)
    .addColumn("data", t.text, (c) => c.notNull())
    .addColumn("occurred_at", "bigint", (c) => c.notNull())
    .addColumn("recorded_at", "bigint", (c) => c.notNull())
    .execute();
  await index(db, "events_id_uq", "events", ["id"], true);
  await index(db, "events_task_idx", "events", ["task_id", "seq"]);
  await index(db, "events_incident_idx", "events", ["incident_id", "seq"]);
  await index(db, "events_type_idx", "events", ["type", "seq"]);

  await table(db, t, "approvals")
    .addColumn("id", id, (c) => c.primaryKey())
    .addColumn("incident_id", id, (c) => c.notNull())
    .addColumn("task_id", id)
    .addColumn("state", "varchar(16)", (c) => c.notNull())
    .addColumn("risk", "varchar(16)", (c) => c.notNull())
    .addColumn("action", t.text, (c) => c.notNull())
    .addColumn("requested_at", "bigint", (c) => c.notNull())
    .addColumn("expires_at", "bigint", (c) => c.notNull())
    .addColumn("decided_at", "bigint")
    .addColumn("decided_by", "varchar(255)")
    .addColumn("channel", "varchar(32)")
    .addColumn("reason", t.text)
    .addColumn("chat_id", "varchar(64)")
    .addColumn("message_id", "varchar(64)")
    .execute();
  await index(db, "approvals_state_expires_idx", "approvals", ["state", "expires_at"]);
  await index(db, "approvals_incident_idx", "approvals", ["incident_id", "id"]);

  await table(db, t, "schedules")
    .addColumn("id", id, (c) => c.primaryKey())
    .addColumn("name", "varchar(128)", (c) => c.notNull())
    .addColumn("cron", "varchar(128)", (c) => c.notNull())
    .addColumn("timezone", "varchar(64)", (c) => c.notNull())
    .addColumn("enabled", "integer", (c) => c.notNull().defaultTo(1))
    .addColumn("overlap", "varchar(16)", (c) => c.notNull().defaultTo("skip"))
    .addColumn("task_template", t.text, (c) => c.notNull())
    .addColumn("source", "varchar(16)", (c) => c.notNull())
    .addColumn("next_run_at", "bigint")
    .addColumn("last_run_at", "bigint")
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .execute();
  await index(db, "schedules_name_uq", "schedules", ["name"], true);
  await index(db, "schedules_due_idx", "schedules", ["enabled", "next_run_at"]);

  await table(db, t, "schedule_runs")
    .addColumn("id", id, (c) => c.primaryKey())
    .addColumn("schedule_id", id, (c) => c.notNull())
    .addColumn("scheduled_for", "bigint", (c) => c.notNull())
    .addColumn("task_id", id)
    .addColumn("state", "varchar(16)", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .execute();
  await index(db, "schedule_runs_once_uq", "schedule_runs", ["schedule_id", "scheduled_for"], true);

  await table(db, t, "runners")
    .addColumn("id", "varchar(128)", (c) => c.primaryKey())
    .addColumn("host", "varchar(255)", (c) => c.notNull())
    .addColumn("version", "varchar(64)", (c) => c.notNull())
    .addColumn("pool", "varchar(64)", (c) => c.notNull())
    .addColumn("concurrency", "integer", (c) => c.notNull())
    .addColumn("running", "integer", (c) => c.notNull())
    .addColumn("running_task_ids", t.text, (c) => c.notNull())
    .addColumn("totals", t.text, (c) => c.notNull())
    .addColumn("started_at", "bigint", (c) => c.notNull())
    .addColumn("last_seen_at", "bigint", (c) => c.notNull())
    .execute();
  await index(db, "runners_last_seen_idx", "runners", ["last_seen_at"]);

  await table(db, t, "webhook_deliveries")
    .addColumn("id", id, (c) => c.primaryKey())
    .addColumn("target", "varchar(128)", (c) => c.notNull())
    .addColumn("event_type", "varchar(64)", (c) => c.notNull())
    .addColumn("event_id", "varchar(64)", (c) => c.notNull())
    .addColumn("payload", t.text, (c) => c.notNull())
    .addColumn("state", "varchar(16)", (c) => c.notNull())
    .addColumn("attempts", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("next_attempt_at", "bigint", (c) => c.notNull())
    .addColumn("last_status", "integer")
    .addColumn("last_error", t.text)
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("delivered_at", "bigint")
    .execute();
  await index(db, "webhook_deliveries_due_idx", "webhook_deliveries", ["state", "next_attempt_at"]);
  await index(db, "webhook_deliveries_target_idx", "webhook_deliveries", ["target", "id"]);
  await index(db, "webhook_deliveries_once_uq", "webhook_deliveries", ["target", "event_id"], true);

  await table(db, t, "external_claims")
    .addColumn("id", id, (c) => c.primaryKey())
    .addColumn("incident_id", id, (c) => c.notNull())
    .addColumn("task_id", id)
    .addColumn("agent", "varchar(128)", (c) => c.notNull())
    .addColumn("active_key", id)
    .addColumn("state", "varchar(16)", (c) => c.notNull())
    .addColumn("lease_until", "bigint", (c) => c.notNull())
    .addColumn("result_status", "varchar(32)")
    .addColumn("result", t.text)
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .execute();
  await index(db, "external_claims_active_uq", "external_claims", ["active_key"], true);
  await index(db, "external_claims_incident_idx", "external_claims", ["incident_id", "id"]);

  await table(db, t, "outbox")
    .addColumn("id", id, (c) => c.primaryKey())
    .addColumn("topic", "varchar(32)", (c) => c.notNull())
    .addColumn("msg_id", "varchar(128)", (c) => c.notNull())
    .addColumn("payload", t.text, (c) => c.notNull())
    .addColumn("attempts", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("last_error", t.text)
    .addColumn("available_at", "bigint", (c) => c.notNull())
    .addColumn("lease_owner", "varchar(64)")
    .addColumn("lease_until", "bigint")
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("sent_at", "bigint")
    .execute();
  await index(db, "outbox_pending_idx", "outbox", ["sent_at", "available_at"]);
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const name of [
    "outbox",
    "external_claims",
    "webhook_deliveries",
    "runners",
    "schedule_runs",
    "schedules",
    "approvals",
    "events",
    "tasks",
    "alerts",
    "incidents",
  ]) {
    await db.schema.dropTable(name).ifExists().execute();
  }
}
