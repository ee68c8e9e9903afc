import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createJetStreamQueue } from "../../src/bus/jetstream.ts";
import type { TaskQueue } from "../../src/bus/port.ts";
import { listEvents } from "../../src/events/repo.ts";
import { listRunners, recordHeartbeat } from "../../src/fleet/repo.ts";
import { newId } from "../../src/shared/ids.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import type { Store } from "../../src/store/db.ts";
import { createTaskReconciler } from "../../src/tasks/reconciler.ts";
import { getTask } from "../../src/tasks/repo.ts";
import type { Executor } from "../../runner/executors/types.ts";
import { startControlPlane, startRunner } from "../helpers/control-plane.ts";
import { makeBareRepo } from "../helpers/git.ts";
import { spawnPitcrew } from "../helpers/process.ts";
import { deleteStreams, queueFactories, streamMessages } from "../helpers/queues.ts";
import { NATS_URL } from "../helpers/services.ts";
import { storeFactories } from "../helpers/store.ts";
import { waitFor } from "../helpers/wait.ts";

// The reconciler ends tasks no runner will finish, without the bus's one-shot advisory. Its clock
// is a fake one moved past the delivery budget (minutes with real settings); the bus, the database
// and the runner process are real.

const queues = await queueFactories();
const jetstream = queues.find((q) => q.name === "jetstream")!;
const memory = queues.find((q) => q.name === "memory")!;
const stores = await storeFactories();
const uid = () => randomBytes(4).toString("hex");

const sent = (store: Store, taskId: string) => async () =>
  (await store.db.selectFrom("outbox").select("sent_at").where("msg_id", "=", taskId).executeTakeFirst())?.sent_at;

for (const sf of stores) {
  describe.skipIf(!sf.available)(`task reconciler on ${sf.name}`, () => {
    it.skipIf(!jetstream.available)(
      "fails a task whose deliveries ran out while no control plane heard the advisory, once its delivery budget has passed",
      async () => {
        // Its own database: a reconciler judges every task of the database it serves.
        const store = await sf.make({ own: true });
        const queue = await jetstream.make({ ackWaitMs: 500, maxDeliver: 2 });
        const cp = startControlPlane(store, queue, { deadLetters: false });
        let clock = Date.now();
        const reconciler = createTaskReconciler(
          { store, tasks: cp.tasks, log: silentLogger, now: () => clock },
          { ackWaitMs: 500, maxDeliver: 2, heartbeatMs: 200, intervalMs: 60_000 },
        );
        const pool = `p${uid()}`;
        let deliveries = 0;
        const rogue = queue.consumeTasks(pool, { concurrency: 1 }, async (d) => {
          deliveries += 1;
          d.nak();
        });
        try {
          const { task } = await cp.tasks.create({
            kind: "noop",
            pool,
            payload: {},
            createdBy: "test",
            channel: "test",
          });
          await waitFor(() => deliveries === 2, 10_000);
          await waitFor(sent(store, task.id), 5000);

          // Within the budget a retry could still be on its way: nothing is decided.
          expect(await reconciler.tick()).toBe(0);
          expect((await getTask(store.db, task.id))!.state).toBe("queued");

          clock = Date.now() + reconciler.deliveryBudgetMs + 1000;
          expect(await reconciler.tick()).toBe(1);
          const failed = (await getTask(store.db, task.id))!;
          expect(failed.state).toBe("failed");
          expect(failed.error).toMatch(
            /^no runner finished the task: deliveries exhausted or its runner vanished \(no runner started it; on the bus since \d{4}-/,
          );
          const events = await listEvents(store.db, { taskId: task.id, type: "task.failed" });
          expect(events.map((e) => e.actor)).toEqual(["system:reconciler"]);
          // Decided once: a second pass (or another replica) changes nothing.
          expect(await reconciler.tick()).toBe(0);
          // The bus learns it too, so a late delivery would be acked without a run.
          await waitFor(async () => (await queue.taskMark(task.id)) === "done", 10_000);
          expect(deliveries).toBe(2);
        } finally {
          await rogue.stop();
          await cp.stop();
          await queue.close();
          await jetstream.cleanup(queue);
          await store.close();
        }
      },
    );

    it("leaves a running task alone while a live runner lists it in its heartbeat, and fails it once that runner has gone quiet", async () => {
      const store = await sf.make({ own: true });
      const queue = await memory.make();
      const cp = startControlPlane(store, queue);
      let clock = Date.now();
      const heartbeatMs = 1000;
      const reconciler = createTaskReconciler(
        { store, tasks: cp.tasks, log: silentLogger, now: () => clock },
        { ackWaitMs: 2000, maxDeliver: 3, heartbeatMs, intervalMs: 60_000 },
      );
      const runnerId = `r-live-${uid()}`;
      try {
        const { task } = await cp.tasks.create({
          kind: "noop",
          pool: `p${uid()}`,
          payload: {},
          createdBy: "test",
          channel: "test",
        });
        await waitFor(sent(store, task.id), 5000);
        await cp.ingester.applyTaskEvent({
          type: "task.started",
          id: newId("evt"),
          taskId: task.id,
          runnerId,
          attempt: 1,
          at: Date.now(),
        });

        // Long past the budget with no event (an agent thinking quietly), but its runner is alive.
        clock = Date.now() + reconciler.deliveryBudgetMs + 1000;
        const beat = {
          type: "runner.heartbeat" as const,
          runnerId,
          host: "h",
          version: "t",
          pool: "default",
          concurrency: 1,
          running: [task.id],
          totals: { succeeded: 0, failed: 0, cancelled: 0 },
          startedAt: clock - 5000,
        };
        await recordHeartbeat(store.db, store.dialect, { ...beat, id: newId("evt"), at: clock });
        expect(await reconciler.tick()).toBe(0);
        expect((await getTask(store.db, task.id))!.state).toBe("running");

        const lastSeen = clock;
        clock += 3 * heartbeatMs;
        expect(await reconciler.tick()).toBe(1);
        const failed = (await getTask(store.db, task.id))!;
        expect(failed.state).toBe("failed");
        expect(failed.error).toContain(`runner ${runnerId} last seen ${new Date(lastSeen).toISOString()}`);
      } finally {
        await cp.stop();
        await queue.close();
        await store.close();
      }
    });
  });
}

describe.skipIf(!jetstream.available)("task reconciler and a runner process killed mid-task", () => {
  const dir = mkdtempSync(join(tmpdir(), "pitcrew-reconcile-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("fails the task naming the runner once it never came back, and a runner that later gets the message acks it without running it", async () => {
    const bare = makeBareRepo(dir, [{ message: "init", files: { "README.md": "gitops\n" } }]);
    const prefix = `t${uid()}`;
    const settings = {
      subjectPrefix: prefix,
      tasksStream: `${prefix.toUpperCase()}_TASKS`,
      eventsStream: `${prefix.toUpperCase()}_EVENTS`,
      ackWaitMs: 2000,
      maxDeliver: 3,
    };
    const store = await (await storeFactories()).find((f) => f.name === "sqlite")!.make();
    const queue: TaskQueue & { ready(): Promise<void> } = createJetStreamQueue({
      servers: [NATS_URL],
      name: "reconcile-test",
      settings,
      log: silentLogger,
    });
    await queue.ready();
    const cp = startControlPlane(store, queue);
    let clock = Date.now();
    const heartbeatMs = 200;
    const reconciler = createTaskReconciler(
      { store, tasks: cp.tasks, log: silentLogger, now: () => clock },
      { ackWaitMs: 2000, maxDeliver: 3, heartbeatMs, intervalMs: 60_000 },
    );
    mkdirSync(join(dir, "tmp"), { recursive: true });
    const proc = spawnPitcrew(["runner"], {
      NATS_URL,
      NATS_PREFIX: prefix,
      RUNNER_ID: "rk",
      TASK_ACK_WAIT: "2s",
      TASK_MAX_DELIVER: "3",
      HEARTBEAT_INTERVAL: "200ms",
      GITOPS_REPO: bare,
      DATA_DIR: join(dir, "data"),
      TMPDIR: join(dir, "tmp"),
    });
    const runs: string[] = [];
    const counting: Executor = async (task) => {
      runs.push(task.taskId);
      return { ok: true };
    };
    let later: ReturnType<typeof startRunner> | undefined;
    try {
      const { task } = await cp.tasks.create({
        kind: "noop",
        payload: { sleepMs: 120_000 },
        createdBy: "test",
        channel: "test",
      });
      await waitFor(async () => {
        const t = await getTask(store.db, task.id);
        return t?.state === "running" && t.runner_id === "rk";
      }, 30_000);
      proc.child.kill("SIGKILL");
      expect((await proc.exited).signal).toBe("SIGKILL");
      await waitFor(
        async () => (await listRunners(store.db, Date.now(), heartbeatMs)).find((r) => r.id === "rk")?.stale,
        10_000,
      );

      expect(await reconciler.tick()).toBe(0);
      clock = Date.now() + reconciler.deliveryBudgetMs + 1000;
      expect(await reconciler.tick()).toBe(1);
      const failed = (await getTask(store.db, task.id))!;
      expect(failed.state).toBe("failed");
      expect(failed.error).toMatch(
        /^no runner finished the task: deliveries exhausted or its runner vanished \(runner rk last seen \d{4}-/,
      );
      expect((await listEvents(store.db, { taskId: task.id, type: "task.failed" })).map((e) => e.actor)).toEqual([
        "system:reconciler",
      ]);

      // The killed runner never acked: the bus still delivers the message to the next runner.
      await waitFor(async () => (await queue.taskMark(task.id)) === "done", 10_000);
      later = startRunner(queue, { id: "r-later", ackWaitMs: 2000, executors: { noop: counting } });
      await waitFor(async () => (await streamMessages(settings.tasksStream)) === 0, 20_000, 100);
      expect(runs).toEqual([]);
      expect((await listEvents(store.db, { taskId: task.id })).filter((e) => e.actor === "runner:r-later")).toEqual([]);
      expect((await getTask(store.db, task.id))!.state).toBe("failed");
    } finally {
      proc.child.kill("SIGKILL");
      await later?.stop();
      await cp.stop();
      await queue.close();
      await store.close();
      await deleteStreams(settings);
    }
  }, 90_000);
});
