import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { createJetStreamQueue } from "../../src/bus/jetstream.ts";
import type { TaskEvent } from "../../src/bus/jobs.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { hasMysql, hasNats, NATS_URL } from "../helpers/services.ts";
import { privateMysqlUrl } from "../helpers/store.ts";
import { freePort, spawnPitcrew } from "../helpers/process.ts";
import { waitFor } from "../helpers/wait.ts";
import { deleteStreams } from "../helpers/queues.ts";

const natsUp = await hasNats();
const mysqlUp = await hasMysql();
const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "pitcrew-cli-"));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

async function get(port: number, path: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.json().catch(() => undefined) };
}

const removeStreams = (prefix: string) =>
  deleteStreams({ tasksStream: `${prefix.toUpperCase()}_TASKS`, eventsStream: `${prefix.toUpperCase()}_EVENTS` });

describe("pitcrew serve (embedded defaults)", () => {
  it("serves /healthz, creates the SQLite file, and exits 0 on SIGINT", async () => {
    const dir = tempDir();
    const port = await freePort();
    const p = spawnPitcrew(["serve"], { PORT: String(port), DATA_DIR: join(dir, "data") });
    try {
      // The bound: healthy within 10 s of starting.
      await waitFor(async () => (await get(port, "/healthz")).status === 200, 10_000, 100);
      expect(existsSync(join(dir, "data", "pitcrew.db"))).toBe(true);
      expect((await get(port, "/readyz")).body).toEqual({ status: "ready", checks: { store: "ok", queue: "ok" } });
      expect(p.stdout()).toContain(`/healthz`);
      p.child.kill("SIGINT");
      expect(await p.exited).toEqual({ code: 0, signal: null });
    } finally {
      p.child.kill("SIGKILL");
    }
  });

  it("exits 1 with one line naming the variable when a setting is bad", async () => {
    const p = spawnPitcrew(["serve"], { PORT: "eighty", DATA_DIR: join(tempDir(), "d") });
    expect((await p.exited).code).toBe(1);
    const lines = p.stderr().trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^pitcrew: invalid configuration: PORT: .*"eighty"/);
    expect(p.stderr()).not.toMatch(/\n\s+at /);
  });

  it("does not echo a secret-bearing setting back when it is bad", async () => {
    const p = spawnPitcrew(["serve"], {
      DATABASE_URL: "postgres://admin:hunter2@db/x",
      DATA_DIR: join(tempDir(), "d"),
    });
    expect((await p.exited).code).toBe(1);
    expect(p.stderr()).toMatch(/DATABASE_URL/);
    expect(p.stderr()).not.toContain("hunter2");
  });

  it("migrate applies the schema once and then reports it up to date", async () => {
    const dir = tempDir();
    const first = spawnPitcrew(["migrate"], { DATA_DIR: dir });
    expect((await first.exited).code).toBe(0);
    expect(first.stdout()).toContain("applied: 0001_init");
    const second = spawnPitcrew(["migrate"], { DATA_DIR: dir });
    expect((await second.exited).code).toBe(0);
    expect(second.stdout()).toContain("database is up to date");
  });

  it("runner refuses to start without NATS_URL", async () => {
    const p = spawnPitcrew(["runner"], {});
    expect((await p.exited).code).toBe(1);
    expect(p.stderr()).toMatch(/NATS_URL: required/);
  });
});

describe.skipIf(!natsUp || !mysqlUp)("pitcrew serve (distributed)", () => {
  it("serves with /readyz 200 on MySQL and NATS, having created both streams", async () => {
    const prefix = `t${randomBytes(4).toString("hex")}`;
    const port = await freePort();
    // Its own database: the server's outbox relay would otherwise publish other tests' rows.
    const db = await privateMysqlUrl();
    const p = spawnPitcrew(["serve"], {
      PORT: String(port),
      DATABASE_URL: db.url,
      NATS_URL,
      NATS_PREFIX: prefix,
      DATA_DIR: tempDir(),
    });
    try {
      await waitFor(async () => (await get(port, "/readyz")).status === 200, 30_000, 200);
      const nc = await connect({ servers: [NATS_URL] });
      const jsm = await jetstreamManager(nc);
      const tasks = await jsm.streams.info(`${prefix.toUpperCase()}_TASKS`);
      const events = await jsm.streams.info(`${prefix.toUpperCase()}_EVENTS`);
      await nc.close();
      expect(tasks.config.retention).toBe("workqueue");
      expect(tasks.config.subjects).toEqual([`${prefix}.tasks.>`]);
      expect(events.config.retention).toBe("limits");
      expect(events.config.max_age).toBe(7 * 86_400_000 * 1_000_000);
      p.child.kill("SIGTERM");
      expect(await p.exited).toEqual({ code: 0, signal: null });
    } finally {
      p.child.kill("SIGKILL");
      await removeStreams(prefix);
      await db.drop();
    }
  });
});

describe.skipIf(!natsUp)("pitcrew runner (process)", () => {
  it("pulls a task from JetStream, reports it succeeded, heartbeats, and exits 0 on SIGTERM", async () => {
    const prefix = `t${randomBytes(4).toString("hex")}`;
    const settings = {
      subjectPrefix: prefix,
      tasksStream: `${prefix.toUpperCase()}_TASKS`,
      eventsStream: `${prefix.toUpperCase()}_EVENTS`,
    };
    const queue = createJetStreamQueue({ servers: [NATS_URL], name: "cli-test", settings, log: silentLogger });
    const events: any[] = [];
    const sub = queue.consumeEvents({ concurrency: 4 }, async (d) => {
      events.push(d.data);
      await d.ack();
    });
    const p = spawnPitcrew(["runner"], {
      NATS_URL,
      NATS_PREFIX: prefix,
      RUNNER_ID: "cli-runner",
      RUNNER_POOL: "jobs",
      HEARTBEAT_INTERVAL: "500ms",
      DATA_DIR: tempDir(),
    });
    try {
      await queue.ready();
      await queue.publishTask("jobs", "tsk_cli1", {
        v: 1,
        taskId: "tsk_cli1",
        kind: "noop",
        pool: "jobs",
        incidentId: null,
        payload: { result: { done: true } },
        createdAt: Date.now(),
      });
      const done = await waitFor(
        () => events.find((e: TaskEvent) => e.type === "task.succeeded" && e.taskId === "tsk_cli1"),
        20_000,
        100,
      );
      expect(done.runnerId).toBe("cli-runner");
      expect(done.result).toEqual({ done: true });
      await waitFor(
        () => events.find((e) => e.type === "runner.heartbeat" && e.runnerId === "cli-runner" && e.pool === "jobs"),
        5000,
      );
      p.child.kill("SIGTERM");
      expect(await p.exited).toEqual({ code: 0, signal: null });
    } finally {
      p.child.kill("SIGKILL");
      await sub.stop();
      await queue.close();
      await removeStreams(prefix);
    }
  });
});
