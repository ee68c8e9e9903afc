import { spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createJetStreamQueue } from "../../src/bus/jetstream.ts";
import { createMemoryQueue } from "../../src/bus/memory.ts";
import { addToOutbox, createOutboxRelay } from "../../src/bus/outbox.ts";
import type { TaskQueue } from "../../src/bus/port.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import type { Store } from "../../src/store/db.ts";
import { createTaskService } from "../../src/tasks/service.ts";
import { requeuePendingTasks } from "../../src/tasks/requeue.ts";
import { getTask } from "../../src/tasks/repo.ts";
import { cancelQueuedTask } from "../../src/mcp/task-actions.ts";
import { createFakeClock } from "../helpers/clock.ts";
import { hasNats, NATS_URL } from "../helpers/services.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";
import { deleteStreams, streamMessages, uniqueSettings, untilConsumerIdle } from "../helpers/queues.ts";
import { startTcpProxy } from "../helpers/tcp-proxy.ts";
import { waitFor } from "../helpers/wait.ts";

const natsUp = await hasNats();
const stores = await storeFactories();

/** Counts every delivery of every task id on a pool, acking each: the bus's view, not the rows'. */
function countDeliveries(queue: TaskQueue, pool: string) {
  const seen = new Map<string, number>();
  let total = 0;
  const sub = queue.consumeTasks(pool, { concurrency: 64 }, async (d) => {
    const id = (d.data as { taskId: string }).taskId;
    seen.set(id, (seen.get(id) ?? 0) + 1);
    total += 1;
    await d.ack();
  });
  return { seen, total: () => total, stop: () => sub.stop() };
}

async function createTasks(store: Store, n: number, pool: string): Promise<string[]> {
  const tasks = createTaskService({ store, log: silentLogger, now: Date.now });
  const ids: string[] = [];
  // A few at a time: one transaction each, and a server database gains from overlapping them.
  for (let i = 0; i < n; i += 8) {
    const batch = Array.from({ length: Math.min(8, n - i) }, (_, j) =>
      tasks.create({ kind: "noop", pool, payload: { i: i + j }, createdBy: "test", channel: "test" }),
    );
    for (const r of await Promise.all(batch)) ids.push(r.task.id);
  }
  return ids;
}

/** Rows among `ids` whose publish the relay has tried and seen fail. */
async function failedAttempts(store: Store, ids: string[]): Promise<number> {
  let n = 0;
  for (let i = 0; i < ids.length; i += 500) {
    const r = await store.db
      .selectFrom("outbox")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("msg_id", "in", ids.slice(i, i + 500))
      .where("attempts", ">=", 1)
      .executeTakeFirstOrThrow();
    n += Number(r.n);
  }
  return n;
}

async function unsent(store: Store, ids: string[]): Promise<number> {
  let n = 0;
  for (let i = 0; i < ids.length; i += 500) {
    const r = await store.db
      .selectFrom("outbox")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("msg_id", "in", ids.slice(i, i + 500))
      .where("sent_at", "is", null)
      .executeTakeFirstOrThrow();
    n += Number(r.n);
  }
  return n;
}

for (const f of stores) {
  describe.skipIf(!f.available)(`outbox on ${f.name}`, () => {
    let store: TestStore;
    beforeAll(async () => {
      // A database of its own: these relays serve every pending row of the database they use.
      store = await f.make({ own: true });
    });
    afterAll(async () => {
      await store?.close();
    });

    describe.skipIf(!natsUp)("with JetStream", () => {
      it("delivers 1,000 tasks enqueued while NATS is down exactly once after it comes back", async () => {
        const settings = uniqueSettings({ ackWaitMs: 10_000 });
        const proxy = await startTcpProxy(NATS_URL);
        const producer = createJetStreamQueue({
          servers: [proxy.url],
          name: "outbox-test",
          settings,
          log: silentLogger,
          publishTimeoutMs: 1000,
        });
        const consumerQueue = createJetStreamQueue({
          servers: [NATS_URL],
          name: "outbox-test-consumer",
          settings,
          log: silentLogger,
        });
        const pool = "outage";
        try {
          await producer.ready();
          await consumerQueue.ready();
          await proxy.down();
          await waitFor(async () => !(await producer.health()).ok, 5000);

          const ids = await createTasks(store, 1000, pool);
          const relay = createOutboxRelay(
            { store, queue: producer, log: silentLogger },
            { intervalMs: 50, batch: 200, retentionMs: 86_400_000 },
          );
          relay.start();
          const counter = countDeliveries(consumerQueue, pool);
          // The relay has tried while the bus was away, and failed: it marks nothing sent, nothing arrives.
          await waitFor(async () => (await failedAttempts(store, ids)) > 0, 15_000, 50);
          expect(await unsent(store, ids)).toBe(1000);
          expect(await streamMessages(settings.tasksStream)).toBe(0);
          expect(counter.total()).toBe(0);

          await proxy.up();
          await waitFor(async () => (await unsent(store, ids)) === 0, 45_000, 100);
          await waitFor(() => counter.seen.size === 1000, 30_000, 50);
          // Nothing more can be published: the relay has stopped, and a drained connection has
          // handed the server whatever it held back during the outage.
          await relay.stop();
          await producer.close();
          // The server stored each message once and delivered each once, with nothing left to deliver.
          const consumer = await untilConsumerIdle(settings.tasksStream, `runners-${pool}`);
          await counter.stop();

          expect(consumer.delivered).toBe(1000);
          expect(counter.seen.size).toBe(1000);
          expect(counter.total()).toBe(1000);
          expect(ids.every((id) => counter.seen.get(id) === 1)).toBe(true);
        } finally {
          await producer.close();
          await consumerQueue.close();
          await proxy.close();
          await deleteStreams(settings);
        }
      });

      it("sets the cancel marker of a task cancelled while NATS was away once it is back, and sends the cancel notice", async () => {
        const settings = uniqueSettings();
        const proxy = await startTcpProxy(NATS_URL);
        const producer = createJetStreamQueue({
          servers: [proxy.url],
          name: "outbox-cancel-test",
          settings,
          log: silentLogger,
          publishTimeoutMs: 1000,
        });
        // A runner's view of the bus, on its own connection.
        const runnerSide = createJetStreamQueue({
          servers: [NATS_URL],
          name: "outbox-cancel-runner",
          settings,
          log: silentLogger,
        });
        const notices: string[] = [];
        const sub = runnerSide.subscribeControl((taskId, action) => void notices.push(`${taskId}:${action}`));
        const relay = createOutboxRelay(
          { store, queue: producer, log: silentLogger },
          { intervalMs: 50, batch: 100, retentionMs: 86_400_000 },
        );
        try {
          await producer.ready();
          await runnerSide.ready();
          const [id] = await createTasks(store, 1, `cancel${Date.now()}`);
          await relay.runOnce();
          await proxy.down();
          await waitFor(async () => !(await producer.health()).ok, 5000);

          const task = (await getTask(store.db, id!))!;
          const now = Date.now();
          const cancelled = await store.db
            .transaction()
            .execute((trx) =>
              cancelQueuedTask(trx, store.dialect, task, { actor: "test", channel: "test" }, "not needed", now),
            );
          expect(cancelled).toBe(true);
          // The bus is away: the relay fails, the row waits.
          expect(await relay.runOnce()).toBe(0);
          const [row] = await store.db
            .selectFrom("outbox")
            .selectAll()
            .where("msg_id", "=", `${id}.cancelled`)
            .execute();
          expect(row).toMatchObject({ topic: "control", sent_at: null, attempts: 1 });
          expect(await runnerSide.taskMark(id!)).toBeNull();

          await proxy.up();
          relay.start();
          await waitFor(async () => (await runnerSide.taskMark(id!)) === "cancelled", 20_000, 100);
          await waitFor(() => notices.includes(`${id}:cancel`), 5000);
        } finally {
          await relay.stop();
          await sub.stop();
          await producer.close();
          await runnerSide.close();
          await proxy.close();
          await deleteStreams(settings);
        }
      });

      it("a relay killed mid-batch and restarted queues nothing twice", async () => {
        const settings = uniqueSettings({ ackWaitMs: 10_000 });
        const pool = "crash";
        const queue = createJetStreamQueue({
          servers: [NATS_URL],
          name: "outbox-crash-test",
          settings,
          log: silentLogger,
        });
        try {
          await queue.ready();
          const ids = await createTasks(store, 600, pool);
          const database = store.database;
          const child = spawn(process.execPath, ["--import", "tsx", "test/fixtures/relay-child.ts"], {
            env: {
              ...process.env,
              RELAY_CHILD: JSON.stringify({ database, servers: [NATS_URL], settings, crashAfter: 250 }),
            },
            stdio: ["ignore", "ignore", "pipe"],
          });
          let stderr = "";
          child.stderr.on("data", (b) => (stderr += b));
          const exit = await new Promise<{ code: number | null; signal: string | null }>((r) =>
            child.on("exit", (code, signal) => r({ code, signal })),
          );
          expect(exit.signal, stderr).toBe("SIGKILL");

          // The crash left rows published but not marked sent: the stream holds more than the rows say.
          const inStream = await streamMessages(settings.tasksStream);
          const markedSent = 600 - (await unsent(store, ids));
          expect(inStream).toBeGreaterThanOrEqual(250);
          expect(inStream).toBeGreaterThan(markedSent);

          const relay = createOutboxRelay(
            { store, queue, log: silentLogger },
            { intervalMs: 50, batch: 100, retentionMs: 86_400_000, leaseMs: 1000 },
          );
          relay.start();
          await waitFor(async () => (await unsent(store, ids)) === 0, 30_000, 200);
          await relay.stop();

          expect(await streamMessages(settings.tasksStream)).toBe(600);
          const counter = countDeliveries(queue, pool);
          await waitFor(() => counter.seen.size === 600, 20_000, 50);
          const consumer = await untilConsumerIdle(settings.tasksStream, `runners-${pool}`);
          await counter.stop();
          expect(consumer.delivered).toBe(600);
          expect(counter.total()).toBe(600);
        } finally {
          await queue.close();
          await deleteStreams(settings);
        }
      });

      it("two relays running at once queue each task once", async () => {
        const settings = uniqueSettings({ ackWaitMs: 10_000 });
        const pool = "pair";
        const queue = createJetStreamQueue({
          servers: [NATS_URL],
          name: "outbox-pair-test",
          settings,
          log: silentLogger,
        });
        try {
          await queue.ready();
          const ids = await createTasks(store, 500, pool);
          let duplicates = 0;
          const counting: TaskQueue = {
            ...queue,
            publishTask: async (p, id, b) => {
              const r = await queue.publishTask(p, id, b);
              if (r.duplicate) duplicates++;
              return r;
            },
          };
          const a = createOutboxRelay(
            { store, queue: counting, log: silentLogger },
            { intervalMs: 5, batch: 25, retentionMs: 86_400_000, owner: "relay-a" },
          );
          const b = createOutboxRelay(
            { store, queue: counting, log: silentLogger },
            { intervalMs: 5, batch: 25, retentionMs: 86_400_000, owner: "relay-b" },
          );
          a.start();
          b.start();
          await waitFor(async () => (await unsent(store, ids)) === 0, 30_000, 100);
          await Promise.all([a.stop(), b.stop()]);
          // Leases kept the relays off each other's rows: not even the bus had to drop a repeat.
          expect(duplicates).toBe(0);
          expect(await streamMessages(settings.tasksStream)).toBe(500);
          const counter = countDeliveries(queue, pool);
          await waitFor(() => counter.seen.size === 500, 20_000, 100);
          await counter.stop();
          expect(counter.total()).toBe(500);
        } finally {
          await queue.close();
          await deleteStreams(settings);
        }
      });
    });

    it("relays a committed outbox row at once, whoever queued it, and a rolled-back one never", async () => {
      const pool = `wake${Date.now()}`;
      const queue = createMemoryQueue({ settings: uniqueSettings(), log: silentLogger });
      const wakes: string[] = [];
      const off = store.onOutboxCommitted(() => wakes.push("commit"));
      // A poll every ten minutes: only the commit can wake this relay within the test.
      const relay = createOutboxRelay(
        { store, queue, log: silentLogger },
        { intervalMs: 600_000, batch: 100, retentionMs: 86_400_000 },
      );
      relay.start();
      const counter = countDeliveries(queue, pool);
      try {
        await expect(
          store.db.transaction().execute(async (trx) => {
            await addToOutbox(trx, { topic: "task", pool, msgId: "never", body: { taskId: "never" } }, Date.now());
            throw new Error("rolled back");
          }),
        ).rejects.toThrow("rolled back");
        expect(wakes).toEqual([]);
        // No onEnqueued kick given to the task service: the commit itself wakes the relay.
        const tasks = createTaskService({ store, log: silentLogger, now: Date.now });
        const { task } = await tasks.create({ kind: "noop", pool, payload: {}, createdBy: "test", channel: "test" });
        expect(wakes).toEqual(["commit"]);
        await waitFor(() => counter.seen.has(task.id), 5000);
        expect([...counter.seen.keys()]).toEqual([task.id]);
      } finally {
        off();
        await relay.stop();
        await counter.stop();
        await queue.close();
      }
    });

    it("the in-process queue re-queues every task still pending after a restart, once", async () => {
      const settings = uniqueSettings();
      const pool = `restart${Date.now()}`;
      const before = createMemoryQueue({ settings, log: silentLogger });
      const ids = await createTasks(store, 40, pool);
      // First life: the relay publishes everything, a runner finishes 10 tasks, then the process dies.
      const relay = createOutboxRelay(
        { store, queue: before, log: silentLogger },
        { intervalMs: 10, batch: 100, retentionMs: 86_400_000 },
      );
      await relay.runOnce();
      const done = ids.slice(0, 10);
      await store.db.updateTable("tasks").set({ state: "succeeded" }).where("id", "in", done).execute();
      await before.close();

      // Second life: a fresh in-process queue knows nothing; the database does.
      const clock = createFakeClock();
      const after = createMemoryQueue({ settings, log: silentLogger, clock });
      const requeued = await requeuePendingTasks(store, after);
      expect(requeued).toBeGreaterThanOrEqual(30);
      const counter = countDeliveries(after, pool);
      await waitFor(() => counter.seen.size === 30, 5000);
      // The relay of the second life finds nothing more to send for these tasks.
      const relay2 = createOutboxRelay(
        { store, queue: after, log: silentLogger },
        { intervalMs: 10, batch: 100, retentionMs: 86_400_000 },
      );
      await relay2.runOnce();
      // Well past the ack wait on the queue's clock: a repeat publish, or a delivery the queue
      // did not take as acked, would have reached the counter by now.
      await clock.advance(10 * settings.ackWaitMs);
      await counter.stop();
      expect([...counter.seen.keys()].sort()).toEqual(ids.slice(10).sort());
      expect(counter.total()).toBe(30);
      await after.close();
    });
  });
}
