import { MysqlAdapter, type Kysely } from "kysely";

// Decide, then act: a merge approval names its pull request and the head it was proposed at
// (`pr_number`, `pr_branch`, `head_sha`), and records the merge that follows the decision — when
// its job was queued (`merge_queued_at`, also what the stuck-merge recovery times), when the first
// merge call went out (`merge_started_at`: from then on a resolve no longer revokes the decision),
// how often it was queued again (`merge_requeues`), and the result (`merge_sha`, `merged_at`).

const COLUMNS: Array<[string, "integer" | "bigint" | "varchar(64)" | "varchar(255)"]> = [
  ["pr_number", "integer"],
  ["pr_branch", "varchar(255)"],
  ["head_sha", "varchar(64)"],
  ["merge_queued_at", "bigint"],
  ["merge_started_at", "bigint"],
  ["merge_sha", "varchar(64)"],
  ["merged_at", "bigint"],
];

export async function up(db: Kysely<any>): Promise<void> {
  for (const [name, type] of COLUMNS) await db.schema.alterTable("approvals").addColumn(name, type).execute();
  await db.schema
    .alterTable("approvals")
    .addColumn("merge_requeues", "integer", (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema
    .createIndex("approvals_merge_queued_idx")
    .on("approvals")
    .columns(["state", "merge_queued_at"])
    .execute();

  // Merge approvals written before: their pull request came from the action; an approved one was
  // merged before it was marked approved.
  const rows = (await db
    .selectFrom("approvals")
    .select(["id", "state", "action", "decided_at"])
    .where("action", "like", '%"merge"%')
    .execute()) as Array<{ id: string; state: string; action: string; decided_at: number | null }>;
  for (const r of rows) {
    let pr: { number?: unknown; branch?: unknown; sha?: unknown } | undefined;
    try {
      pr = (JSON.parse(r.action) as { merge?: typeof pr }).merge;
    } catch {
      continue;
    }
    if (!pr || typeof pr.number !== "number") continue;
    await db
      .updateTable("approvals")
      .set({
        pr_number: pr.number,
        pr_branch: typeof pr.branch === "string" ? pr.branch.slice(0, 255) : null,
        head_sha: typeof pr.sha === "string" ? pr.sha.slice(0, 64) : null,
        ...(r.state === "approved" ? { merged_at: r.decided_at } : {}),
      })
      .where("id", "=", r.id)
      .execute();
  }
}

export async function down(db: Kysely<any>): Promise<void> {
  const isMysql = db.getExecutor().adapter instanceof MysqlAdapter;
  await (isMysql
    ? db.schema.dropIndex("approvals_merge_queued_idx").on("approvals")
    : db.schema.dropIndex("approvals_merge_queued_idx")
  ).execute();
  await db.schema.alterTable("approvals").dropColumn("merge_requeues").execute();
  for (const [name] of [...COLUMNS].reverse()) await db.schema.alterTable("approvals").dropColumn(name).execute();
}
