import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createJetStreamQueue } from "../../src/bus/jetstream.ts";
import type { TaskQueue } from "../../src/bus/port.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { openStore, type Store } from "../../src/store/db.ts";
import { fixture, newTag } from "../helpers/alerts.ts";
import { makeBareRepo } from "../helpers/git.ts";
import { freePort, spawnPitcrew, type Spawned } from "../helpers/process.ts";
import { deleteStreams } from "../helpers/queues.ts";
import { hasMysql, hasNats, NATS_URL } from "../helpers/services.ts";
import { privateMysqlUrl } from "../helpers/store.ts";
import { waitFor } from "../helpers/wait.ts";

// Two real control planes (`pitcrew serve`) on one MySQL database and one NATS, no runners, so
// every fix task stays queued: a storm of alerts to both must not queue more fixes than
// MAX_PRS_PER_HOUR, however the analyses of the two processes interleave; and a fix task that
// failed before it opened a pull request gives its place back.

const TOKEN = "storm-token-0123456789abcdef";
const LIMIT = 5;
const STORM = 40;
const up = (await hasMysql()) && (await hasNats());

describe.skipIf(!up)("MAX_PRS_PER_HOUR with two control planes on one MySQL", () => {
  const prefix = `t${randomBytes(4).toString("hex")}`;
  const streams = { tasksStream: `${prefix.toUpperCase()}_TASKS`, eventsStream: `${prefix.toUpperCase()}_EVENTS` };
  let db: Awaited<ReturnType<typeof privateMysqlUrl>>;
  let store: Store;
  let dir: string;
  const planes: Array<Spawned & { port: number }> = [];

  beforeAll(async () => {
    db = await privateMysqlUrl();
    dir = mkdtempSync(join(tmpdir(), "pitcrew-storm-"));
    const repo = makeBareRepo(dir, [{ message: "init", files: { "README.md": "gitops\n" } }]);
    for (const name of ["a", "b"]) {
      const port = await freePort();
      const p = spawnPitcrew(["serve"], {
        PORT: String(port),
        HOST: "127.0.0.1",
        DATA_DIR: join(dir, name),
        DATABASE_URL: db.url,
        NATS_URL,
        NATS_PREFIX: prefix,
        ALERTMANAGER_TOKEN: TOKEN,
        GITOPS_PROVIDER: "local",
        GITOPS_REPO: repo,
        MAX_PRS_PER_HOUR: String(LIMIT),
        MAX_PRS_PER_DAY: "1000",
        MAX_FIXES_PER_NAMESPACE: "100",
        ANALYSIS_CONCURRENCY: "4",
      });
      planes.push(Object.assign(p, { port }));
      // One after the other: both would run the migrations at once otherwise.
      await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok, 60_000, 200).catch((err) => {
        throw new Error(`control plane ${name} did not start: ${err}\n${p.stderr()}\n${p.stdout()}`);
      });
    }
    store = openStore({ dialect: "mysql", url: db.url, poolSize: 2 });
  }, 150_000);

  afterAll(async () => {
    for (const p of planes) p.child.kill("SIGTERM");
    await Promise.all(planes.map((p) => Promise.race([p.exited, new Promise((r) => setTimeout(r, 20_000))])));
    await store?.close();
    await db?.drop();
    await deleteStreams(streams).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  });

  const post = (port: number, body: unknown) =>
    fetch(`http://127.0.0.1:${port}/webhooks/alertmanager`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify(body),
    });

  /** Waits until no incident waits for or is in analysis, and returns the incidents by state. */
  async function settled(): Promise<Record<string, number>> {
    await waitFor(
      async () => {
        const busy = await store.db
          .selectFrom("incidents")
          .select("id")
          .where("state", "in", ["detected", "analyzing"])
          .execute();
        const total = await store.db.selectFrom("incidents").select("id").execute();
        return busy.length === 0 && total.length > 0;
      },
      60_000,
      200,
    );
    const rows = await store.db
      .selectFrom("incidents")
      .select(["state", (eb) => eb.fn.countAll<number>().as("n")])
      .groupBy("state")
      .execute();
    return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
  }

  const fixTasks = () =>
    store.db.selectFrom("tasks").selectAll().where("kind", "in", ["skill", "agent"]).orderBy("id").execute();

  it("queues no more fixes than the limit for a storm of alerts to both, and a fix that failed before its pull request frees its place", async () => {
    const responses = await Promise.all(
      Array.from({ length: STORM }, (_, i) => post(planes[i % 2]!.port, fixture("crashloop-firing.json", newTag()))),
    );
    expect(responses.map((r) => r.status).filter((s) => s !== 200)).toEqual([]);

    const states = await settled();
    expect(states).toEqual({ fixing: LIMIT, escalated: STORM - LIMIT });
    expect(await fixTasks()).toHaveLength(LIMIT);
    const guard = await store.db
      .selectFrom("events")
      .select(["reason"])
      .where("type", "=", "guardrail.max_prs_per_hour")
      .execute();
    expect(guard).toHaveLength(STORM - LIMIT);
    expect(
      guard.every(
        (g) => g.reason === `${LIMIT} pull requests opened or under way in the last hour (MAX_PRS_PER_HOUR ${LIMIT})`,
      ),
    ).toBe(true);

    // A runner reports that one of them failed before it opened anything.
    const [first] = await fixTasks();
    const bus: TaskQueue = createJetStreamQueue({
      servers: [NATS_URL],
      name: "storm-runner",
      settings: { subjectPrefix: prefix, ...streams },
      log: silentLogger,
    });
    try {
      await bus.publishTaskEvent({
        id: `evt_${randomBytes(8).toString("hex")}`,
        type: "task.failed",
        taskId: first!.id,
        runnerId: "runner-1",
        attempt: 1,
        at: Date.now(),
        error: "git clone failed: repository not found",
      });
    } finally {
      await bus.close();
    }
    await waitFor(
      async () =>
        (
          await store.db
            .selectFrom("incidents")
            .select("state")
            .where("id", "=", first!.incident_id!)
            .executeTakeFirst()
        )?.state === "failed",
      30_000,
    );

    // Its place is free again: one more alert gets a fix, the next one does not.
    expect((await post(planes[0]!.port, fixture("crashloop-firing.json", newTag()))).status).toBe(200);
    await settled();
    expect((await post(planes[1]!.port, fixture("crashloop-firing.json", newTag()))).status).toBe(200);
    expect(await settled()).toEqual({ fixing: LIMIT, escalated: STORM - LIMIT + 1, failed: 1 });
    const tasks = await fixTasks();
    expect(tasks).toHaveLength(LIMIT + 1);
    expect(tasks.filter((t) => t.state === "queued")).toHaveLength(LIMIT);
  }, 120_000);
});
