import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
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

const mysqlUrlOf = (name: string) => {
  const url = new URL(MYSQL_URL);
  url.pathname = `/${name}`;
  return url.toString();
};

/**
 * A migrated database that private ones are copied from: migrating a fresh MySQL database is
 * seconds of DDL, copying its tables (and the rows the migrations seeded) well under one. Named
 * after the migrations' source, so a changed migration gets a template of its own; made once per
 * server, under a lock since test files run in parallel, and kept.
 */
async function mysqlTemplate(admin: Store): Promise<string> {
  const dir = new URL("../../migrations/", import.meta.url);
  const hash = createHash("sha256");
  for (const f of readdirSync(dir).sort()) hash.update(f).update(readFileSync(new URL(f, dir)));
  const name = `${new URL(MYSQL_URL).pathname.slice(1) || "test"}_template_${hash.digest("hex").slice(0, 12)}`;
  await admin.db.connection().execute(async (conn) => {
    await sql`select get_lock('pitcrew_test_template', 120)`.execute(conn);
    try {
      const done = await sql<{ n: number }>`
        select count(*) as n from information_schema.tables
        where table_schema = ${name} and table_name = 'template_ready'`.execute(conn);
      if (Number(done.rows[0]!.n) > 0) return;
      await sql.raw(`DROP DATABASE IF EXISTS \`${name}\``).execute(conn);
      await sql.raw(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`).execute(conn);
      const template = openStore({ dialect: "mysql", url: mysqlUrlOf(name), poolSize: 1 });
      try {
        await migrateToLatest(template);
      } finally {
        await template.close();
      }
      // Written last: a template cut short by a crash is made again.
      await sql.raw(`CREATE TABLE \`${name}\`.template_ready (id int)`).execute(conn);
    } finally {
      await sql`select release_lock('pitcrew_test_template')`.execute(conn);
    }
  });
  return name;
}

/**
 * A private MySQL database (`<db>_<tag>`), dropped on close: for tests whose outbox relays would
 * otherwise publish other test files' rows from the shared database (a relay serves a whole
 * database, as it should in production). Empty, or with `migrated` a copy of the migrated
 * template: the same tables, indexes, collations and seeded rows.
 */
export async function privateMysqlUrl(opts: { migrated?: boolean } = {}): Promise<{
  url: string;
  drop: () => Promise<void>;
}> {
  const base = new URL(MYSQL_URL);
  const name = `${base.pathname.slice(1) || "test"}_${randomBytes(4).toString("hex")}`;
  const admin = openStore({ dialect: "mysql", url: MYSQL_URL, poolSize: 4 });
  await sql.raw(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`).execute(admin.db);
  if (opts.migrated) {
    const template = await mysqlTemplate(admin);
    const tables = await sql<{ t: string }>`
      select table_name as t from information_schema.tables
      where table_schema = ${template} and table_type = 'BASE TABLE' and table_name <> 'template_ready'`.execute(
      admin.db,
    );
    await Promise.all(
      tables.rows.map(async ({ t }) => {
        await sql.raw(`CREATE TABLE \`${name}\`.\`${t}\` LIKE \`${template}\`.\`${t}\``).execute(admin.db);
        await sql.raw(`INSERT INTO \`${name}\`.\`${t}\` SELECT * FROM \`${template}\`.\`${t}\``).execute(admin.db);
      }),
    );
  }
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
        const own = opts.own ? await privateMysqlUrl({ migrated: true }) : undefined;
        const database: Database = { dialect: "mysql", url: own?.url ?? MYSQL_URL, poolSize: 10 };
        const store = openStore(database);
        await migrateToLatest(store);
        const close = store.close;
        return { ...store, database, close: async () => (await close(), await own?.drop()) };
      },
    },
  ];
}
