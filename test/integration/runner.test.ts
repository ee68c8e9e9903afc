import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Delivery, QueueSettings, TaskQueue } from "../../src/bus/port.ts";
import { listEvents } from "../../src/events/repo.ts";
import { listRunners } from "../../src/fleet/repo.ts";
import { createLocalGitHost } from "../../src/gitops/local.ts";
import { cancelTask } from "../../src/mcp/tools/cancel-task.ts";
import type { McpDeps } from "../../src/mcp/tool.ts";
import { unavailable } from "../../src/shared/errors.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { getTask } from "../../src/tasks/repo.ts";
import { branchFor, createSkillExecutor } from "../../runner/executors/skill.ts";
import type { Executor } from "../../runner/executors/types.ts";
import { startControlPlane, startRunner } from "../helpers/control-plane.ts";
import { gitSync, makeBareRepo } from "../helpers/git.ts";
import { queueFactories } from "../helpers/queues.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";
import { waitFor } from "../helpers/wait.ts";

const queues = await queueFactories();
const sqlite = (await storeFactories()).find((f) => f.name === "sqlite")!;

const terminal = (store: TestStore, id: string) => async () => {
  const t = await getTask(store.db, id);
  return t && ["succeeded", "failed", "cancelled"].includes(t.state) ? t : undefined;
};

for (const qf of queues) {
  describe.skipIf(!qf.available)(`runner on ${qf.name}`, () => {
    let store: TestStore;
    let queue: TaskQueue & { settings: QueueSettings };
    let cp: ReturnType<typeof startControlPlane>;
    const cleanups: Array<() => Promise<void>> = [];
    const pool = () => `p${randomBytes(3).toString("hex")}`;

    beforeAll(async () => {
      store = await sqlite.make();
      queue = await qf.make({ ackWaitMs: 1500, maxDeliver: 3 });
      cp = startControlPlane(store, queue);
    });
    afterEach(async () => {
      while (cleanups.length) await cleanups.pop()!();
    });
    afterAll(async () => {
      await cp.stop();
      await queue.close();
      await qf.cleanup(queue);
      await store.close();
    });

    function runner(opts: Parameters<typeof startRunner>[1], on: TaskQueue = queue) {
      const r = startRunner(on, { ackWaitMs: queue.settings.ackWaitMs, ...opts });
      cleanups.push(() => r.stop());
      return r;
    }

    /** The MCP cancel_task tool, called as an MCP client would, with what it needs of the control plane. */
    async function cancelViaMcp(taskId: string) {
      const deps = { store, queue, log: silentLogger, now: Date.now, kick: () => cp.relay.kick() } as Pick<
        McpDeps,
        "store" | "queue" | "log" | "now" | "kick"
      > as McpDeps;
      return cancelTask.handler(
        { task_id: taskId, reason: "not needed" },
        { principal: { subject: "alice", scopes: new Set(["write"]), via: "token" }, deps },
      );
    }

    /** An executor that only counts its runs. */
    function counting() {
      const runs: string[] = [];
      const executor: Executor = async (task) => {
        runs.push(task.taskId);
        return { ok: true };
      };
      return { runs, executor };
    }

    it("runs a task to success and records its timeline and the runner's heartbeat", async () => {
      const p = pool();
      runner({ id: `r-${p}`, pool: p });
      const { task } = await cp.tasks.create({
        kind: "noop",
        pool: p,
        payload: { steps: 2, sleepMs: 50, result: { answer: 42 } },
        createdBy: "test",
        channel: "test",
      });
      const done = await waitFor(terminal(store, task.id), 15_000);
      expect(done.state).toBe("succeeded");
      expect(JSON.parse(done.result!)).toEqual({ answer: 42 });
      expect(done.runner_id).toBe(`r-${p}`);
      expect(done.attempts).toBe(1);
      const types = (await listEvents(store.db, { taskId: task.id })).map((e) => e.type);
      expect(types).toEqual(["task.created", "task.started", "task.progress", "task.progress", "task.succeeded"]);
      const runners = await waitFor(
        async () => (await listRunners(store.db, Date.now(), 200)).find((r) => r.id === `r-${p}`),
        5000,
      );
      expect(runners.pool).toBe(p);
      expect(runners.stale).toBe(false);
    });

    it("retries a retryable failure and succeeds on the next attempt", async () => {
      const p = pool();
      runner({ id: `r-${p}`, pool: p });
      const { task } = await cp.tasks.create({
        kind: "noop",
        pool: p,
        payload: { fail: "retryable", failTimes: 1 },
        createdBy: "test",
        channel: "test",
      });
      const done = await waitFor(terminal(store, task.id), 15_000);
      expect(done.state).toBe("succeeded");
      expect(done.attempts).toBe(2);
      const logs = (await listEvents(store.db, { taskId: task.id, type: "task.log" })).map(
        (e) => JSON.parse(e.data).line as string,
      );
      expect(logs.some((l) => l.includes("attempt 1 failed, will retry"))).toBe(true);
    });

    it("fails a task that keeps failing once its deliveries are used up", async () => {
      const p = pool();
      runner({ id: `r-${p}`, pool: p });
      const { task } = await cp.tasks.create({
        kind: "noop",
        pool: p,
        payload: { fail: "retryable" },
        createdBy: "test",
        channel: "test",
      });
      const done = await waitFor(terminal(store, task.id), 20_000);
      expect(done.state).toBe("failed");
      expect(done.attempts).toBe(3);
      expect(done.error).toMatch(/failed after 3 attempts/);
    });

    it("fails a non-retryable error at once", async () => {
      const p = pool();
      runner({ id: `r-${p}`, pool: p });
      const { task } = await cp.tasks.create({
        kind: "noop",
        pool: p,
        payload: { fail: "fatal" },
        createdBy: "test",
        channel: "test",
      });
      const done = await waitFor(terminal(store, task.id), 15_000);
      expect(done.state).toBe("failed");
      expect(done.attempts).toBe(1);
      expect(done.error).toBe("noop task asked to fail");
    });

    it("fails a task of a kind no executor handles", async () => {
      const p = pool();
      runner({ id: `r-${p}`, pool: p });
      const { task } = await cp.tasks.create({
        kind: "teleport",
        pool: p,
        payload: {},
        createdBy: "test",
        channel: "test",
      });
      const done = await waitFor(terminal(store, task.id), 15_000);
      expect(done.state).toBe("failed");
      expect(done.error).toMatch(/no executor for task kind "teleport"/);
    });

    it("terminates a task message that fails its schema and marks the task failed", async () => {
      const p = pool();
      runner({ id: `r-${p}`, pool: p });
      const { task } = await cp.tasks.create({
        kind: "noop",
        pool: `${p}-unused`,
        payload: {},
        createdBy: "test",
        channel: "test",
      });
      await queue.publishTask(p, `bad-${task.id}`, { v: 99, taskId: task.id, kind: "noop" });
      const done = await waitFor(terminal(store, task.id), 15_000);
      expect(done.state).toBe("failed");
      expect(done.error).toMatch(/invalid task message/);
    });

    it("marks a task failed when no consumer ever acks it (dead letter)", async () => {
      const p = pool();
      const { task } = await cp.tasks.create({
        kind: "noop",
        pool: p,
        payload: {},
        createdBy: "test",
        channel: "test",
      });
      let deliveries = 0;
      // A consumer that naks everything: the task's deliveries run out without a terminal event.
      const rogue = queue.consumeTasks(p, { concurrency: 1 }, async (d) => {
        deliveries += 1;
        d.nak();
      });
      cleanups.push(() => rogue.stop());
      const done = await waitFor(terminal(store, task.id), 20_000);
      expect(done.state).toBe("failed");
      expect(done.error).toMatch(/max_deliver exhausted/);
      expect(deliveries).toBe(3);
      const failed = await listEvents(store.db, { taskId: task.id, type: "task.failed" });
      expect(failed).toHaveLength(1);
      expect(failed[0]!.actor).toBe("system:queue");
    });

    it("cancels a running task within 2 seconds", async () => {
      const p = pool();
      runner({ id: `r-${p}`, pool: p });
      const { task } = await cp.tasks.create({
        kind: "noop",
        pool: p,
        payload: { sleepMs: 60_000 },
        createdBy: "test",
        channel: "test",
      });
      await waitFor(async () => (await getTask(store.db, task.id))?.state === "running", 10_000);
      await queue.publishControl(task.id, "cancel");
      // Well before the task's 60 s would have run out: the cancel ended it.
      const done = await waitFor(terminal(store, task.id), 30_000, 20);
      expect(done.state).toBe("cancelled");
    });

    it("a task cancelled before any runner was running is reported cancelled by the runner that gets it, never run", async () => {
      const p = pool();
      const { task } = await cp.tasks.create({
        kind: "count",
        pool: p,
        payload: {},
        createdBy: "test",
        channel: "test",
      });
      // On the bus already, with nobody listening for the cancel notice.
      await waitFor(
        async () =>
          (await store.db.selectFrom("outbox").select("sent_at").where("msg_id", "=", task.id).executeTakeFirst())
            ?.sent_at,
        10_000,
      );
      const r = await cancelViaMcp(task.id);
      expect(r.data.outcome).toBe("cancelled");
      await waitFor(async () => (await queue.taskMark(task.id)) === "cancelled", 10_000);

      const { runs, executor } = counting();
      runner({ id: `r-${p}`, pool: p, executors: { count: executor } });
      const reported = await waitFor(
        async () =>
          (await listEvents(store.db, { taskId: task.id, type: "task.cancelled" })).find(
            (e) => e.actor === `runner:r-${p}`,
          ),
        15_000,
      );
      expect(reported.reason).toBe("cancelled before a runner started it");
      expect(runs).toEqual([]);
      expect((await getTask(store.db, task.id))!.state).toBe("cancelled");
      expect(await queue.taskMark(task.id)).toBe("done");
    });

    it("a redelivery after an ack that failed once the success was stored acks without running the task again", async () => {
      const p = pool();
      let failedOnce = false;
      const deliveries: number[] = [];
      const settled: number[] = [];
      // The first ack does not reach the bus (a NATS hiccup): the message comes back after the ack wait.
      const flaky: TaskQueue = {
        ...queue,
        consumeTasks: (pool, opts, handler) =>
          queue.consumeTasks(pool, opts, async (d) => {
            deliveries.push(d.attempt);
            const wrapped: Delivery = failedOnce
              ? d
              : {
                  ...d,
                  ack: async () => {
                    failedOnce = true;
                    throw unavailable("queue.ack_failed", "the server did not confirm the ack");
                  },
                };
            await handler(wrapped);
            settled.push(d.attempt);
          }),
      };
      const { runs, executor } = counting();
      runner({ id: `r-${p}`, pool: p, executors: { count: executor } }, flaky);
      const { task } = await cp.tasks.create({
        kind: "count",
        pool: p,
        payload: {},
        createdBy: "test",
        channel: "test",
      });
      await waitFor(() => settled.length >= 2, 20_000);
      expect(failedOnce).toBe(true);
      expect(runs).toEqual([task.id]);
      const done = (await waitFor(terminal(store, task.id), 5000))!;
      expect(done.state).toBe("succeeded");
      const types = (await listEvents(store.db, { taskId: task.id })).map((e) => e.type);
      expect(types.filter((t) => t === "task.started")).toHaveLength(1);
      expect(types.filter((t) => t === "task.succeeded")).toHaveLength(1);
    });

    it("a cancel that lands while a skill task works, unheard by its runner, stops it before it opens a pull request", async () => {
      const dir = mkdtempSync(join(tmpdir(), "pitcrew-cancel-pr-"));
      cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
      const bare = makeBareRepo(dir, [
        {
          message: "web",
          files: {
            "apps/web.yaml":
              "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: prod\nspec:\n  replicas: 2\n  template:\n    metadata:\n      annotations: {}\n    spec:\n      containers:\n        - name: web\n          image: web:1\n",
          },
        },
      ]);
      const host = createLocalGitHost({ repoPath: bare });
      const skill = createSkillExecutor({
        host,
        baseBranch: "main",
        author: { name: "Pitcrew", email: "pitcrew@localhost" },
        workspaceBase: dir,
      });
      const p = pool();
      const incidentId = `inc_cancel${p}`;
      let cancelled: Promise<unknown> | undefined;
      let taskId = "";
      // The runner hears no cancel notice (it was not subscribed when it went out); the cancel is
      // made while the branch is being pushed, after the executor's last look at its abort signal.
      const deaf: TaskQueue = {
        ...queue,
        subscribeControl: () => ({ stop: async () => {} }),
        publishTaskEvent: async (e) => {
          await queue.publishTaskEvent(e);
          if (e.type === "task.progress" && e.message.startsWith("pushing")) {
            cancelled ??= cancelViaMcp(taskId).then(() =>
              waitFor(async () => (await queue.taskMark(taskId)) === "cancelled", 10_000),
            );
            await cancelled;
          }
        },
      };
      runner({ id: `r-${p}`, pool: p, executors: { skill } }, deaf);
      const { task } = await cp.tasks.create({
        kind: "skill",
        pool: p,
        payload: {
          incidentId,
          skill: "restart",
          params: { namespace: "prod", deployment: "web" },
          approval: "none",
          action: { builtin: "restart" },
        },
        createdBy: "test",
        channel: "test",
      });
      taskId = task.id;
      // The runner's own outcome (the row may already say cancelled, if the cancel found it queued).
      const outcome = await waitFor(
        async () =>
          (await listEvents(store.db, { taskId: task.id })).find(
            (e) => e.actor === `runner:r-${p}` && ["task.succeeded", "task.failed", "task.cancelled"].includes(e.type),
          ),
        30_000,
      );
      expect(cancelled).toBeDefined();
      expect(outcome.type).toBe("task.cancelled");
      expect((await getTask(store.db, task.id))!.state).toBe("cancelled");
      expect(await host.findOpenPullRequest(branchFor(incidentId, "restart"))).toBeNull();
      expect(gitSync(dir, "--git-dir", bare, "for-each-ref", "refs/pitcrew/pulls/").trim()).toBe("");
      expect(await listEvents(store.db, { taskId: task.id, type: "task.pr_opened" })).toEqual([]);
    });

    it("a stopping runner hands its task back and another runner completes it", async () => {
      const p = pool();
      const first = startRunner(queue, {
        id: `r1-${p}`,
        pool: p,
        ackWaitMs: queue.settings.ackWaitMs,
        drainTimeoutMs: 200,
      });
      const { task } = await cp.tasks.create({
        kind: "noop",
        pool: p,
        payload: { sleepMs: 3000 },
        createdBy: "test",
        channel: "test",
      });
      await waitFor(async () => (await getTask(store.db, task.id))?.state === "running", 10_000);
      await first.stop();
      runner({ id: `r2-${p}`, pool: p });
      const done = await waitFor(terminal(store, task.id), 20_000);
      expect(done.state).toBe("succeeded");
      expect(done.runner_id).toBe(`r2-${p}`);
      // Both runners started it; only the second finished it. (The attempt number is the bus's
      // delivery count, which NATS 2.9 does not always raise on a nak'ed redelivery.)
      const timeline = (await listEvents(store.db, { taskId: task.id })).map((e) => `${e.type}@${e.actor}`);
      expect(timeline).toEqual([
        "task.created@test",
        `task.started@runner:r1-${p}`,
        `task.started@runner:r2-${p}`,
        `task.progress@runner:r2-${p}`,
        `task.succeeded@runner:r2-${p}`,
      ]);
    });
  });
}
