import { MysqlAdapter, sql, type Kysely } from "kysely";

// What the migrations share: they must be safe to run twice (a database may have recorded a
// migration before it had its content), and MySQL 8 has no CREATE INDEX IF NOT EXISTS nor ADD
// COLUMN IF NOT EXISTS, so indexes and columns are looked up before they are made. Not a migration:
// index.ts lists the migrations by name.

export const isMysql = (db: Kysely<any>): boolean => db.getExecutor().adapter instanceof MysqlAdapter;

/** Creates the index unless one of that name exists on the table. */
export async function createIndexIfMissing(
  db: Kysely<any>,
  name: string,
  table: string,
  columns: string[],
  opts: { unique?: boolean } = {},
): Promise<void> {
  if (isMysql(db)) {
    const found = await sql<{ n: number }>`
      select count(*) as n from information_schema.statistics
      where table_schema = database() and table_name = ${table} and index_name = ${name}`.execute(db);
    if (Number(found.rows[0]?.n ?? 0) > 0) return;
    const b = db.schema.createIndex(name).on(table).columns(columns);
    await (opts.unique ? b.unique() : b).execute();
  } else {
    const b = db.schema.createIndex(name).ifNotExists().on(table).columns(columns);
    await (opts.unique ? b.unique() : b).execute();
  }
}

/** The table's column names, lower-cased. */
export async function columnsOf(db: Kysely<any>, table: string): Promise<Set<string>> {
  const rows = isMysql(db)
    ? await sql<{
        name: string;
      }>`select column_name as name from information_schema.columns where table_schema = database() and table_name = ${table}`.execute(
        db,
      )
    : await sql<{ name: string }>`select name from pragma_table_info(${table})`.execute(db);
  return new Set(rows.rows.map((r) => r.name.toLowerCase()));
}
