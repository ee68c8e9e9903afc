import { randomBytes } from "node:crypto";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appendEvent } from "../../src/events/repo.ts";
import { deferInserts } from "../../src/store/deferred-inserts.ts";
import { requestDelivery } from "../../src/notify/requests.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";

// Held one-row INSERTs (store/deferred-inserts.ts), on both stores: what a transaction reads and
// what it commits are what it would have been with every INSERT sent when asked; a rollback keeps
// none; an INSERT's error fails the transaction that held it.

const factories = await storeFactories();

for (const f of factories) {
  describe.skipIf(!f.available)(`deferred inserts on ${f.name}`, () => {
    let store: TestStore;
    beforeAll(async () => {
      store = await f.make();
    });
    afterAll(async () => store?.close());

    const event = (incidentId: string, type: string, id?: string) => ({
      ...(id && { id }),
      type,
      incidentId,
      actor: "test",
      channel: "test",
      reason: type,
      occurredAt: Date.now(),
    });
    const eventsOf = (incidentId: string, db = store.db) =>
      db.selectFrom("events").select(["id", "type"]).where("incident_id", "=", incidentId).orderBy("seq").execute();

    it("writes held rows before the next read and at commit, in the order they were asked for, as multi-row INSERTs", async () => {
      const inc = `inc_T${randomBytes(6).toString("hex").toUpperCase()}`;
      let statements: number | undefined;
      const seen = await store.db.transaction().execute(async (trx) => {
        // MySQL counts the INSERT statements a session sends: what was held went out as one per table.
        const inserts = async () =>
          Number(((await sql`show session status like 'Com_insert'`.execute(trx)).rows[0] as { Value: string }).Value);
        const before = store.dialect === "mysql" ? await inserts() : 0;
        await deferInserts(trx, ["events", "deliveries"]);
        // incident.detected also asks for its notice and its webhook fan-out: rows in deliveries.
        for (const type of ["incident.detected", "a.one", "a.two"])
          await appendEvent(trx, store.dialect, event(inc, type), Date.now());
        const midway = (await eventsOf(inc, trx)).map((e) => e.type);
        if (store.dialect === "mysql") statements = (await inserts()) - before;
        await appendEvent(trx, store.dialect, event(inc, "a.three"), Date.now());
        return midway;
      });
      expect(seen).toEqual(["incident.detected", "a.one", "a.two"]);
      expect((await eventsOf(inc)).map((e) => e.type)).toEqual(["incident.detected", "a.one", "a.two", "a.three"]);
      const requests = await store.db.selectFrom("deliveries").select("kind").where("incident_id", "=", inc).execute();
      expect(requests.length).toBeGreaterThan(0);
      // 3 events and their delivery requests: one INSERT for the events, one for the requests.
      if (store.dialect === "mysql") expect(statements).toBe(2);
    });

    it("keeps rows apart whose ON CONFLICT clauses bind different values, so each row's clause applies as asked", async () => {
      const ref = `inc_T${randomBytes(6).toString("hex").toUpperCase()}`;
      const [t1, t2] = [Date.now() - 5000, Date.now()];
      await store.db.transaction().execute(async (trx) => {
        await deferInserts(trx, ["deliveries"]);
        // The same pending message asked for twice: the second bumps the first, at its own time.
        await requestDelivery(trx, store.dialect, { channel: "telegram", kind: "incident.card", ref }, t1);
        await requestDelivery(trx, store.dialect, { channel: "telegram", kind: "incident.card", ref }, t2);
      });
      const row = await store.db
        .selectFrom("deliveries")
        .select(["requests", "updated_at", "created_at"])
        .where("ref", "=", ref)
        .executeTakeFirstOrThrow();
      expect({
        requests: Number(row.requests),
        created: Number(row.created_at),
        updated: Number(row.updated_at),
      }).toEqual({
        requests: 2,
        created: t1,
        updated: t2,
      });
    });

    it("keeps nothing of a transaction that rolled back, and holds nothing once it ended", async () => {
      const inc = `inc_T${randomBytes(6).toString("hex").toUpperCase()}`;
      await expect(
        store.db.transaction().execute(async (trx) => {
          await deferInserts(trx, ["events"]);
          await appendEvent(trx, store.dialect, event(inc, "b.one"), Date.now());
          throw new Error("changed my mind");
        }),
      ).rejects.toThrow("changed my mind");
      expect(await eventsOf(inc)).toEqual([]);
      // The next transaction on the same connection (SQLite has one) holds nothing unless it asks.
      await store.db.transaction().execute(async (trx) => {
        await appendEvent(trx, store.dialect, event(inc, "b.two"), Date.now());
        expect((await eventsOf(inc, trx)).map((e) => e.type)).toEqual(["b.two"]);
      });
    });

    it("fails the transaction when a held row cannot be written, and stores none of it", async () => {
      const inc = `inc_T${randomBytes(6).toString("hex").toUpperCase()}`;
      const id = `evt_T${randomBytes(6).toString("hex").toUpperCase()}`;
      await appendEvent(store.db, store.dialect, event(inc, "c.first", id), Date.now());
      await expect(
        store.db.transaction().execute(async (trx) => {
          await deferInserts(trx, ["events"]);
          await trx
            .insertInto("events")
            .values({
              id: `evt_T${randomBytes(6).toString("hex").toUpperCase()}`,
              type: "c.second",
              task_id: null,
              incident_id: inc,
              actor: "test",
              channel: "test",
              reason: null,
              data: "{}",
              occurred_at: 1,
              recorded_at: 1,
            })
            .execute();
          // The same id again, as a plain INSERT: the held statement writing both fails.
          await trx
            .insertInto("events")
            .values({
              id,
              type: "c.dup",
              task_id: null,
              incident_id: inc,
              actor: "t",
              channel: "t",
              reason: null,
              data: "{}",
              occurred_at: 1,
              recorded_at: 1,
            })
            .execute();
        }),
      ).rejects.toThrow();
      expect((await eventsOf(inc)).map((e) => e.type)).toEqual(["c.first"]);
    });
  });
}
