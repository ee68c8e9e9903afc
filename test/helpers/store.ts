import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Database } from "../../src/config/load.ts";
import { randomBytes } from "node:crypto";
import { sql } from "kysely";
import { migrateToLatest, openStore, type Store } from "../../src/store/db.ts";
import { hasMysql, MYSQL_URL } from "./services.ts";

/** A store plus the settings that open it again (for child processes). */
export type TestStore = Store & { database: Database };

export type StoreFactory = {
  name: "sqlite" | "mysql";
  available: boolean;
  /** A store; on MySQL the shared test database unless `own` asks for a private one. */
  make(opts?: { own?: boolean }): Promise<TestStore>;
};

/**
 * A private MySQL database (`<db>_<tag>`), dropped on close: for tests whose outbox relays would
 * otherwise publish other test files' rows from the shared database (a relay serves a whole
 * database, as it should in production).
 */
export async function privateMysqlUrl(): Promise<{ url: string; drop: () => Promise<void> }> {
  const base = new URL(MYSQL_URL);
  const name = `${base.pathname.slice(1) || "test"}_${randomBytes(4).toString("hex")}`;
  const admin = openStore({ dialect: "mysql", url: MYSQL_URL, poolSize: 1 });
  await sql.raw(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`).execute(admin.db);
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      await sql.raw(`DROP DATABASE IF EXISTS \`${name}\``).execute(admin.db);
      await admin.close();
    },
  };
}

/** SQLite in a fresh temp file per store; MySQL on the shared test database, migrated. */
export async function storeFactories(): Promise<StoreFactory[]> {
  const mysqlUp = await hasMysql();
  return [
    {
      name: "sqlite",
      available: true,
      async make() {
        const dir = mkdtempSync(join(tmpdir(), "pitcrew-test-"));
        const database: Database = { dialect: "sqlite", file: join(dir, "test.db") };
        const store = openStore(database);
        await migrateToLatest(store);
        const close = store.close;
        return {
          ...store,
          database,
          close: async () => (await close(), rmSync(dir, { recursive: true, force: true })),
        };
      },
    },
    {
      name: "mysql",
      available: mysqlUp,
      async make(opts = {}) {
        const own = opts.own ? await privateMysqlUrl() : undefined;
        const database: Database = { dialect: "mysql", url: own?.url ?? MYSQL_URL, poolSize: 10 };
        const store = openStore(database);
        await migrateToLatest(store);
        const close = store.close;
        return { ...store, database, close: async () => (await close(), await own?.drop()) };
      },
    },
  ];
}
