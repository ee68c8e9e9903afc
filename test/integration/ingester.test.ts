import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMemoryQueue } from "../../src/bus/memory.ts";
import type { Delivery } from "../../src/bus/port.ts";
import type { TaskEvent } from "../../src/bus/jobs.ts";
import { createEventIngester } from "../../src/events/ingester.ts";
import { listEvents } from "../../src/events/repo.ts";
import { newId } from "../../src/shared/ids.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { getTask } from "../../src/tasks/repo.ts";
import { createTaskService } from "../../src/tasks/service.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";

/** A delivery that records what the consumer did with it. */
function fakeDelivery(data: unknown) {
  const calls: string[] = [];
  const d: Delivery = {
    data,
    subject: "pitcrew.events.x",
    attempt: 1,
    maxDeliver: 5,
    ack: async () => void calls.push("ack"),
    nak: () => void calls.push("nak"),
    term: () => void calls.push("term"),
    working: () => void calls.push("working"),
  };
  return { d, calls };
}

const factories = await storeFactories();

for (const f of factories) {
  describe.skipIf(!f.available)(`event ingester on ${f.name}`, () => {
    let store: TestStore;
    let ingester: ReturnType<typeof createEventIngester>;
    let tasks: ReturnType<typeof createTaskService>;
    const queue = createMemoryQueue({ log: silentLogger });

    beforeAll(async () => {
      store = await f.make();
      ingester = createEventIngester({ store, queue, log: silentLogger, now: Date.now });
      tasks = createTaskService({ store, log: silentLogger, now: Date.now });
    });
    afterAll(async () => {
      await store?.close();
      await queue.close();
    });

    const event = (taskId: string, body: Record<string, unknown>): TaskEvent =>
      ({ id: newId("evt"), taskId, runnerId: "r-1", attempt: 1, at: Date.now(), ...body }) as TaskEvent;

    it("stores events that arrive together in a few transactions, each as it would be alone, and acks each after its commit", async () => {
      const created = await Promise.all(
        Array.from({ length: 20 }, () =>
          tasks.create({ kind: "noop", payload: {}, createdBy: "test", channel: "test" }),
        ),
      );
      const ids = created.map((c) => c.task.id);
      const commits: number[] = [];
      const off = store.onEventsCommitted((events) => {
        if (events.some((e) => e.taskId && ids.includes(e.taskId))) commits.push(events.length);
      });
      // Each task's start and end, and one end delivered twice: 41 deliveries at once.
      const evs = ids.flatMap((id) => [
        event(id, { type: "task.started" }),
        event(id, { type: "task.succeeded", result: { ok: true } }),
      ]);
      const deliveries = [...evs, evs[1]!].map((e) => fakeDelivery(e));
      await Promise.all(deliveries.map((x) => ingester.handle(x.d)));
      off();
      expect(deliveries.map((x) => x.calls.join())).toEqual(deliveries.map(() => "ack"));
      for (const id of ids) {
        expect((await getTask(store.db, id))?.state).toBe("succeeded");
        expect(await listEvents(store.db, { taskId: id, type: "task.succeeded" })).toHaveLength(1);
      }
      // 40 events stored (the repeat changes nothing), by far fewer commits than events.
      expect(commits.reduce((a, b) => a + b, 0)).toBe(40);
      expect(commits.length).toBeLessThan(10);
    });

    it("stores a redelivered event once and acks both deliveries", async () => {
      const { task } = await tasks.create({ kind: "noop", payload: {}, createdBy: "test", channel: "test" });
      const e = event(task.id, { type: "task.started" });
      const first = fakeDelivery(e);
      const second = fakeDelivery(e);
      await ingester.handle(first.d);
      await ingester.handle(second.d);
      expect(first.calls).toEqual(["ack"]);
      expect(second.calls).toEqual(["ack"]);
      const rows = await listEvents(store.db, { taskId: task.id, type: "task.started" });
      expect(rows).toHaveLength(1);
      expect((await getTask(store.db, task.id))!.state).toBe("running");
    });

    it("never overwrites a terminal task state with a late event", async () => {
      const { task } = await tasks.create({ kind: "noop", payload: {}, createdBy: "test", channel: "test" });
      await ingester.handle(fakeDelivery(event(task.id, { type: "task.started" })).d);
      await ingester.handle(fakeDelivery(event(task.id, { type: "task.succeeded", result: { ok: 1 } })).d);
      await ingester.handle(fakeDelivery(event(task.id, { type: "task.failed", error: "late" })).d);
      await ingester.handle(fakeDelivery(event(task.id, { type: "task.started" })).d);
      const t = (await getTask(store.db, task.id))!;
      expect(t.state).toBe("succeeded");
      expect(JSON.parse(t.result!)).toEqual({ ok: 1 });
      expect(t.error).toBeNull();
      // The timeline still shows what arrived.
      const types = (await listEvents(store.db, { taskId: task.id })).map((r) => r.type);
      expect(types).toEqual(["task.created", "task.started", "task.succeeded", "task.failed", "task.started"]);
    });

    it("terminates an event that fails its schema and stores nothing", async () => {
      const id = newId("evt");
      const bad = fakeDelivery({ id, type: "task.exploded", taskId: "tsk_x" });
      await ingester.handle(bad.d);
      expect(bad.calls).toEqual(["term"]);
      expect(await store.db.selectFrom("events").select("id").where("id", "=", id).execute()).toHaveLength(0);
    });

    it("records heartbeats as the runner's fleet row", async () => {
      const runnerId = `hb-${newId("evt")}`;
      const hb = {
        type: "runner.heartbeat",
        id: newId("evt"),
        runnerId,
        host: "h1",
        version: "1.2.3",
        pool: "default",
        concurrency: 4,
        running: ["tsk_a"],
        totals: { succeeded: 3, failed: 1, cancelled: 0 },
        startedAt: Date.now() - 1000,
        at: Date.now(),
      };
      const { d, calls } = fakeDelivery(hb);
      await ingester.handle(d);
      expect(calls).toEqual(["ack"]);
      const row = await store.db.selectFrom("runners").selectAll().where("id", "=", runnerId).executeTakeFirstOrThrow();
      expect(row.concurrency).toBe(4);
      expect(row.running).toBe(1);
      expect(JSON.parse(row.totals)).toEqual({ succeeded: 3, failed: 1, cancelled: 0 });
    });
  });
}

describe("event ingester with the database down", () => {
  it("naks instead of acking, so the event comes back once the store is up", async () => {
    const f = factories.find((x) => x.name === "sqlite")!;
    const store = await f.make();
    const queue = createMemoryQueue({ log: silentLogger });
    const ingester = createEventIngester({ store, queue, log: silentLogger, now: Date.now });
    await store.db.destroy();
    const { d, calls } = fakeDelivery({
      id: newId("evt"),
      type: "task.started",
      taskId: "tsk_gone",
      runnerId: "r",
      attempt: 1,
      at: Date.now(),
    });
    await ingester.handle(d);
    expect(calls).toEqual(["nak"]);
    await queue.close();
  });
});

describe("fleet monitor", () => {
  it("flags a running task whose runner stopped beating, once", async () => {
    const { createFleetMonitor } = await import("../../src/fleet/monitor.ts");
    const store = await factories.find((x) => x.name === "sqlite")!.make();
    const tasks = createTaskService({ store, log: silentLogger, now: Date.now });
    const { task } = await tasks.create({ kind: "noop", payload: {}, createdBy: "test", channel: "test" });
    const now = Date.now();
    await store.db
      .insertInto("runners")
      .values({
        id: "ghost",
        host: "h",
        version: "1",
        pool: "default",
        concurrency: 1,
        running: 1,
        running_task_ids: JSON.stringify([task.id]),
        totals: "{}",
        started_at: now - 60_000,
        last_seen_at: now - 30_000,
      })
      .execute();
    await store.db
      .updateTable("tasks")
      .set({ state: "running", runner_id: "ghost" })
      .where("id", "=", task.id)
      .execute();
    const monitor = createFleetMonitor({ store, log: silentLogger, now: () => now, heartbeatMs: 10_000 });
    expect(await monitor.tick()).toBe(1);
    expect(await monitor.tick()).toBe(0);
    const lost = await listEvents(store.db, { taskId: task.id, type: "task.runner_lost" });
    expect(lost).toHaveLength(1);
    expect(lost[0]!.reason).toMatch(/^runner ghost unseen since/);
    await store.close();
  });
});
