import { MysqlAdapter, sql, type CreateTableBuilder, type Kysely } from "kysely";
import { createIndexIfMissing } from "./helpers.ts";

// The web console. `console_sessions`: one row per signed-in browser, keyed by the sha256 of the
// cookie's random value (the value itself is never stored), with who it is (subject, scopes, how
// they signed in), the CSRF secret of its forms, and its expiry; signing out deletes the row, and
// every replica reads the same rows. `console_logins`: an OIDC sign-in under way, keyed by the
// sha256 of its `state`, holding the nonce and PKCE verifier until the issuer sends the browser
// back (used once, deleted then or when it expires).
//
// Safe to run again: databases that recorded this migration while it was an empty placeholder get
// it applied by hand (`up` skips what exists).

export async function up(db: Kysely<any>): Promise<void> {
  const isMysql = db.getExecutor().adapter instanceof MysqlAdapter;
  const table = (name: string): CreateTableBuilder<string, never> => {
    const b = db.schema.createTable(name).ifNotExists();
    return isMysql ? b.modifyEnd(sql`engine=InnoDB default charset=utf8mb4 collate=utf8mb4_bin`) : b;
  };

  await table("console_sessions")
    .addColumn("id", "varchar(64)", (c) => c.primaryKey())
    .addColumn("subject", "varchar(255)", (c) => c.notNull())
    .addColumn("scopes", "varchar(64)", (c) => c.notNull())
    .addColumn("method", "varchar(16)", (c) => c.notNull())
    .addColumn("via", "varchar(255)", (c) => c.notNull())
    .addColumn("credential", "varchar(64)")
    .addColumn("csrf", "varchar(64)", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("last_seen_at", "bigint", (c) => c.notNull())
    .addColumn("expires_at", "bigint", (c) => c.notNull())
    .execute();
  await createIndexIfMissing(db, "console_sessions_expires_idx", "console_sessions", ["expires_at"]);

  await table("console_logins")
    .addColumn("id", "varchar(64)", (c) => c.primaryKey())
    .addColumn("nonce", "varchar(64)", (c) => c.notNull())
    .addColumn("verifier", "varchar(128)", (c) => c.notNull())
    .addColumn("browser", "varchar(64)", (c) => c.notNull())
    .addColumn("next", "varchar(1000)", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("expires_at", "bigint", (c) => c.notNull())
    .execute();
  await createIndexIfMissing(db, "console_logins_expires_idx", "console_logins", ["expires_at"]);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("console_logins").ifExists().execute();
  await db.schema.dropTable("console_sessions").ifExists().execute();
}
