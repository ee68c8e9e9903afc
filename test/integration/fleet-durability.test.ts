import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { gitSync, makeBareRepo } from "../helpers/git.ts";
import { createJetStreamQueue } from "../../src/bus/jetstream.ts";
import { createOutboxRelay } from "../../src/bus/outbox.ts";
import { createEventIngester } from "../../src/events/ingester.ts";
import { listRunners } from "../../src/fleet/repo.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { createTaskService } from "../../src/tasks/service.ts";
import { hasNats, NATS_URL } from "../helpers/services.ts";
import { deleteStreams } from "../helpers/queues.ts";
import { spawnPitcrew, type Spawned } from "../helpers/process.ts";
import { storeFactories } from "../helpers/store.ts";
import { waitFor } from "../helpers/wait.ts";

const natsUp = await hasNats();
const sqlite = (await storeFactories()).find((f) => f.name === "sqlite")!;
const git = gitSync;

describe.skipIf(!natsUp)("runner fleet on JetStream", () => {
  const dir = mkdtempSync(join(tmpdir(), "pitcrew-fleet-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("completes 50 fix tasks exactly once across 3 runner processes when one is SIGKILLed mid-task, one PR per branch", async () => {
    // A GitOps repository with one Deployment, shared by the runners as a local bare repository.
    const bare = makeBareRepo(dir, [
      {
        message: "web",
        files: {
          "apps/web.yaml":
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: prod\nspec:\n  replicas: 2\n  template:\n    metadata:\n      annotations: {}\n    spec:\n      containers:\n        - name: web\n          image: web:1\n",
        },
      },
    ]);

    const prefix = `t${randomBytes(4).toString("hex")}`;
    const settings = {
      subjectPrefix: prefix,
      tasksStream: `${prefix.toUpperCase()}_TASKS`,
      eventsStream: `${prefix.toUpperCase()}_EVENTS`,
      ackWaitMs: 3000,
      maxDeliver: 5,
    };
    const store = await sqlite.make();
    const queue = createJetStreamQueue({ servers: [NATS_URL], name: "fleet-test", settings, log: silentLogger });
    await queue.ready();
    const relay = createOutboxRelay(
      { store, queue, log: silentLogger },
      { intervalMs: 20, batch: 100, retentionMs: 86_400_000 },
    );
    const ingesting = createEventIngester({ store, queue, log: silentLogger, now: Date.now }).start(8);
    relay.start();

    const runners: Spawned[] = [];
    const env = (id: string) => ({
      NATS_URL,
      NATS_PREFIX: prefix,
      RUNNER_ID: id,
      RUNNER_CONCURRENCY: "2",
      TASK_ACK_WAIT: "3s",
      HEARTBEAT_INTERVAL: "300ms",
      GITOPS_REPO: bare,
      DATA_DIR: join(dir, `data-${id}`),
      TMPDIR: join(dir, `tmp-${id}`),
    });
    try {
      for (const id of ["r1", "r2", "r3"]) {
        mkdirSync(join(dir, `tmp-${id}`), { recursive: true });
        runners.push(spawnPitcrew(["runner"], env(id)));
      }
      const tasks = createTaskService({ store, log: silentLogger, now: Date.now, onEnqueued: () => relay.kick() });
      const ids: string[] = [];
      for (let i = 0; i < 50; i++) {
        const incidentId = `inc_fleet${prefix}${String(i).padStart(3, "0")}`;
        const { task } = await tasks.create({
          kind: "skill",
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
        ids.push(task.id);
      }

      // Kill r1 while it is working on something.
      const busy = await waitFor(
        async () => {
          const r = await store.db
            .selectFrom("tasks")
            .select("id")
            .where("runner_id", "=", "r1")
            .where("state", "=", "running")
            .execute();
          return r.length > 0 ? r.map((t) => t.id) : undefined;
        },
        30_000,
        20,
      );
      runners[0]!.child.kill("SIGKILL");
      expect((await runners[0]!.exited).signal).toBe("SIGKILL");

      const rows = await waitFor(
        async () => {
          const r = await store.db.selectFrom("tasks").selectAll().where("id", "in", ids).execute();
          return r.every((t) => ["succeeded", "failed", "cancelled"].includes(t.state)) ? r : undefined;
        },
        90_000,
        200,
      );
      expect(rows.map((r) => r.state).filter((s) => s !== "succeeded")).toEqual([]);

      // One pull request per branch, whatever the redeliveries did.
      const refs = git(dir, "--git-dir", bare, "for-each-ref", "--format=%(refname)", "refs/pitcrew/pulls/")
        .trim()
        .split("\n")
        .filter(Boolean);
      const branches = refs.map(
        (ref) => JSON.parse(git(dir, "--git-dir", bare, "cat-file", "blob", ref)).branch as string,
      );
      expect(branches).toHaveLength(50);
      expect(new Set(branches).size).toBe(50);
      // What r1 was working on when it died was finished by the others.
      expect(rows.filter((r) => busy.includes(r.id)).some((r) => r.runner_id !== "r1")).toBe(true);
      // Each task has one outcome: its terminal events (a redelivery may repeat one) all agree
      // with the state it ended in.
      const terminal = await store.db
        .selectFrom("events")
        .select(["task_id", "type"])
        .where("task_id", "in", ids)
        .where("type", "in", ["task.succeeded", "task.failed", "task.cancelled"])
        .execute();
      for (const r of rows) {
        const types = new Set(terminal.filter((e) => e.task_id === r.id).map((e) => e.type));
        expect([...types], r.id).toEqual([`task.${r.state}`]);
      }

      // The killed runner goes stale; the live ones do not.
      const fleet = await waitFor(
        async () => {
          // Judged against a 1 s interval (runners beat every 300 ms): slack for ingest lag.
          const all = await listRunners(store.db, Date.now(), 1000);
          const mine = all.filter((r) => ["r1", "r2", "r3"].includes(r.id));
          return mine.length === 3 && mine.find((r) => r.id === "r1")!.stale ? mine : undefined;
        },
        10_000,
        100,
      );
      expect(fleet.filter((r) => r.stale).map((r) => r.id)).toEqual(["r1"]);
    } finally {
      for (const r of runners) r.child.kill("SIGKILL");
      await relay.stop();
      await ingesting.stop();
      await queue.close();
      await store.close();
      await deleteStreams(settings);
    }
  }, 150_000);
});
