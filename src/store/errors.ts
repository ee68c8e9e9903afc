// Driver errors that mean "try again": lock conflicts, and a database that is away.

const RETRYABLE_MYSQL = new Set(["ER_LOCK_DEADLOCK", "ER_LOCK_WAIT_TIMEOUT"]);
const UNAVAILABLE = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "EPIPE",
  "PROTOCOL_CONNECTION_LOST",
  "PROTOCOL_SEQUENCE_TIMEOUT",
  "ER_CON_COUNT_ERROR",
  "ER_SERVER_SHUTDOWN",
  "ER_QUERY_INTERRUPTED",
  "SQLITE_BUSY",
  "SQLITE_LOCKED",
  "SQLITE_CANTOPEN",
  "SQLITE_IOERR",
  "SQLITE_FULL",
  "SQLITE_READONLY",
]);

function code(err: unknown): string | undefined {
  const e = err as { code?: string; cause?: { code?: string } } | undefined;
  return e?.code ?? e?.cause?.code;
}

export function isRetryableDbError(err: unknown): boolean {
  const c = code(err);
  return c !== undefined && (RETRYABLE_MYSQL.has(c) || c === "SQLITE_BUSY");
}

/** The database cannot be reached or used right now (callers answer 503, queues retry). */
export function isDbUnavailable(err: unknown): boolean {
  const c = code(err);
  if (c && UNAVAILABLE.has(c)) return true;
  const msg = (err as { message?: string } | undefined)?.message ?? "";
  // Kysely after destroy(), better-sqlite3 after close(), mysql2 pool after end().
  return /driver has already been destroyed|database connection is not open|Pool is closed|connect ETIMEDOUT|Can't add new command when connection is in closed state/i.test(
    msg,
  );
}

/** A short, secret-free description of a driver error (codes, never URLs). */
export function describeDbError(err: unknown): string {
  const e = err as { code?: string; message?: string } | undefined;
  if (e?.code) return e.code;
  return (e?.message ?? String(err)).replace(/\/\/[^@\s]*@/g, "//***@").slice(0, 200);
}
