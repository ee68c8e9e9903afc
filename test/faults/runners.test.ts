import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createJetStreamQueue } from "../../src/bus/jetstream.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { TERMINAL_TASK_STATES } from "../../src/store/schema.ts";
import { startControlPlane } from "../helpers/control-plane.ts";
import { spawnPitcrew, type Spawned } from "../helpers/process.ts";
import { deleteStreams } from "../helpers/queues.ts";
import { hasNats, NATS_URL } from "../helpers/services.ts";
import { storeFactories } from "../helpers/store.ts";
import { waitFor } from "../helpers/wait.ts";
import { prng, report, sleep } from "./helpers.ts";

// Three runner processes (`pitcrew runner`) work through 200 tasks that take 0.2–1.5 s each while
// the test SIGKILLs a busy one every 1.5 s and starts it again. Each task must end in exactly one
// terminal state (its terminal events all agree with it), and none may stay queued or running.

const TASKS = 200;
const KILL_EVERY_MS = 1500;
const MAX_KILLS = 10;
const natsUp = await hasNats();
const sqlite = (await storeFactories()).find((f) => f.name === "sqlite")!;

describe.skipIf(!natsUp)("runners SIGKILLed over and over during 200 tasks", () => {
  const dir = mkdtempSync(join(tmpdir(), "pitcrew-faults-runners-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("brings every task to exactly one terminal state, none stuck", async () => {
    const prefix = `f${randomBytes(4).toString("hex")}`;
    const settings = {
      subjectPrefix: prefix,
      tasksStream: `${prefix.toUpperCase()}_TASKS`,
      eventsStream: `${prefix.toUpperCase()}_EVENTS`,
      ackWaitMs: 3000,
      maxDeliver: 10,
    };
    const store = await sqlite.make();
    const queue = createJetStreamQueue({ servers: [NATS_URL], name: "faults-runners", settings, log: silentLogger });
    await queue.ready();
    const plane = startControlPlane(store, queue);
    const runners = new Map<string, Spawned>();
    const start = (id: string) => {
      mkdirSync(join(dir, `tmp-${id}`), { recursive: true });
      runners.set(
        id,
        spawnPitcrew(["runner"], {
          NATS_URL,
          NATS_PREFIX: prefix,
          RUNNER_ID: id,
          RUNNER_CONCURRENCY: "4",
          TASK_ACK_WAIT: "3s",
          TASK_MAX_DELIVER: "10",
          HEARTBEAT_INTERVAL: "300ms",
          SKILLS_DIR: join(dir, "no-skills"),
          DATA_DIR: join(dir, `data-${id}`),
          TMPDIR: join(dir, `tmp-${id}`),
        }),
      );
    };
    mkdirSync(join(dir, "no-skills"));
    try {
      const ids = ["r1", "r2", "r3"];
      for (const id of ids) start(id);
      const rnd = prng(16);
      const taskIds: string[] = [];
      for (let i = 0; i < TASKS; i++) {
        const { task } = await plane.tasks.create({
          kind: "noop",
          payload: { sleepMs: 200 + rnd.int(1300), steps: 3 },
          createdBy: "faults",
          channel: "test",
        });
        taskIds.push(task.id);
      }

      const unfinished = async () =>
        (
          await store.db.selectFrom("tasks").select(["id", "state", "runner_id"]).where("id", "in", taskIds).execute()
        ).filter((t) => !TERMINAL_TASK_STATES.includes(t.state));
      // Kill a runner that has a task running, start it again, and so on while work remains.
      const kills: { runner: string; running: number }[] = [];
      let turn = 0;
      while (kills.length < MAX_KILLS) {
        await sleep(KILL_EVERY_MS);
        const left = await unfinished();
        if (left.length === 0) break;
        const busy = ids.map((_, k) => ids[(turn + k) % ids.length]!);
        const victim = busy.find((id) => left.some((t) => t.state === "running" && t.runner_id === id));
        if (!victim) continue;
        turn++;
        const proc = runners.get(victim)!;
        proc.child.kill("SIGKILL");
        const exit = await proc.exited;
        expect(exit.signal, `${victim} exited on its own: ${proc.stderr().slice(-2000)}`).toBe("SIGKILL");
        kills.push({
          runner: victim,
          running: left.filter((t) => t.state === "running" && t.runner_id === victim).length,
        });
        start(victim);
      }

      await waitFor(async () => (await unfinished()).length === 0, 120_000, 250).catch(async (err) => {
        throw new Error(`${err}: ${JSON.stringify(await unfinished())}`);
      });
      const rows = await store.db.selectFrom("tasks").selectAll().where("id", "in", taskIds).execute();
      const terminal = await store.db
        .selectFrom("events")
        .select(["task_id", "type"])
        .where("task_id", "in", taskIds)
        .where("type", "in", ["task.succeeded", "task.failed", "task.cancelled"])
        .execute();
      const states: Record<string, number> = {};
      for (const r of rows) states[r.state] = (states[r.state] ?? 0) + 1;
      const disagreeing = rows.filter((r) => {
        const types = new Set(terminal.filter((e) => e.task_id === r.id).map((e) => e.type));
        return types.size !== 1 || !types.has(`task.${r.state}`);
      });
      report("runners SIGKILLed during 200 tasks", {
        tasks: TASKS,
        kills: kills.length,
        tasksRunningOnKilledRunners: kills.reduce((n, k) => n + k.running, 0),
        states,
        deliveredMoreThanOnce: rows.filter((r) => r.attempts > 1).length,
        maxAttempts: Math.max(...rows.map((r) => r.attempts)),
        terminalEvents: terminal.length,
        withoutOneTerminalState: disagreeing.length,
      });

      expect(kills.length).toBeGreaterThanOrEqual(3);
      expect(rows).toHaveLength(TASKS);
      expect(disagreeing.map((r) => ({ id: r.id, state: r.state, attempts: r.attempts }))).toEqual([]);
      // Work cut off by a kill is done again by a live runner: it succeeds, it is not given up on.
      expect(states).toEqual({ succeeded: TASKS });
    } finally {
      for (const r of runners.values()) r.child.kill("SIGKILL");
      await plane.stop();
      await queue.close();
      await store.close();
      await deleteStreams(settings);
    }
  }, 240_000);
});
