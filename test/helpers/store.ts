import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Database } from "../../src/config/load.ts";
import { migrateToLatest, openStore, type Store } from "../../src/store/db.ts";
import { hasMysql, MYSQL_URL } from "./services.ts";

/** A store plus the settings that open it again (for child processes). */
export type TestStore = Store & { database: Database };

export type StoreFactory = { name: "sqlite" | "mysql"; available: boolean; make(): Promise<TestStore> };

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
        return { ...store, database, close: async () => (await close(), rmSync(dir, { recursive: true, force: true })) };
      },
    },
    {
      name: "mysql",
      available: mysqlUp,
      async make() {
        const database: Database = { dialect: "mysql", url: MYSQL_URL, poolSize: 10 };
        const store = openStore(database);
        await migrateToLatest(store);
        return { ...store, database };
      },
    },
  ];
}
