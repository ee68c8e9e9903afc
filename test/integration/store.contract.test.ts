import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Migrator, NO_MIGRATIONS, sql } from "kysely";
import { migrations } from "../../migrations/index.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Heartbeat } from "../../src/bus/jobs.ts";
import { appendEvent, listEvents } from "../../src/events/repo.ts";
import { listRunners, recordHeartbeat } from "../../src/fleet/repo.ts";
import { newId } from "../../src/shared/ids.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { migrateToLatest, openStore, type Store } from "../../src/store/db.ts";
import type { NewTask, TaskState } from "../../src/store/schema.ts";
import { insertIfAbsent, isDuplicateKey, upsert, type Executor } from "../../src/store/sql.ts";
import { countTasksByState, getTask, listTasks, updateTaskIfActive } from "../../src/tasks/repo.ts";
import { createTaskService, type TaskService } from "../../src/tasks/service.ts";
import { privateMysqlUrl, storeFactories } from "../helpers/store.ts";

// One contract for the store, run against SQLite and MySQL/MariaDB. The MySQL database is shared
// with other test files running in parallel: every test works on rows it created (unique ids and
// markers) and never truncates or counts whole tables.

const TABLES = [
  "incidents",
  "alerts",
  "tasks",
  "events",
  "approvals",
  "schedules",
  "schedule_runs",
  "runners",
  "webhook_deliveries",
  "external_claims",
  "outbox",
];

const factories = await storeFactories();

/** A short unique string to find this test's rows among everybody else's. */
const marker = () => `m${randomUUID().replaceAll("-", "")}`;

function taskRow(over: Partial<NewTask> = {}): NewTask {
  const now = Date.now();
  return {
    id: newId("tsk", now),
    incident_id: null,
    kind: "test.kind",
    pool: "default",
    state: "queued",
    payload: "{}",
    result: null,
    error: null,
    attempts: 0,
    runner_id: null,
    idempotency_key: null,
    created_by: "contract-test",
    created_at: now,
    updated_at: now,
    started_at: null,
    finished_at: null,
    last_event_at: null,
    ...over,
  };
}

function incidentRow(openKey: string | null) {
  const now = Date.now();
  return {
    id: newId("inc", now),
    fingerprint: openKey ?? "closed",
    dedupe_key: null,
    open_key: openKey,
    title: "disk full",
    state: openKey ? "open" : "resolved",
    source: "test",
    severity: null,
    namespace: null,
    service: null,
    labels: "{}",
    annotations: "{}",
    plan: null,
    flap_count: 0,
    failed_fixes: 0,
    truncated_alerts: 0,
    version: 0,
    opened_at: now,
    updated_at: now,
    resolved_at: null,
  };
}

function heartbeat(runnerId: string, at: number, over: Partial<Heartbeat> = {}): Heartbeat {
  return {
    type: "runner.heartbeat",
    id: newId("evt", at),
    runnerId,
    host: "host-a",
    version: "1.0.0",
    pool: "default",
    concurrency: 2,
    running: [],
    totals: { succeeded: 0, failed: 0, cancelled: 0 },
    startedAt: at - 60_000,
    at,
    ...over,
  };
}

async function outboxRowsContaining(db: Executor, text: string) {
  return db.selectFrom("outbox").selectAll().where("payload", "like", `%${text}%`).execute();
}

async function eventRowsContaining(db: Executor, text: string) {
  return db.selectFrom("events").selectAll().where("data", "like", `%${text}%`).execute();
}

/** Rolls a transaction back after `fn` has made its assertions inside it. */
async function insideRolledBackTransaction(store: Store, fn: (trx: Executor) => Promise<void>): Promise<void> {
  const rollback = new Error("rollback");
  // REPEATABLE READ (InnoDB's default, spelled out): the first read fixes a snapshot, so rows
  // committed meanwhile by parallel test files stay invisible and counts differ only by our rows.
  const trx =
    store.dialect === "mysql" ? store.db.transaction().setIsolationLevel("repeatable read") : store.db.transaction();
  await expect(
    trx.execute(async (t) => {
      await fn(t);
      throw rollback;
    }),
  ).rejects.toBe(rollback);
}

for (const f of factories) {
  describe.skipIf(!f.available)(`store contract (${f.name})`, () => {
    let store: Store;
    let tasks: TaskService;

    beforeAll(async () => {
      store = await f.make();
      tasks = createTaskService({ store, log: silentLogger, now: () => Date.now() });
    });

    afterAll(async () => {
      await store?.close();
    });

    describe("migrations", () => {
      it("create every table of the data model, and a second migrateToLatest applies nothing", async () => {
        const before = (await store.db.introspection.getTables()).map((t) => t.name);
        expect(before).toEqual(expect.arrayContaining(TABLES));

        expect(await migrateToLatest(store)).toEqual([]);

        const after = (await store.db.introspection.getTables()).map((t) => t.name);
        expect(after.sort()).toEqual(before.sort());
        const applied = await sql<{ name: string }>`select name from kysely_migration`.execute(store.db);
        expect(applied.rows.map((r) => r.name).sort()).toEqual(Object.keys(migrations).sort());
      });

      it("migrate an empty database up, down to nothing and up again", async () => {
        // A database of its own: migrating the shared MySQL one down would drop tables under other files.
        const dir = mkdtempSync(join(tmpdir(), "pitcrew-migrate-"));
        const own = f.name === "mysql" ? await privateMysqlUrl() : undefined;
        const fresh = own
          ? openStore({ dialect: "mysql", url: own.url, poolSize: 2 })
          : openStore({ dialect: "sqlite", file: join(dir, "fresh.db") });
        try {
          expect(await migrateToLatest(fresh)).toEqual(Object.keys(migrations));
          expect(await migrateToLatest(fresh)).toEqual([]);

          const down = await new Migrator({
            db: fresh.db,
            provider: { getMigrations: async () => migrations },
          }).migrateTo(NO_MIGRATIONS);
          expect(down.error).toBeUndefined();
          expect(
            (await fresh.db.introspection.getTables()).map((t) => t.name).filter((n) => TABLES.includes(n)),
          ).toEqual([]);

          expect(await migrateToLatest(fresh)).toEqual(Object.keys(migrations));
          expect((await fresh.db.introspection.getTables()).map((t) => t.name)).toEqual(expect.arrayContaining(TABLES));
        } finally {
          await fresh.close();
          await own?.drop();
          rmSync(dir, { recursive: true, force: true });
        }
      });

      it.runIf(f.name === "mysql")(
        "make every MySQL table and text column utf8mb4 with a binary collation",
        async () => {
          const tables = await sql<{ name: string; collation: string }>`
          select table_name as name, table_collation as collation from information_schema.tables
          where table_schema = database() and table_name in (${sql.join(TABLES)})`.execute(store.db);
          expect(tables.rows.map((r) => r.name).sort()).toEqual([...TABLES].sort());
          for (const t of tables.rows) expect(t.collation, t.name).toBe("utf8mb4_bin");

          const columns = await sql<{ name: string; charset: string | null }>`
          select concat(table_name, '.', column_name) as name, character_set_name as charset from information_schema.columns
          where table_schema = database() and table_name in (${sql.join(TABLES)}) and character_set_name is not null`.execute(
            store.db,
          );
          expect(columns.rows.length).toBeGreaterThan(50);
          expect(columns.rows.filter((c) => c.charset !== "utf8mb4")).toEqual([]);
        },
      );

      it("round-trips 4-byte emoji and a 100 KB text through the JSON text columns", async () => {
        const long = `🚨 disk full on node-1 😱 ${"x".repeat(100 * 1024)} 🧯end`;
        const payload = { note: long, emoji: "🔥💥🧨", marker: marker() };
        const { task } = await tasks.create({ kind: "diagnose", payload, createdBy: "🤖 bot", channel: "api" });

        const row = await getTask(store.db, task.id);
        expect(row?.created_by).toBe("🤖 bot");
        expect(JSON.parse(row!.payload)).toEqual(payload);
        const [event] = await listEvents(store.db, { taskId: task.id });
        expect(JSON.parse(event!.data).payload).toEqual(payload);
        const [outbox] = await store.db.selectFrom("outbox").select("payload").where("msg_id", "=", task.id).execute();
        expect(JSON.parse(outbox!.payload).body.payload).toEqual(payload);
      });
    });

    describe("task creation", () => {
      it("writes the queued task, one outbox row keyed by the task id and one task.created event", async () => {
        const m = marker();
        const incidentId = newId("inc");
        const { task, created } = await tasks.create({
          kind: "diagnose",
          pool: "gpu",
          payload: { m },
          incidentId,
          createdBy: "alice",
          channel: "api",
        });
        expect(created).toBe(true);

        const row = await getTask(store.db, task.id);
        expect(row).toMatchObject({
          state: "queued",
          kind: "diagnose",
          pool: "gpu",
          incident_id: incidentId,
          created_by: "alice",
          attempts: 0,
        });

        const outbox = await store.db.selectFrom("outbox").selectAll().where("msg_id", "=", task.id).execute();
        expect(outbox).toHaveLength(1);
        expect(outbox[0]).toMatchObject({ topic: "task", sent_at: null, attempts: 0 });
        expect(JSON.parse(outbox[0]!.payload)).toMatchObject({
          pool: "gpu",
          body: { taskId: task.id, kind: "diagnose", incidentId, payload: { m } },
        });
        expect(await outboxRowsContaining(store.db, m)).toHaveLength(1);

        const events = await listEvents(store.db, { taskId: task.id });
        expect(events).toHaveLength(1);
        expect(events[0]).toMatchObject({
          type: "task.created",
          incident_id: incidentId,
          actor: "alice",
          channel: "api",
        });
      });

      it("leaves no task, outbox row or event when the transaction fails after the task and outbox rows were written", async () => {
        const m = marker();
        // Serialised three times in order: task row, outbox row, event data. The third time throws,
        // so the failure comes after two inserts inside the transaction.
        let serialised = 0;
        const poison = {
          toJSON() {
            serialised++;
            if (serialised === 3) throw new Error("cannot serialise event data");
            return { m };
          },
        };
        await expect(
          tasks.create({ kind: "diagnose", payload: { poison }, createdBy: "alice", channel: "api" }),
        ).rejects.toThrow("cannot serialise event data");
        expect(serialised).toBe(3);

        expect(await store.db.selectFrom("tasks").select("id").where("payload", "like", `%${m}%`).execute()).toEqual(
          [],
        );
        expect(await outboxRowsContaining(store.db, m)).toEqual([]);
        expect(await eventRowsContaining(store.db, m)).toEqual([]);
      });

      it("rejects a kind that is not a lowercase name without writing anything", async () => {
        const m = marker();
        await expect(
          tasks.create({ kind: "Drop Table", payload: { m }, createdBy: "alice", channel: "api" }),
        ).rejects.toMatchObject({
          code: "task.invalid_kind",
        });
        expect(await outboxRowsContaining(store.db, m)).toEqual([]);
      });

      it("creates exactly one task and one outbox row for 20 concurrent creates with the same idempotency key", async () => {
        const m = marker();
        const key = `idem-${m}`;
        const results = await Promise.all(
          Array.from({ length: 20 }, () =>
            tasks.create({ kind: "diagnose", payload: { m }, createdBy: "alice", channel: "api", idempotencyKey: key }),
          ),
        );

        const ids = new Set(results.map((r) => r.task.id));
        expect(ids.size).toBe(1);
        expect(results.filter((r) => r.created)).toHaveLength(1);
        const [id] = ids;

        const rows = await store.db.selectFrom("tasks").select("id").where("idempotency_key", "=", key).execute();
        expect(rows.map((r) => r.id)).toEqual([id]);
        const outbox = await outboxRowsContaining(store.db, m);
        expect(outbox.map((r) => r.msg_id)).toEqual([id]);
        const events = await eventRowsContaining(store.db, m);
        expect(events.map((e) => [e.type, e.task_id])).toEqual([["task.created", id]]);
      });

      it("returns the existing task for a retried create with a used idempotency key", async () => {
        const key = `idem-${marker()}`;
        const first = await tasks.create({
          kind: "diagnose",
          payload: { n: 1 },
          createdBy: "alice",
          channel: "api",
          idempotencyKey: key,
        });
        const again = await tasks.create({
          kind: "diagnose",
          payload: { n: 2 },
          createdBy: "bob",
          channel: "api",
          idempotencyKey: key,
        });
        expect(again.created).toBe(false);
        expect(again.task.id).toBe(first.task.id);
        expect(JSON.parse(again.task.payload)).toEqual({ n: 1 });
        expect(
          await store.db.selectFrom("outbox").select("id").where("msg_id", "=", first.task.id).execute(),
        ).toHaveLength(1);
      });
    });

    describe("events", () => {
      it("stores an event id once: a second append returns false and adds no row", async () => {
        const id = newId("evt");
        const e = {
          id,
          type: "task.progress",
          taskId: newId("tsk"),
          actor: "runner-1",
          channel: "bus",
          data: { step: 1 },
          occurredAt: Date.now(),
        };
        expect(await appendEvent(store.db, store.dialect, e, Date.now())).toBe(true);
        expect(await appendEvent(store.db, store.dialect, { ...e, data: { step: 2 } }, Date.now())).toBe(false);

        const rows = await store.db.selectFrom("events").selectAll().where("id", "=", id).execute();
        expect(rows).toHaveLength(1);
        expect(JSON.parse(rows[0]!.data)).toEqual({ step: 1 });
      });

      it("lists events oldest first, pages by seq after a cursor and filters by task and incident", async () => {
        const a = newId("tsk");
        const b = newId("tsk");
        const incidentId = newId("inc");
        const add = async (taskId: string, step: number, inc: string | null = incidentId) => {
          const id = newId("evt");
          await appendEvent(
            store.db,
            store.dialect,
            {
              id,
              type: "task.progress",
              taskId,
              incidentId: inc,
              actor: "r",
              channel: "bus",
              data: { step },
              occurredAt: Date.now(),
            },
            Date.now(),
          );
          return id;
        };
        const a0 = await add(a, 0);
        const b0 = await add(b, 0);
        const a1 = await add(a, 1);
        const a2 = await add(a, 2, null);
        const b1 = await add(b, 1);
        const a3 = await add(a, 3);
        const a4 = await add(a, 4);

        const pages: string[][] = [];
        let afterSeq: number | undefined;
        for (let guard = 0; guard < 10; guard++) {
          const page = await listEvents(store.db, { taskId: a, afterSeq, limit: 2 });
          if (page.length === 0) break;
          pages.push(page.map((e) => e.id));
          afterSeq = page.at(-1)!.seq;
        }
        expect(pages).toEqual([[a0, a1], [a2, a3], [a4]]);

        expect((await listEvents(store.db, { taskId: b })).map((e) => e.id)).toEqual([b0, b1]);
        expect((await listEvents(store.db, { incidentId })).map((e) => e.id)).toEqual([a0, b0, a1, b1, a3, a4]);
        const afterB0 = (await listEvents(store.db, { incidentId, limit: 2 })).at(-1)!.seq;
        expect((await listEvents(store.db, { incidentId, afterSeq: afterB0, limit: 3 })).map((e) => e.id)).toEqual([
          a1,
          b1,
          a3,
        ]);
        expect(await listEvents(store.db, { taskId: a, type: "task.created" })).toEqual([]);
      });

      it("redacts secrets in event data before storing it", async () => {
        const id = newId("evt");
        const data = { token: "x", nested: { password: "y", host: "db-1" }, list: [{ apiKey: "k" }], kept: "z" };
        await appendEvent(
          store.db,
          store.dialect,
          { id, type: "test.secret", actor: "a", channel: "api", data, occurredAt: Date.now() },
          Date.now(),
        );

        const row = await store.db.selectFrom("events").select("data").where("id", "=", id).executeTakeFirstOrThrow();
        expect(JSON.parse(row.data)).toEqual({
          token: "***",
          nested: { password: "***", host: "db-1" },
          list: [{ apiKey: "***" }],
          kept: "z",
        });
        expect(data.token).toBe("x");
      });

      it("redacts secrets of a task payload in its task.created event", async () => {
        const { task } = await tasks.create({
          kind: "diagnose",
          payload: { token: "x", nested: { password: "y" }, ns: "prod" },
          createdBy: "a",
          channel: "api",
        });
        const [event] = await listEvents(store.db, { taskId: task.id, type: "task.created" });
        expect(JSON.parse(event!.data).payload).toEqual({ token: "***", nested: { password: "***" }, ns: "prod" });
        expect(event!.data).not.toContain('"y"');
      });
    });

    describe("task state", () => {
      it("never overwrites a terminal state: succeeded → failed is refused and the row keeps succeeded", async () => {
        const t = taskRow();
        await store.db.insertInto("tasks").values(t).execute();

        expect(await updateTaskIfActive(store.db, t.id, { state: "running", runner_id: "r1" })).toBe(true);
        expect(await updateTaskIfActive(store.db, t.id, { state: "succeeded", result: '"ok"', finished_at: 1 })).toBe(
          true,
        );
        expect(
          await updateTaskIfActive(store.db, t.id, { state: "failed", error: "late failure", finished_at: 2 }),
        ).toBe(false);

        const row = await getTask(store.db, t.id);
        expect(row).toMatchObject({ state: "succeeded", result: '"ok"', error: null, runner_id: "r1" });
        expect(Number(row!.finished_at)).toBe(1);
      });

      it("fail marks a queued task failed once with one task.failed event; a second fail changes nothing", async () => {
        const incidentId = newId("inc");
        const { task } = await tasks.create({
          kind: "diagnose",
          payload: {},
          incidentId,
          createdBy: "alice",
          channel: "api",
        });

        expect(await tasks.fail(task.id, "runner vanished", "system", "fleet")).toBe(true);
        const failed = await getTask(store.db, task.id);
        expect(failed).toMatchObject({ state: "failed", error: "runner vanished" });
        expect(failed!.finished_at).not.toBeNull();

        expect(await tasks.fail(task.id, "dead letter", "system", "bus")).toBe(false);
        expect(await getTask(store.db, task.id)).toEqual(failed);

        const events = await listEvents(store.db, { taskId: task.id, type: "task.failed" });
        expect(events).toHaveLength(1);
        expect(events[0]).toMatchObject({
          incident_id: incidentId,
          actor: "system",
          channel: "fleet",
          reason: "runner vanished",
        });
      });

      it("fail on an unknown task returns false and writes no event", async () => {
        const id = newId("tsk");
        expect(await tasks.fail(id, "gone", "system", "fleet")).toBe(false);
        expect(await listEvents(store.db, { taskId: id })).toEqual([]);
      });
    });

    describe("task lists", () => {
      it("lists tasks newest first, pages by id after a cursor and filters by state", async () => {
        const incidentId = newId("inc");
        const states: TaskState[] = ["queued", "failed", "queued", "running", "queued", "succeeded", "queued"];
        const ids: string[] = [];
        for (const state of states) {
          const t = taskRow({ incident_id: incidentId, state });
          await store.db.insertInto("tasks").values(t).execute();
          ids.push(t.id);
        }
        const newestFirst = [...ids].reverse();

        const pages: string[][] = [];
        let afterId: string | undefined;
        for (let guard = 0; guard < 10; guard++) {
          const page = await listTasks(store.db, { incidentId, afterId, limit: 3 });
          if (page.length === 0) break;
          pages.push(page.map((t) => t.id));
          afterId = page.at(-1)!.id;
        }
        expect(pages).toEqual([newestFirst.slice(0, 3), newestFirst.slice(3, 6), newestFirst.slice(6)]);

        const queued = ids.filter((_, i) => states[i] === "queued").reverse();
        expect((await listTasks(store.db, { incidentId, state: "queued" })).map((t) => t.id)).toEqual(queued);
        const firstQueuedPage = await listTasks(store.db, { incidentId, state: "queued", limit: 2 });
        expect(
          (await listTasks(store.db, { incidentId, state: "queued", afterId: firstQueuedPage.at(-1)!.id })).map(
            (t) => t.id,
          ),
        ).toEqual(queued.slice(2));
        expect(await listTasks(store.db, { incidentId, state: "cancelled" })).toEqual([]);
      });

      it("counts tasks by state", async () => {
        await insideRolledBackTransaction(store, async (trx) => {
          const before = await countTasksByState(trx);
          const add: TaskState[] = ["queued", "queued", "queued", "running", "running", "cancelled"];
          for (const state of add) await trx.insertInto("tasks").values(taskRow({ state })).execute();
          const after = await countTasksByState(trx);

          const delta = (s: TaskState) => (after[s] ?? 0) - (before[s] ?? 0);
          expect({
            queued: delta("queued"),
            running: delta("running"),
            cancelled: delta("cancelled"),
            succeeded: delta("succeeded"),
            failed: delta("failed"),
          }).toEqual({
            queued: 3,
            running: 2,
            cancelled: 1,
            succeeded: 0,
            failed: 0,
          });
          expect(typeof after.queued).toBe("number");
        });
      });
    });

    describe("runners", () => {
      it("records a heartbeat as one runner row and updates it on the next beat", async () => {
        const runnerId = `runner-${marker()}`;
        const t0 = Date.now();
        await recordHeartbeat(store.db, store.dialect, heartbeat(runnerId, t0, { running: ["tsk_a"] }));
        await recordHeartbeat(
          store.db,
          store.dialect,
          heartbeat(runnerId, t0 + 1000, { running: ["tsk_a", "tsk_b"], concurrency: 4, host: "host-b" }),
        );

        const rows = await store.db.selectFrom("runners").selectAll().where("id", "=", runnerId).execute();
        expect(rows).toHaveLength(1);
        expect(rows[0]).toMatchObject({ host: "host-b", concurrency: 4, running: 2 });
        expect(Number(rows[0]!.last_seen_at)).toBe(t0 + 1000);
        expect(JSON.parse(rows[0]!.running_task_ids)).toEqual(["tsk_a", "tsk_b"]);
      });

      it("ignores an older heartbeat arriving late: last_seen_at never moves backwards", async () => {
        const runnerId = `runner-${marker()}`;
        const t0 = Date.now();
        await recordHeartbeat(store.db, store.dialect, heartbeat(runnerId, t0 + 1000, { running: ["tsk_new"] }));
        await recordHeartbeat(store.db, store.dialect, heartbeat(runnerId, t0, { running: ["tsk_old"] }));

        const row = await store.db
          .selectFrom("runners")
          .selectAll()
          .where("id", "=", runnerId)
          .executeTakeFirstOrThrow();
        expect(Number(row.last_seen_at)).toBe(t0 + 1000);
        expect(JSON.parse(row.running_task_ids)).toEqual(["tsk_new"]);
      });

      it("keeps the newest of many heartbeats recorded concurrently in any order", async () => {
        for (let round = 0; round < 5; round++) {
          const runnerId = `runner-${marker()}`;
          const t0 = Date.now();
          const ats = Array.from({ length: 12 }, (_, i) => t0 + i * 1000).sort(() => Math.random() - 0.5);
          await Promise.all(
            ats.map((at) =>
              recordHeartbeat(store.db, store.dialect, heartbeat(runnerId, at, { running: [`tsk_${at}`] })),
            ),
          );

          const row = await store.db
            .selectFrom("runners")
            .selectAll()
            .where("id", "=", runnerId)
            .executeTakeFirstOrThrow();
          const newest = t0 + 11_000;
          expect(Number(row.last_seen_at)).toBe(newest);
          expect(JSON.parse(row.running_task_ids)).toEqual([`tsk_${newest}`]);
        }
      });

      it("marks a runner stale once it has been unseen for more than two heartbeat intervals", async () => {
        const runnerId = `runner-${marker()}`;
        const seen = Date.now();
        const interval = 5000;
        await recordHeartbeat(store.db, store.dialect, heartbeat(runnerId, seen, { running: ["tsk_x"] }));

        const at = async (now: number) => (await listRunners(store.db, now, interval)).find((r) => r.id === runnerId);
        expect(await at(seen + interval)).toMatchObject({
          stale: false,
          last_seen_at: seen,
          runningTaskIds: ["tsk_x"],
        });
        expect((await at(seen + 2 * interval))?.stale).toBe(false);
        expect((await at(seen + 2 * interval + 1))?.stale).toBe(true);
      });
    });

    describe("dialect helpers", () => {
      it("insertIfAbsent returns true then false for the same primary key and keeps the first row", async () => {
        const id = newId("srn");
        const run = {
          id,
          schedule_id: newId("sch"),
          scheduled_for: Date.now(),
          task_id: null,
          state: "pending",
          created_at: Date.now(),
        };
        expect(await insertIfAbsent(store.db, store.dialect, "schedule_runs", run)).toBe(true);
        expect(
          await insertIfAbsent(store.db, store.dialect, "schedule_runs", {
            ...run,
            scheduled_for: run.scheduled_for + 1,
            state: "other",
          }),
        ).toBe(false);

        const rows = await store.db.selectFrom("schedule_runs").selectAll().where("id", "=", id).execute();
        expect(rows).toHaveLength(1);
        expect(rows[0]!.state).toBe("pending");
      });

      it("insertIfAbsent returns false on a conflicting secondary unique key", async () => {
        const scheduleId = newId("sch");
        const at = Date.now();
        const run = (id: string) => ({
          id,
          schedule_id: scheduleId,
          scheduled_for: at,
          task_id: null,
          state: "pending",
          created_at: at,
        });
        expect(await insertIfAbsent(store.db, store.dialect, "schedule_runs", run(newId("srn")))).toBe(true);
        expect(await insertIfAbsent(store.db, store.dialect, "schedule_runs", run(newId("srn")))).toBe(false);
        expect(
          await store.db.selectFrom("schedule_runs").select("id").where("schedule_id", "=", scheduleId).execute(),
        ).toHaveLength(1);
      });

      it("insertIfAbsent finding a duplicate inside a transaction does not abort the transaction", async () => {
        const existing = newId("evt");
        await appendEvent(
          store.db,
          store.dialect,
          { id: existing, type: "test.dup", actor: "a", channel: "api", occurredAt: Date.now() },
          Date.now(),
        );
        const later = newId("evt");

        await store.db.transaction().execute(async (trx) => {
          expect(
            await appendEvent(
              trx,
              store.dialect,
              { id: existing, type: "test.dup", actor: "a", channel: "api", occurredAt: Date.now() },
              Date.now(),
            ),
          ).toBe(false);
          expect(
            await appendEvent(
              trx,
              store.dialect,
              { id: later, type: "test.dup", actor: "a", channel: "api", occurredAt: Date.now() },
              Date.now(),
            ),
          ).toBe(true);
        });

        const rows = await store.db.selectFrom("events").select("id").where("id", "in", [existing, later]).execute();
        expect(rows.map((r) => r.id).sort()).toEqual([existing, later].sort());
      });

      it("upsert inserts a new row, then updates only the given columns of it", async () => {
        const id = `runner-${marker()}`;
        const row = {
          id,
          host: "h1",
          version: "1",
          pool: "default",
          concurrency: 1,
          running: 0,
          running_task_ids: "[]",
          totals: "{}",
          started_at: 1,
          last_seen_at: 1,
        };
        await upsert(store.db, store.dialect, "runners", row, "id", { host: "unused" });
        expect(await store.db.selectFrom("runners").selectAll().where("id", "=", id).execute()).toMatchObject([
          { host: "h1", version: "1" },
        ]);

        await upsert(store.db, store.dialect, "runners", { ...row, host: "h2", version: "2" }, "id", {
          host: "h2",
          last_seen_at: 5,
        });
        const rows = await store.db.selectFrom("runners").selectAll().where("id", "=", id).execute();
        expect(rows).toHaveLength(1);
        expect(rows[0]).toMatchObject({ host: "h2", version: "1" });
        expect(Number(rows[0]!.last_seen_at)).toBe(5);
      });

      it("allows many incidents without an open_key but rejects a second open incident with the same open_key", async () => {
        const key = `fp-${marker()}`;
        await store.db.insertInto("incidents").values(incidentRow(null)).execute();
        await store.db.insertInto("incidents").values(incidentRow(null)).execute();
        const first = incidentRow(key);
        await store.db.insertInto("incidents").values(first).execute();

        const err: unknown = await store.db
          .insertInto("incidents")
          .values(incidentRow(key))
          .execute()
          .then(
            () => undefined,
            (e: unknown) => e,
          );
        expect(err).toBeInstanceOf(Error);
        expect(isDuplicateKey(err)).toBe(true);
        expect(await insertIfAbsent(store.db, store.dialect, "incidents", incidentRow(key))).toBe(false);
        expect(await store.db.selectFrom("incidents").select("id").where("open_key", "=", key).execute()).toEqual([
          { id: first.id },
        ]);

        // Closing the incident frees the key for the next one.
        await store.db.updateTable("incidents").set({ open_key: null }).where("id", "=", first.id).execute();
        expect(await insertIfAbsent(store.db, store.dialect, "incidents", incidentRow(key))).toBe(true);
      });

      it("isDuplicateKey does not mistake other constraint errors for duplicates", async () => {
        const err: unknown = await store.db
          .insertInto("incidents")
          .values({ ...incidentRow(null), title: null as unknown as string })
          .execute()
          .then(
            () => undefined,
            (e: unknown) => e,
          );
        expect(err).toBeInstanceOf(Error);
        expect(isDuplicateKey(err)).toBe(false);
      });
    });
  });
}
