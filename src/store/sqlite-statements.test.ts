import SQLite from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { withStatementCache } from "./sqlite-statements.ts";

describe("SQLite statement cache", () => {
  it("prepares a statement once and runs it again, and keeps at most `max`, dropping the oldest", () => {
    const raw = new SQLite(":memory:");
    let prepared = 0;
    const counting = new Proxy(raw, {
      get: (target, prop) =>
        prop === "prepare"
          ? (sql: string) => (prepared++, target.prepare(sql))
          : (Reflect.get(target, prop) as unknown),
    });
    const db = withStatementCache(counting, 2);
    const [a, b, c] = ["select 1 as n", "select 2 as n", "select 3 as n"];
    const first = db.prepare(a);
    expect(db.prepare(a)).toBe(first);
    expect((db.prepare(a) as SQLite.Statement).get()).toEqual({ n: 1 });
    expect(prepared).toBe(1);
    db.prepare(b);
    db.prepare(c); // over the limit: `a`, the oldest, goes
    expect(prepared).toBe(3);
    db.prepare(b);
    expect(prepared).toBe(3);
    expect(db.prepare(a)).not.toBe(first);
    expect(prepared).toBe(4);
    db.close();
  });
});
