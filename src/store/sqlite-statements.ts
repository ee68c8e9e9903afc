import type SQLite from "better-sqlite3";
import type { SqliteDatabase } from "kysely";

// Kysely's SQLite driver prepares every query it runs, and preparing (parsing and planning the
// SQL) costs more than running most of Pitcrew's statements. better-sqlite3 statements can be run
// again and again, so the ones used most recently are kept, by their SQL text. Kysely runs them
// with all()/run() (synchronous, finished before the next use); nothing here streams a query with
// iterate(), which would hold its statement busy.

/** Statements kept; the least recently used goes first. */
const DEFAULT_MAX = 1000;

export function withStatementCache(db: SQLite.Database, max = DEFAULT_MAX): SqliteDatabase {
  const cache = new Map<string, SQLite.Statement>();
  return {
    close: () => {
      cache.clear();
      db.close();
    },
    prepare(sql: string) {
      let statement = cache.get(sql);
      if (statement) {
        // Map order is insertion order: re-inserting marks it most recently used.
        cache.delete(sql);
      } else {
        statement = db.prepare(sql);
        if (cache.size >= max) cache.delete(cache.keys().next().value!);
      }
      cache.set(sql, statement);
      return statement;
    },
  };
}
