import { MysqlAdapter, sql, type Kysely } from "kysely";
import { createIndexIfMissing } from "./helpers.ts";

// An approval is bound to the exact change: besides the head sha (0005), the diff it was asked for
// — `diff_summary` (JSON `{files:[{path,added,removed}],added,removed}`) and `diff_excerpt` (a
// short unified diff) — shown to the approver. An incident records its time to resolve
// (`time_to_resolve_ms`, from the occurrence's opening to the resolve) and when the metrics
// histogram counted it (`ttr_observed_at`), so each resolve is observed once across replicas.
//
// Safe to run again: databases that recorded this migration while it was an empty placeholder get
// it applied by hand (`up` skips what exists).

export async function up(db: Kysely<any>): Promise<void> {
  const isMysql = db.getExecutor().adapter instanceof MysqlAdapter;
  const text = isMysql ? sql`mediumtext` : "text";
  const tables = await db.introspection.getTables();
  const has = (table: string, column: string) =>
    !!tables.find((t) => t.name === table)?.columns.some((c) => c.name === column);
  if (!has("approvals", "diff_summary"))
    await db.schema.alterTable("approvals").addColumn("diff_summary", text).execute();
  if (!has("approvals", "diff_excerpt"))
    await db.schema.alterTable("approvals").addColumn("diff_excerpt", text).execute();
  if (!has("incidents", "time_to_resolve_ms"))
    await db.schema.alterTable("incidents").addColumn("time_to_resolve_ms", "bigint").execute();
  if (!has("incidents", "ttr_observed_at"))
    await db.schema.alterTable("incidents").addColumn("ttr_observed_at", "bigint").execute();
  // The metrics' scan for resolves not yet observed: `ttr_observed_at IS NULL AND time_to_resolve_ms IS NOT NULL`.
  await createIndexIfMissing(db, "incidents_ttr_unobserved_idx", "incidents", [
    "ttr_observed_at",
    "time_to_resolve_ms",
  ]);
  // list_approvals: one state, newest first, paged by id.
  await createIndexIfMissing(db, "approvals_state_id_idx", "approvals", ["state", "id"]);
}

export async function down(db: Kysely<any>): Promise<void> {
  const isMysql = db.getExecutor().adapter instanceof MysqlAdapter;
  await (isMysql
    ? db.schema.dropIndex("approvals_state_id_idx").on("approvals")
    : db.schema.dropIndex("approvals_state_id_idx")
  ).execute();
  await (isMysql
    ? db.schema.dropIndex("incidents_ttr_unobserved_idx").on("incidents")
    : db.schema.dropIndex("incidents_ttr_unobserved_idx")
  ).execute();
  await db.schema.alterTable("incidents").dropColumn("ttr_observed_at").execute();
  await db.schema.alterTable("incidents").dropColumn("time_to_resolve_ms").execute();
  await db.schema.alterTable("approvals").dropColumn("diff_excerpt").execute();
  await db.schema.alterTable("approvals").dropColumn("diff_summary").execute();
}
