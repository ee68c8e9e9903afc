import type { Insertable, Kysely, Transaction } from "kysely";
import type { Dialect } from "./db.ts";
import type { DB } from "./schema.ts";

// The few real SQL differences between MySQL and SQLite, one function each.

export type Executor = Kysely<DB> | Transaction<DB>;

/**
 * Inserts a row unless one with the same unique key exists. Returns true when it inserted.
 * MySQL: a plain INSERT whose duplicate-key error (1062) is caught; it rolls back only that
 * statement, not the transaction. INSERT IGNORE would also turn real errors into warnings, and
 * ON DUPLICATE KEY UPDATE cannot tell "inserted" from "found" under mysql2's FOUND_ROWS flag.
 */
export async function insertIfAbsent<T extends keyof DB & string>(
  db: Executor,
  dialect: Dialect,
  table: T,
  row: Insertable<DB[T]>,
): Promise<boolean> {
  const q = db.insertInto(table).values(row as never);
  if (dialect === "sqlite") {
    const res = await q.onConflict((oc) => oc.doNothing()).executeTakeFirst();
    return Number(res.numInsertedOrUpdatedRows ?? 0n) > 0;
  }
  try {
    await q.execute();
    return true;
  } catch (err) {
    if (isDuplicateKey(err)) return false;
    throw err;
  }
}

export function isDuplicateKey(err: unknown): boolean {
  const e = err as { code?: string; errno?: number } | undefined;
  return (
    e?.code === "ER_DUP_ENTRY" ||
    e?.errno === 1062 ||
    e?.code === "SQLITE_CONSTRAINT_UNIQUE" ||
    e?.code === "SQLITE_CONSTRAINT_PRIMARYKEY"
  );
}

/** Inserts the row, or updates `update` on the existing row with the same `key`. */
export async function upsert<T extends keyof DB & string>(
  db: Executor,
  dialect: Dialect,
  table: T,
  row: Insertable<DB[T]>,
  key: keyof DB[T] & string,
  update: Partial<Insertable<DB[T]>>,
): Promise<void> {
  const q = db.insertInto(table).values(row as never);
  if (dialect === "mysql") await q.onDuplicateKeyUpdate(update as never).execute();
  else await q.onConflict((oc) => oc.column(key as never).doUpdateSet(update as never)).execute();
}
