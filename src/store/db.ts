import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import SQLite from "better-sqlite3";
import {
  CompiledQuery,
  Kysely,
  Migrator,
  MysqlDialect,
  SqliteDialect,
  sql,
  type Dialect as KyselyDialect,
  type MigrationProvider,
} from "kysely";
import type * as Mysql2 from "mysql2";
import type { Database } from "../config/load.ts";
import { unavailable, withTimeout } from "../shared/errors.ts";
import { migrations } from "../../migrations/index.ts";
import type { DB } from "./schema.ts";
import { describeDbError, isDbUnavailable } from "./errors.ts";
import type { Logger } from "../shared/logger.ts";
import { withCommitHooks, type CommitHooks } from "./commit-hooks.ts";
import { withStatementCache } from "./sqlite-statements.ts";
import { withDeferredInserts } from "./deferred-inserts.ts";

export type Dialect = Database["dialect"];

export type Store = CommitHooks & {
  db: Kysely<DB>;
  dialect: Dialect;
  /** Resolves when the database answers a trivial query within `timeoutMs`. */
  ping(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
};

export function openStore(database: Database): Store {
  if (database.dialect === "sqlite") {
    mkdirSync(dirname(database.file), { recursive: true });
    const sqlite = new SQLite(database.file);
    sqlite.pragma("journal_mode = WAL");
    sqlite.pragma("synchronous = NORMAL");
    sqlite.pragma("busy_timeout = 5000");
    sqlite.pragma("foreign_keys = ON");
    return makeStore(new SqliteDialect({ database: withStatementCache(sqlite) }), "sqlite");
  }
  // Loaded here, not at the top: an embedded (SQLite) installation never loads mysql2 (~16 MB).
  const { createPool } = createRequire(import.meta.url)("mysql2") as typeof Mysql2;
  const pool = createPool({
    uri: database.url,
    connectionLimit: database.poolSize,
    // Times are stored as epoch ms, but keep the session in UTC for anything that is not.
    timezone: "Z",
    charset: "utf8mb4",
    connectTimeout: 5000,
    enableKeepAlive: true,
    // An unreachable server must fail fast (→ 503) instead of queueing requests forever.
    queueLimit: 1000,
  });
  return makeStore(
    new MysqlDialect({
      pool,
      // Strict mode whatever the server default: a value too long for its column is an error,
      // never silently cut.
      onCreateConnection: async (conn) => {
        await conn.executeQuery(
          CompiledQuery.raw(
            "SET SESSION sql_mode = 'STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'",
          ),
        );
      },
    }),
    "mysql",
  );
}

function makeStore(driver: KyselyDialect, dialect: Dialect): Store {
  const hooked = withCommitHooks(withDeferredInserts(driver));
  const db = new Kysely<DB>({ dialect: hooked.dialect });
  hooked.attach(db);
  let closed = false;
  return {
    ...hooked.hooks,
    db,
    dialect,
    async ping(timeoutMs = 2000) {
      try {
        await withTimeout(sql`select 1`.execute(db), timeoutMs, "store");
      } catch (err) {
        throw unavailable("store.unavailable", `database did not answer: ${describeDbError(err)}`, err);
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await db.destroy();
    },
  };
}

const provider: MigrationProvider = { getMigrations: async () => migrations };

export async function migrateToLatest(store: Store): Promise<string[]> {
  const migrator = new Migrator({ db: store.db, provider });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === "Error");
  if (error || failed) {
    const name = failed?.migrationName ?? "unknown";
    throw new Error(`migration ${name} failed: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  }
  return (results ?? []).filter((r) => r.status === "Success").map((r) => r.migrationName);
}

/**
 * Migrates, waiting for a MySQL server that is still starting (a fresh `docker compose up`):
 * retries only while the server cannot be reached. SQLite errors are final at once.
 */
export async function migrateWithRetry(store: Store, log: Logger, attempts = 30): Promise<string[]> {
  for (let i = 1; ; i++) {
    try {
      return await migrateToLatest(store);
    } catch (err) {
      if (store.dialect !== "mysql" || !isDbUnavailable(err) || i >= attempts) throw err;
      log.warn({ attempt: i, error: describeDbError(err) }, "database not reachable yet; retrying");
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}
