import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { createMemoryQueue } from "../../src/bus/memory.ts";
import { loadConfig } from "../../src/config/load.ts";
import { createMcpServer } from "../../src/mcp/server.ts";
import type { McpDeps } from "../../src/mcp/tool.ts";
import { createScheduler, SCHEDULE_SKILL_JOB } from "../../src/schedules/scheduler.ts";
import { createScheduleService } from "../../src/schedules/service.ts";
import { createScheduleSkillJob } from "../../src/schedules/skill-job.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { Skill } from "../../src/skills/schema.ts";
import { openStore, type Store } from "../../src/store/db.ts";
import { createControlJobs } from "../../src/tasks/control-jobs.ts";
import { createTaskService } from "../../src/tasks/service.ts";
import { makeClock } from "../helpers/intake-app.ts";
import { loadYamlFolder } from "../../src/shared/yaml-folder.ts";
import { ScheduleSpec } from "../../src/schedules/schema.ts";
import { loadSkills } from "../../src/skills/load.ts";
import { isInline } from "../../src/skills/inline.ts";
import { buildTaskRequest } from "../../src/tasks/request.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";
import { waitFor } from "../helpers/wait.ts";

const factories = await storeFactories();
const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "pitcrew-sched-"));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const config = loadConfig({ DATA_DIR: tmpdir(), ALLOWED_REPOS: "https://git.example.com/platform/docs.git" });
const SYSTEM = { actor: "test", channel: "system" };

const noop = (name: string, cron: string, extra = "") =>
  `name: ${name}\ncron: "${cron}"\ntask:\n  kind: noop\n  steps: 1\n${extra}`;

async function runsOf(store: Store, name: string) {
  return store.db
    .selectFrom("schedule_runs")
    .innerJoin("schedules", "schedules.id", "schedule_runs.schedule_id")
    .selectAll("schedule_runs")
    .where("schedules.name", "=", name)
    .orderBy("schedule_runs.scheduled_for")
    .execute();
}
const iso = (ms: number | string) => new Date(Number(ms)).toISOString();

describe("the shipped schedules", () => {
  it("load without problems: a nightly drift report of every Argo CD application and a weekly dependency audit, disabled", () => {
    const loaded = loadYamlFolder("schedules", ScheduleSpec, { what: "schedule", nameOf: (s) => s.name });
    expect(loaded.problems).toEqual([]);
    const byName = Object.fromEntries(loaded.items.map((i) => [i.item.name, i.item]));
    expect(Object.keys(byName).sort()).toEqual(["nightly-drift-check", "weekly-dependency-audit"]);
    expect(byName["nightly-drift-check"]).toMatchObject({
      enabled: true,
      skill: "argocd-drift-report",
      catch_up: "once",
    });
    const skill = loadSkills("skills").skills.find((s) => s.name === "argocd-drift-report")!;
    expect(isInline(skill)).toBe(true);
    expect(byName["weekly-dependency-audit"]).toMatchObject({
      enabled: false,
      task: { kind: "prompt", repo_url: "gitops" },
    });
    // `gitops` names the configured GitOps repository, which a task may always use.
    expect(buildTaskRequest(byName["weekly-dependency-audit"]!.task!, config).payload).toMatchObject({
      repoUrl: config.gitops.provider === "local" ? config.gitops.repoPath : expect.any(String),
      agent: "claude-code",
      timeoutMs: 45 * 60_000,
    });
  });
});

for (const f of factories) {
  describe.skipIf(!f.available)(`schedules on ${f.name}`, () => {
    let store: TestStore;
    beforeAll(async () => {
      store = await f.make({ own: true });
    });
    afterAll(async () => {
      await store?.close();
    });

    it("lets replicas that start together sync the same files: each schedule is created once and neither fails", async () => {
      const dir = tempDir();
      const clock = makeClock("2026-11-20T08:00:00Z");
      const names = Array.from({ length: 8 }, (_, i) => `race-${randomBytes(3).toString("hex")}-${i}`);
      for (const n of names) writeFileSync(join(dir, `${n}.yaml`), noop(n, "0 * * * *"));
      const replicas = [0, 1, 2].map(() =>
        createScheduleService({ store, log: silentLogger, now: () => clock.now, dir }),
      );
      const results = await Promise.all(replicas.map((r) => r.sync(SYSTEM)));
      for (const n of names) {
        expect(
          results.filter((r) => r.created.includes(n)),
          n,
        ).toHaveLength(1);
        expect(
          results.filter((r) => r.unchanged.includes(n)),
          n,
        ).toHaveLength(2);
      }
      const rows = await store.db.selectFrom("schedules").select("name").where("name", "in", names).execute();
      expect(rows).toHaveLength(names.length);
      // The other tests of this store prune file schedules: leave none of these behind.
      await store.db.deleteFrom("schedules").where("name", "in", names).execute();
    });

    it("syncs files: creates, updates, leaves alone, honours enabled: false, prunes only file schedules, and reports bad files with path and line", async () => {
      const dir = tempDir();
      const clock = makeClock("2026-11-20T08:00:00Z");
      const svc = createScheduleService({ store, log: silentLogger, now: () => clock.now, dir });
      writeFileSync(join(dir, "a.yaml"), noop("sync-a", "0 * * * *"));
      writeFileSync(join(dir, "b.yaml"), noop("sync-b", "0 3 * * *", "enabled: false\n"));
      writeFileSync(
        join(dir, "bad.yaml"),
        'name: sync-bad\ncron: "0 3 * * *"\ntimezone: Mars/Base\ntask:\n  kind: noop\n',
      );
      writeFileSync(join(dir, "worse.yaml"), "name: [unclosed\n");
      const first = await svc.sync(SYSTEM);
      expect(first).toMatchObject({ created: ["sync-a", "sync-b"], updated: [], unchanged: [] });
      expect(first.problems.map((p) => `${p.file.split("/").pop()}:${p.line}`)).toEqual(["bad.yaml:3", "worse.yaml:2"]);
      expect(first.problems[0]!.message).toMatch(/timezone: timezone "Mars\/Base" is not an IANA time zone/);
      const a = await svc.get("sync-a");
      expect(a).toMatchObject({ source: "file", enabled: 1 });
      expect(iso(a.next_run_at!)).toBe("2026-11-20T09:00:00.000Z");
      expect((await svc.get("sync-b")).next_run_at).toBeNull();

      // A schedule made through MCP is never pruned, and a file with its name is reported.
      await svc.create(
        { name: "sync-mcp", cron: "*/5 * * * *", task: { kind: "noop" } },
        { actor: "mcp:alice", channel: "mcp" },
      );
      writeFileSync(join(dir, "clash.yaml"), noop("sync-mcp", "0 0 * * *"));
      rmSync(join(dir, "a.yaml"));
      writeFileSync(join(dir, "b.yaml"), noop("sync-b", "0 4 * * *", "enabled: true\ntimezone: Europe/Berlin\n"));
      const second = await svc.sync(SYSTEM, { prune: true });
      expect(second).toMatchObject({ created: [], updated: ["sync-b"], pruned: ["sync-a"], skipped: ["sync-mcp"] });
      expect(second.problems.map((p) => p.message)).toContain(
        'schedule "sync-mcp" exists and was made through MCP (mcp:alice); rename one of them',
      );
      expect(iso((await svc.get("sync-b")).next_run_at!)).toBe("2026-11-21T03:00:00.000Z");
      expect((await svc.get("sync-mcp")).origin).toBe("mcp:alice");
      await expect(svc.get("sync-a")).rejects.toMatchObject({ code: "schedule.not_found" });
      // Disabling through the file stops it.
      writeFileSync(join(dir, "b.yaml"), noop("sync-b", "0 4 * * *", "enabled: false\ntimezone: Europe/Berlin\n"));
      expect((await svc.sync(SYSTEM)).updated).toEqual(["sync-b"]);
      expect(await svc.get("sync-b")).toMatchObject({ enabled: 0, next_run_at: null });
      expect((await svc.sync(SYSTEM)).unchanged).toContain("sync-b");
      const types = (
        await store.db.selectFrom("events").select("type").where("type", "like", "schedule.%").execute()
      ).map((e) => e.type);
      expect(types.filter((t) => t === "schedule.deleted")).toHaveLength(1);
    });

    it("fires each run once with two schedulers on one database, queues the task through the outbox as schedule:<name>, and moves on", async () => {
      const clock = makeClock("2026-11-20T10:00:00.200Z");
      const svc = createScheduleService({ store, log: silentLogger, now: () => clock.now, dir: tempDir() });
      await svc.create(
        {
          name: "twice-nothing",
          cron: "* * * * * *",
          overlap: "allow",
          task: {
            kind: "prompt",
            prompt: "refresh the docs",
            repo_url: "https://git.example.com/platform/docs.git",
            agent: "claude-code",
          },
        },
        SYSTEM,
      );
      // A second replica: its own connection pool on MySQL. On SQLite (one process, embedded) the
      // same connection: two better-sqlite3 connections in one process would block each other.
      const other = f.name === "mysql" ? openStore(store.database) : store;
      try {
        const a = createScheduler({ store, log: silentLogger, now: () => clock.now, skills: () => [], config });
        const b = createScheduler({ store: other, log: silentLogger, now: () => clock.now, skills: () => [], config });
        for (let s = 1; s <= 5; s++) {
          clock.set(`2026-11-20T10:00:0${s}.100Z`);
          await Promise.all([a.tick(), b.tick(), a.tick(), b.tick()]);
        }
      } finally {
        if (other !== store) await other.close();
      }
      const runs = await runsOf(store, "twice-nothing");
      expect(runs.map((r) => `${iso(r.scheduled_for).slice(17, 19)}:${r.state}`)).toEqual([
        "01:fired",
        "02:fired",
        "03:fired",
        "04:fired",
        "05:fired",
      ]);
      const tasks = await store.db
        .selectFrom("tasks")
        .selectAll()
        .where("created_by", "=", "schedule:twice-nothing")
        .orderBy("id")
        .execute();
      expect(tasks).toHaveLength(5);
      expect(tasks.map((t) => t.id).sort()).toEqual(runs.map((r) => r.task_id).sort());
      expect(JSON.parse(tasks[0]!.payload)).toMatchObject({
        prompt: "refresh the docs",
        repoUrl: "https://git.example.com/platform/docs.git",
        agent: "claude-code",
        schedule: "twice-nothing",
      });
      const outbox = await store.db
        .selectFrom("outbox")
        .select("msg_id")
        .where(
          "msg_id",
          "in",
          tasks.map((t) => t.id),
        )
        .execute();
      expect(outbox).toHaveLength(5);
      expect(iso((await svc.get("twice-nothing")).next_run_at!)).toBe("2026-11-20T10:00:06.000Z");
    });

    it("overlap: skip records a skipped run while the previous run's task is still active", async () => {
      const clock = makeClock("2026-11-20T11:00:00Z");
      const svc = createScheduleService({ store, log: silentLogger, now: () => clock.now, dir: tempDir() });
      await svc.create({ name: "no-overlap", cron: "*/10 * * * *", task: { kind: "noop" } }, SYSTEM);
      const scheduler = createScheduler({ store, log: silentLogger, now: () => clock.now, skills: () => [], config });
      clock.set("2026-11-20T11:10:01Z");
      await scheduler.tick();
      clock.set("2026-11-20T11:20:01Z");
      await scheduler.tick();
      const runs = await runsOf(store, "no-overlap");
      expect(runs.map((r) => r.state)).toEqual(["fired", "skipped"]);
      expect(runs[1]!.reason).toBe(`the previous run's task ${runs[0]!.task_id} is still active (overlap: skip)`);
      // Once that task is done, the next run fires.
      await store.db.updateTable("tasks").set({ state: "succeeded" }).where("id", "=", runs[0]!.task_id!).execute();
      clock.set("2026-11-20T11:30:01Z");
      await scheduler.tick();
      expect((await runsOf(store, "no-overlap")).map((r) => r.state)).toEqual(["fired", "skipped", "fired"]);
      const skipped = await store.db
        .selectFrom("events")
        .select(["reason"])
        .where("type", "=", "schedule.skipped")
        .where("actor", "=", "schedule:no-overlap")
        .execute();
      expect(skipped).toHaveLength(1);
    });

    it("after a restart, catch_up: skip records the missed runs without firing; catch_up: once fires one run counting them", async () => {
      const clock = makeClock("2026-11-20T12:00:00Z");
      const svc = createScheduleService({ store, log: silentLogger, now: () => clock.now, dir: tempDir() });
      // overlap: allow, so the first run's task (still queued: no runner here) does not block the next.
      await svc.create({ name: "catch-skip", cron: "0 * * * *", overlap: "allow", task: { kind: "noop" } }, SYSTEM);
      await svc.create(
        { name: "catch-once", cron: "0 * * * *", overlap: "allow", catch_up: "once", task: { kind: "noop" } },
        SYSTEM,
      );
      const before = createScheduler({ store, log: silentLogger, now: () => clock.now, skills: () => [], config });
      clock.set("2026-11-20T13:00:02Z");
      await before.tick();
      // Every control plane is down from 13:00 to 18:20; a new one starts.
      clock.set("2026-11-20T18:20:00Z");
      const after = createScheduler({ store, log: silentLogger, now: () => clock.now, skills: () => [], config });
      await after.tick();
      const skip = await runsOf(store, "catch-skip");
      expect(skip.map((r) => `${iso(r.scheduled_for).slice(11, 16)}:${r.state}:${r.missed}`)).toEqual([
        "13:00:fired:0",
        "18:00:skipped:5",
      ]);
      expect(skip[1]!.reason).toBe("5 run(s) missed while no control plane was running (catch_up: skip)");
      const once = await runsOf(store, "catch-once");
      expect(once.map((r) => `${iso(r.scheduled_for).slice(11, 16)}:${r.state}:${r.missed}`)).toEqual([
        "13:00:fired:0",
        "18:00:fired:5",
      ]);
      expect(once[1]!.reason).toBe("catch-up: one run for 5 missed while no control plane was running");
      expect(iso((await svc.get("catch-once")).next_run_at!)).toBe("2026-11-20T19:00:00.000Z");
      // The next tick fires nothing more.
      await after.tick();
      expect(await runsOf(store, "catch-once")).toHaveLength(2);
    });

    it("runs an inline skill as a control job, records what it found, and fails the run's task when the skill reports a problem", async () => {
      let status = 200;
      const target: Server = createServer((_req, res) => res.writeHead(status).end("ok"));
      await new Promise<void>((r) => target.listen(0, "127.0.0.1", r));
      const url = `http://127.0.0.1:${(target.address() as { port: number }).port}/healthz`;
      const probe = Skill.parse({
        name: "docs-probe",
        description: "is the docs site up",
        match: {},
        risk: "read",
        approval: "none",
        action: { builtin: "probe", with: {} },
      });
      const clock = makeClock("2026-11-20T14:00:00Z");
      const svc = createScheduleService({ store, log: silentLogger, now: () => clock.now, dir: tempDir() });
      await svc.create(
        {
          name: "probe-docs",
          cron: "*/5 * * * *",
          overlap: "allow",
          skill: "docs-probe",
          params: { url, expect_status: 200 },
        },
        SYSTEM,
      );
      const queue = createMemoryQueue({ log: silentLogger });
      const { createOutboxRelay } = await import("../../src/bus/outbox.ts");
      const relay = createOutboxRelay(
        { store, queue, log: silentLogger },
        { intervalMs: 20, batch: 100, retentionMs: 86_400_000 },
      );
      const jobs = createControlJobs(
        { store, queue, log: silentLogger, now: () => clock.now },
        {
          [SCHEDULE_SKILL_JOB]: createScheduleSkillJob({
            store,
            now: () => clock.now,
            skills: () => [probe],
            inline: { secrets: () => undefined },
          }),
        },
      ).start(2);
      relay.start();
      try {
        const scheduler = createScheduler({
          store,
          log: silentLogger,
          now: () => clock.now,
          skills: () => [probe],
          config,
        });
        const finished = async () => {
          const runs = await runsOf(store, "probe-docs");
          return waitFor(async () => {
            const t = await store.db
              .selectFrom("tasks")
              .select(["id", "state", "error"])
              .where(
                "id",
                "in",
                runs.map((r) => r.task_id!),
              )
              .orderBy("id")
              .execute();
            return t.every((x) => x.state === "succeeded" || x.state === "failed") ? t : undefined;
          });
        };
        clock.set("2026-11-20T14:05:01Z");
        await scheduler.tick();
        await finished();
        status = 503;
        clock.set("2026-11-20T14:10:01Z");
        await scheduler.tick();
        const runs = await runsOf(store, "probe-docs");
        const states = await finished();
        expect(
          states.map((t) => t.state),
          JSON.stringify(states),
        ).toEqual(["succeeded", "failed"]);
        expect(states[1]!.error).toMatch(/probe failed: .*503/);
        const results = await store.db
          .selectFrom("events")
          .select(["task_id", "reason", "data"])
          .where("type", "=", "schedule.result")
          .where(
            "task_id",
            "in",
            runs.map((r) => r.task_id!),
          )
          .orderBy("seq")
          .execute();
        expect(results.map((e) => JSON.parse(e.data).kind)).toEqual(["applied", "escalate"]);
      } finally {
        await jobs.stop();
        await relay.stop();
        await queue.close();
        target.close();
      }
    });

    it("records a drift report as skipped, not failed, where Argo CD is not configured", async () => {
      const clock = makeClock("2026-11-20T16:00:00Z");
      const skills = loadSkills("skills").skills;
      const svc = createScheduleService({ store, log: silentLogger, now: () => clock.now, dir: tempDir() });
      await svc.create(
        { name: "drift-unconfigured", cron: "0 * * * *", skill: "argocd-drift-report", params: { mode: "report" } },
        SYSTEM,
      );
      const scheduler = createScheduler({
        store,
        log: silentLogger,
        now: () => clock.now,
        skills: () => skills,
        config,
        inline: {},
      });
      clock.set("2026-11-20T17:00:01Z");
      await scheduler.tick();
      expect((await runsOf(store, "drift-unconfigured")).map((r) => [r.state, r.reason, r.task_id])).toEqual([
        [
          "skipped",
          "skill argocd-drift-report cannot run here: Argo CD is not configured (ARGOCD_URL and ARGOCD_TOKEN)",
          null,
        ],
      ]);
    });

    it("is managed through the MCP tools: create, list, get with runs, update, run now, sync, delete", async () => {
      const clock = makeClock("2026-11-20T15:00:00Z");
      const dir = tempDir();
      writeFileSync(join(dir, "weekly.yaml"), noop("mcp-weekly", "0 6 * * 1", "timezone: Europe/Berlin\n"));
      const service = createScheduleService({ store, log: silentLogger, now: () => clock.now, dir });
      const scheduler = createScheduler({ store, log: silentLogger, now: () => clock.now, skills: () => [], config });
      const queue = createMemoryQueue({ log: silentLogger });
      const deps = {
        config,
        log: silentLogger,
        store,
        queue,
        tasks: createTaskService({ store, log: silentLogger, now: () => clock.now }),
        now: () => clock.now,
        skills: () => [],
        schedules: { service, scheduler },
        kick: () => {},
      } as unknown as McpDeps;
      const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
      await createMcpServer(deps, { subject: "alice", scopes: new Set(["write", "read"]), via: "token" }).connect(
        serverSide,
      );
      const client = new Client({ name: "schedules-test", version: "1" });
      await client.connect(clientSide);
      const call = async (name: string, args: Record<string, unknown>) => {
        const r = (await client.callTool({ name, arguments: args })) as CallToolResult;
        if (r.isError) throw new Error(String((r.content[0] as { text?: string }).text));
        return r.structuredContent as any;
      };
      try {
        const made = await call("create_schedule", {
          name: "mcp-daily",
          cron: "30 7 * * *",
          timezone: "America/New_York",
          task: { kind: "noop" },
        });
        expect(made.schedule).toMatchObject({
          name: "mcp-daily",
          source: "mcp",
          origin: "mcp:alice",
          next_run_at: "2026-11-21T12:30:00.000Z",
        });
        expect((await call("sync_schedules", { prune: true })).created).toEqual(["mcp-weekly"]);
        expect((await call("list_schedules", {})).schedules.map((s: { name: string }) => s.name)).toEqual(
          expect.arrayContaining(["mcp-daily", "mcp-weekly"]),
        );
        const run = await call("run_schedule", { name: "mcp-daily" });
        expect(run).toMatchObject({ state: "fired" });
        const got = await call("get_schedule", { name: "mcp-daily" });
        expect(got.runs).toEqual([
          expect.objectContaining({ state: "fired", task_id: run.task_id, task_state: "queued" }),
        ]);
        clock.advance(1000);
        expect((await call("run_schedule", { name: "mcp-daily" })).state).toBe("skipped");
        const off = await call("update_schedule", { name: "mcp-daily", enabled: false });
        expect(off.schedule).toMatchObject({ enabled: false, next_run_at: null, cron: "30 7 * * *" });
        await expect(
          call("create_schedule", { name: "mcp-daily", cron: "* * * * *", task: { kind: "noop" } }),
        ).rejects.toThrow(/schedule\.exists/);
        await expect(
          call("create_schedule", { name: "mcp-bad", cron: "61 * * * *", task: { kind: "noop" } }),
        ).rejects.toThrow(/schedule\.invalid/);
        await expect(
          call("create_schedule", {
            name: "mcp-repo",
            cron: "* * * * *",
            task: { kind: "prompt", prompt: "x", repo_url: "https://evil.example/x.git" },
          }),
        ).resolves.toBeDefined();
        // A run whose task is not allowed is recorded as failed, with the reason.
        expect(await call("run_schedule", { name: "mcp-repo" })).toMatchObject({
          state: "failed",
          reason: expect.stringContaining("task.repo_not_allowed"),
        });
        expect((await call("delete_schedule", { name: "mcp-daily" })).schedule.name).toBe("mcp-daily");
        await expect(call("get_schedule", { name: "mcp-daily" })).rejects.toThrow(/schedule\.not_found/);
      } finally {
        await client.close();
        await queue.close();
      }
    });
  });
}
