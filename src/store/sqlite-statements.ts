import type SQLite from "better-sqlite3";
import type { SqliteDatabase } from "kysely";

// Kysely's SQLite driver prepares every query it runs, and preparing (parsing and planning the
// SQL) costs more than running most of Pitcrew's statements. better-sqlite3 statements can be run
// again and again, so the ones used most recently are kept, by their SQL text. Kysely runs them
// with all()/run() (synchronous, finished before the next use); nothing here streams a query with
// iterate(), which would hold its statement busy.

/**
 * Statements kept; past that, the oldest prepared goes first. Pitcrew runs a few hundred distinct
 * statements, so the limit only bounds a pathological caller: a hit costs one lookup, with no
 * bookkeeping of recency (which was a delete and an insert per statement run).
 */
const DEFAULT_MAX = 1000;

export function withStatementCache(db: SQLite.Database, max = DEFAULT_MAX): SqliteDatabase {
  const cache = new Map<string, SQLite.Statement>();
  return {
    close: () => {
      cache.clear();
      db.close();
    },
    prepare(sql: string) {
      const kept = cache.get(sql);
      if (kept) return kept;
      const statement = db.prepare(sql);
      // Map order is insertion order: the first key is the oldest.
      if (cache.size >= max) cache.delete(cache.keys().next().value!);
      cache.set(sql, statement);
      return statement;
    },
  };
}
