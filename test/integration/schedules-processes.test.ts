import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { openStore } from "../../src/store/db.ts";
import { hasMysql, hasNats, NATS_URL } from "../helpers/services.ts";
import { privateMysqlUrl } from "../helpers/store.ts";
import { freePort, spawnPitcrew } from "../helpers/process.ts";
import { waitFor } from "../helpers/wait.ts";
import { deleteStreams } from "../helpers/queues.ts";

const natsUp = await hasNats();
const mysqlUp = await hasMysql();
const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "pitcrew-sched-proc-"));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe.skipIf(!natsUp || !mysqlUp)("a schedule on two control planes", () => {
  it("fires once per second between them, with no duplicate run or task, and keeps firing after one is killed", async () => {
    const prefix = `t${randomBytes(4).toString("hex")}`;
    const db = await privateMysqlUrl();
    const schedules = tempDir();
    writeFileSync(
      join(schedules, "every-second.yaml"),
      'name: every-second\ncron: "* * * * * *"\noverlap: allow\ntask:\n  kind: noop\n  pool: nobody\n',
    );
    const env = (port: number) => ({
      PORT: String(port),
      DATABASE_URL: db.url,
      NATS_URL,
      NATS_PREFIX: prefix,
      DATA_DIR: tempDir(),
      SCHEDULES_DIR: schedules,
      ALERTMANAGER_TOKEN: "t".repeat(32),
    });
    const ready = (port: number) =>
      waitFor(
        async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.status === 200,
        40_000,
        200,
      );
    const [portA, portB] = [await freePort(), await freePort()];
    const a = spawnPitcrew(["serve"], env(portA));
    const b = spawnPitcrew(["serve"], env(portB));
    const store = openStore({ dialect: "mysql", url: db.url, poolSize: 2 });
    /** Runs recorded so far whose second is after `after`. */
    const runsAfter = async (after: number) =>
      Number(
        (
          await store.db
            .selectFrom("schedule_runs")
            .innerJoin("schedules", "schedules.id", "schedule_runs.schedule_id")
            .select((eb) => eb.fn.countAll<number>().as("n"))
            .where("schedules.name", "=", "every-second")
            .where("schedule_runs.scheduled_for", ">", after)
            .executeTakeFirstOrThrow()
        ).n,
      );
    try {
      await Promise.all([ready(portA), ready(portB)]).catch((err) => {
        throw new Error(`${err}\nA: ${a.stderr().slice(-3000)}\nB: ${b.stderr().slice(-3000)}`);
      });
      const start = Date.now();
      // Five runs between the two of them, then one dies without a word.
      await waitFor(async () => (await runsAfter(0)) >= 5, 20_000, 100);
      b.child.kill("SIGKILL");
      const killedAt = Date.now();
      await b.exited;
      // The survivor goes on alone: three more runs after the dead one's last second.
      await waitFor(async () => (await runsAfter(killedAt + 1000)) >= 3, 20_000, 100);
      a.child.kill("SIGTERM");
      expect((await a.exited).code).toBe(0);

      const runs = await store.db
        .selectFrom("schedule_runs")
        .innerJoin("schedules", "schedules.id", "schedule_runs.schedule_id")
        .select(["schedule_runs.scheduled_for", "schedule_runs.state", "schedule_runs.task_id", "schedule_runs.missed"])
        .where("schedules.name", "=", "every-second")
        .orderBy("schedule_runs.scheduled_for")
        .execute();
      const times = runs.map((r) => Number(r.scheduled_for));
      // One run per second: no duplicates, each fired with its own task, and no second unaccounted
      // for (a run that came late says how many it missed; on an idle machine none do).
      expect(new Set(times).size).toBe(times.length);
      expect(times.length).toBeGreaterThanOrEqual(8);
      for (let i = 1; i < times.length; i++)
        expect(times[i]! - times[i - 1]!, `gap at ${new Date(times[i]!).toISOString()}`).toBe(
          1000 * (1 + Number(runs[i]!.missed)),
        );
      expect(runs.filter((r) => Number(r.missed) > 0).length).toBeLessThanOrEqual(2);
      expect(runs.every((r) => r.state === "fired" && r.task_id)).toBe(true);
      const tasks = await store.db
        .selectFrom("tasks")
        .select(["id"])
        .where("created_by", "=", "schedule:every-second")
        .execute();
      expect(tasks.map((t) => t.id).sort()).toEqual(runs.map((r) => r.task_id).sort());
      // Runs went on after the kill, every second, up to A's stop.
      expect(times.filter((t) => t > killedAt + 1000).length).toBeGreaterThanOrEqual(3);
      expect(times[0]!).toBeGreaterThanOrEqual(start - 5000);
    } finally {
      a.child.kill("SIGKILL");
      b.child.kill("SIGKILL");
      await store.close();
      await deleteStreams({
        tasksStream: `${prefix.toUpperCase()}_TASKS`,
        eventsStream: `${prefix.toUpperCase()}_EVENTS`,
      });
      await db.drop();
    }
  });
});
