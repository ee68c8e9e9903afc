import { createServer, type Server } from "node:http";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { createMemoryQueue } from "../../src/bus/memory.ts";
import { createOutboxRelay } from "../../src/bus/outbox.ts";
import type { TaskMessage } from "../../src/bus/jobs.ts";
import type { Subscription } from "../../src/bus/port.ts";
import { loadConfig } from "../../src/config/load.ts";
import { createEventIngester } from "../../src/events/ingester.ts";
import { listEvents } from "../../src/events/repo.ts";
import { git } from "../../src/gitops/git.ts";
import { createLocalGitHost } from "../../src/gitops/local.ts";
import type { GitHost } from "../../src/gitops/port.ts";
import { createAnalysisWorker } from "../../src/incidents/analysis.ts";
import { incidentFixHook } from "../../src/incidents/fix-outcome.ts";
import { getIncident } from "../../src/incidents/repo.ts";
import { createMcpServer } from "../../src/mcp/server.ts";
import type { McpDeps, Principal, Scope } from "../../src/mcp/tool.ts";
import { newId } from "../../src/shared/ids.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { rulesPlanner } from "../../src/skills/planner.ts";
import { Skill } from "../../src/skills/schema.ts";
import { getPause } from "../../src/system/settings.ts";
import { getTask } from "../../src/tasks/repo.ts";
import { createTaskService } from "../../src/tasks/service.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";
import { waitFor } from "../helpers/wait.ts";

// Every tool family driven through a real MCP client (in-memory transport) against a SQLite store,
// the in-process queue, the outbox relay, the event ingester, the analysis worker and a real bare
// git repository; assertions are on rows, events, bus messages and git refs.

const sqlite = (await storeFactories()).find((f) => f.name === "sqlite")!;
const isolated = {
  env: {
    GIT_CONFIG_GLOBAL: "/dev/null",
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_AUTHOR_NAME: "Dev",
    GIT_AUTHOR_EMAIL: "dev@example.com",
    GIT_COMMITTER_NAME: "Dev",
    GIT_COMMITTER_EMAIL: "dev@example.com",
  },
};
const uid = () => randomBytes(4).toString("hex");

type Call = { isError: boolean; text: string; data: any };

describe("MCP tools", () => {
  let store: TestStore;
  let root: string;
  let bare: string;
  let work: string;
  let gitHost: GitHost;
  let probeServer: Server;
  let probeUrl = "";
  const clock = { now: Date.now() };
  const queue = createMemoryQueue({ log: silentLogger });
  const published: TaskMessage[] = [];
  const controls: { taskId: string; action: string }[] = [];
  const subs: Subscription[] = [];
  let relay: ReturnType<typeof createOutboxRelay>;
  let skills: Skill[] = [];
  let reloads = 0;
  const clients: Client[] = [];

  const principal = (subject: string, scopes: Scope[]): Principal => ({
    subject,
    scopes: new Set(scopes),
    via: "token",
  });
  const admin = principal("alice", ["admin"]);
  const writer = principal("bob", ["read", "write"]);

  async function connect(p: Principal): Promise<Client> {
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    await createMcpServer(deps, p).connect(serverSide);
    const client = new Client({ name: "mcp-tools-test", version: "1.0.0" });
    await client.connect(clientSide);
    clients.push(client);
    return client;
  }
  let asAdmin: Client;
  let asWriter: Client;

  async function call(name: string, args: Record<string, unknown> = {}, client = asAdmin): Promise<Call> {
    const r = (await client.callTool({ name, arguments: args })) as CallToolResult;
    const text = r.content.map((c) => (c.type === "text" ? c.text : "")).join("\n");
    return { isError: !!r.isError, text, data: r.structuredContent };
  }
  async function ok(name: string, args: Record<string, unknown> = {}, client = asAdmin): Promise<any> {
    const r = await call(name, args, client);
    if (r.isError) throw new Error(`${name} failed: ${r.text}`);
    return r.data;
  }
  const eventsOf = async (f: { taskId?: string; incidentId?: string }) => listEvents(store.db, { ...f, limit: 1000 });
  const wasPublished = (taskId: string) => waitFor(() => published.find((m) => m.taskId === taskId), 5000);

  let deps: McpDeps;

  beforeAll(async () => {
    store = await sqlite.make();
    root = await mkdtemp(join(tmpdir(), "pitcrew-mcp-tools-"));
    bare = join(root, "gitops.git");
    work = join(root, "work");
    await git(root, ["init", "--quiet", "--bare", "--initial-branch=main", bare], isolated);
    await git(root, ["clone", "--quiet", bare, work], isolated);
    await git(work, ["checkout", "--quiet", "-B", "main"], isolated);
    await writeFile(join(work, "deploy.yaml"), "replicas: 2\n");
    await git(work, ["add", "-A"], isolated);
    await git(work, ["commit", "--quiet", "-m", "initial"], isolated);
    await git(work, ["push", "--quiet", "origin", "main"], isolated);
    gitHost = createLocalGitHost({ repoPath: bare });

    probeServer = createServer((req, res) => res.writeHead(req.url === "/healthz" ? 200 : 404).end("ok"));
    await new Promise<void>((r) => probeServer.listen(0, "127.0.0.1", () => r()));
    probeUrl = `http://127.0.0.1:${(probeServer.address() as { port: number }).port}/healthz`;

    skills = [
      Skill.parse({
        name: "restart-app",
        description: "Restart the app",
        match: { alertname: ["AppDown"] },
        risk: "medium",
        approval: "before_run",
        action: {
          builtin: "restart",
          with: { namespace: "{{labels.namespace}}", deployment: "{{labels.deployment}}" },
        },
      }),
      Skill.parse({
        name: "scale-app",
        description: "Scale the app",
        match: { alertname: ["AppSlow"] },
        risk: "low",
        approval: "before_merge",
        action: {
          builtin: "scale",
          with: { namespace: "{{labels.namespace}}", deployment: "{{labels.deployment}}", factor: 2 },
        },
      }),
      Skill.parse({
        name: "probe-app",
        description: "Probe the app",
        match: { alertname: ["AppProbe"] },
        risk: "read",
        approval: "none",
        action: { builtin: "probe", with: { url: probeUrl } },
      }),
      Skill.parse({
        name: "probe-gated",
        description: "Probe, with approval",
        match: { alertname: ["AppGated"] },
        risk: "low",
        approval: "before_run",
        action: { builtin: "probe", with: { url: probeUrl } },
      }),
      Skill.parse({
        name: "rollback-app",
        description: "Roll the app back",
        match: { alertname: ["AppBroken"] },
        risk: "read",
        approval: "none",
        action: { builtin: "rollback", with: { deployment: "{{labels.deployment}}" } },
      }),
    ];

    const config = loadConfig({
      DATA_DIR: root,
      HEARTBEAT_INTERVAL: "1s",
      RUNNER_POOL: "default",
      ALLOWED_REPOS: "https://example.com/r.git",
    });
    const now = () => clock.now;
    const onTerminal = incidentFixHook(store.dialect);
    relay = createOutboxRelay(
      { store, queue, log: silentLogger, now },
      { intervalMs: 20, batch: 100, retentionMs: 86_400_000 },
    );
    relay.start();
    const tasks = createTaskService({ store, log: silentLogger, now, onEnqueued: () => relay.kick(), onTerminal });
    subs.push(createEventIngester({ store, queue, log: silentLogger, now, onTerminal }).start(4));
    for (const pool of ["default", "control"]) {
      subs.push(
        queue.consumeTasks(pool, { concurrency: 8 }, async (d) => {
          published.push(d.data as TaskMessage);
          await d.ack();
        }),
      );
    }
    subs.push(queue.subscribeControl((taskId, action) => controls.push({ taskId, action })));
    const analysis = createAnalysisWorker({
      store,
      queue,
      log: silentLogger,
      now,
      skills: () => skills,
      planner: rulesPlanner,
      guardrails: {
        dryRun: false,
        maxPrsPerHour: 1000,
        maxPrsPerDay: 10_000,
        maxFixesPerNamespace: 100,
        autoApproveMaxRisk: "read",
      },
      fixPool: "default",
      onEnqueued: () => relay.kick(),
    });
    deps = {
      config,
      log: silentLogger,
      store,
      queue,
      tasks,
      now,
      skills: () => skills,
      reloadSkills: async () => {
        reloads++;
        return {
          skills,
          problems: [{ file: "skills/broken.yaml", line: 3, message: "risk: invalid option" }],
          published: true,
        };
      },
      analyze: (id) => analysis.analyze(id),
      gitHost,
      kick: () => relay.kick(),
    };
    asAdmin = await connect(admin);
    asWriter = await connect(writer);
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    for (const s of subs) await s.stop();
    await relay.stop();
    await queue.close();
    probeServer.close();
    await store.close();
    await rm(root, { recursive: true, force: true });
  });

  /** A task a runner has started: queued through submit_task, then a real task.started event. */
  async function runningTask(): Promise<string> {
    const { task } = await ok("submit_task", { kind: "noop", steps: 2 });
    await queue.publishTaskEvent({
      type: "task.started",
      id: newId("evt"),
      taskId: task.id,
      runnerId: "runner-a",
      attempt: 1,
      at: clock.now,
    });
    await waitFor(async () => (await getTask(store.db, task.id))?.state === "running");
    return task.id;
  }

  /** An incident opened through create_incident and analysed now. */
  async function analysedIncident(alertname: string): Promise<{ id: string; outcome: string }> {
    const ns = `ns-${uid()}`;
    const { incident } = await ok("create_incident", {
      title: `${alertname} in ${ns}`,
      namespace: ns,
      alertname,
      labels: { deployment: "api" },
    });
    const { outcome } = await ok("analyze_incident", { incident_id: incident.id });
    return { id: incident.id, outcome };
  }

  describe("tasks", () => {
    it("submits a prompt task: stored with the runner's payload shape, relayed to the pool, and idempotent by key", async () => {
      const key = `k-${uid()}`;
      const first = await ok("submit_task", {
        kind: "prompt",
        prompt: "fix the flaky test",
        repo_url: "https://example.com/r.git",
        ref: "main",
        model: "sonnet",
        timeout: "5m",
        idempotency_key: key,
      });
      expect(first.created).toBe(true);
      const row = (await getTask(store.db, first.task.id))!;
      expect(row).toMatchObject({ kind: "prompt", pool: "default", state: "queued", created_by: "mcp:alice" });
      expect(JSON.parse(row.payload)).toEqual({
        prompt: "fix the flaky test",
        repoUrl: "https://example.com/r.git",
        ref: "main",
        agent: "claude-code",
        model: "sonnet",
        timeoutMs: 300_000,
      });
      expect((await wasPublished(row.id)).payload).toMatchObject({
        prompt: "fix the flaky test",
        agent: "claude-code",
      });
      const [created] = await eventsOf({ taskId: row.id });
      expect(created).toMatchObject({ type: "task.created", actor: "mcp:alice", channel: "mcp" });
      expect(first.task.created_at).toBe(new Date(clock.now).toISOString());

      const again = await ok("submit_task", {
        kind: "prompt",
        prompt: "fix the flaky test",
        repo_url: "https://example.com/r.git",
        ref: "main",
        model: "sonnet",
        timeout: "5m",
        idempotency_key: key,
      });
      expect(again).toMatchObject({ created: false, task: { id: row.id } });
      expect(
        await call("submit_task", { kind: "prompt", prompt: "something else", idempotency_key: key }),
      ).toMatchObject({ isError: true, text: expect.stringMatching(/\(task\.idempotency_conflict\)$/) });
      expect(
        (await store.db.selectFrom("tasks").select("id").where("idempotency_key", "=", key).execute()).length,
      ).toBe(1);
    });

    it("refuses a prompt task without a prompt or with an unknown agent", async () => {
      expect(await call("submit_task", { kind: "prompt" })).toMatchObject({
        isError: true,
        text: expect.stringContaining("needs a prompt"),
      });
      expect(await call("submit_task", { kind: "prompt", prompt: "x", agent: "nope" })).toMatchObject({
        isError: true,
        text: expect.stringContaining("not configured"),
      });
    });

    it("gets and lists tasks by state with a cursor", async () => {
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push((await ok("submit_task", { kind: "noop" })).task.id);
      expect((await ok("get_task", { task_id: ids[0] })).task).toMatchObject({
        id: ids[0],
        kind: "noop",
        state: "queued",
      });
      const page1 = await ok("list_tasks", { state: "queued", limit: 2 });
      expect(page1.tasks.map((t: any) => t.id)).toEqual([ids[2], ids[1]]);
      const page2 = await ok("list_tasks", { state: "queued", limit: 2, cursor: page1.next_cursor });
      expect(page2.tasks[0].id).toBe(ids[0]);
      expect(await call("get_task", { task_id: "tsk_missing" })).toMatchObject({
        isError: true,
        text: expect.stringContaining("does not exist"),
      });
    });

    it("cancels a queued task in the database with an event, and tells runners to drop it", async () => {
      const { task } = await ok("submit_task", { kind: "noop" });
      const r = await ok("cancel_task", { task_id: task.id, reason: "not needed" });
      expect(r).toMatchObject({ outcome: "cancelled", task: { state: "cancelled" } });
      expect((await getTask(store.db, task.id))!).toMatchObject({ state: "cancelled", error: "not needed" });
      const cancelled = (await eventsOf({ taskId: task.id })).find((e) => e.type === "task.cancelled");
      expect(cancelled).toMatchObject({ actor: "mcp:alice", channel: "mcp", reason: "not needed" });
      await waitFor(() => controls.some((c) => c.taskId === task.id && c.action === "cancel"));
    });

    it("asks the runner to stop a running task instead of changing its state", async () => {
      const id = await runningTask();
      const r = await ok("cancel_task", { task_id: id });
      expect(r.outcome).toBe("cancel_requested");
      expect(r.task.runner_id).toBe("runner-a");
      await waitFor(() => controls.some((c) => c.taskId === id && c.action === "cancel"));
      expect((await getTask(store.db, id))!.state).toBe("running");
      expect((await eventsOf({ taskId: id })).map((e) => e.type)).toContain("task.cancel_requested");
    });

    it("answers a second cancel of a cancelled task as a success without a second event, and refuses to cancel a finished task", async () => {
      const { task } = await ok("submit_task", { kind: "noop" });
      await ok("cancel_task", { task_id: task.id });
      expect(await call("cancel_task", { task_id: task.id })).toMatchObject({
        isError: false,
        text: expect.stringContaining("already cancelled"),
        data: { outcome: "cancelled", task: { state: "cancelled" } },
      });
      expect((await eventsOf({ taskId: task.id })).filter((e) => e.type === "task.cancelled")).toHaveLength(1);
      const done = await runningTask();
      await queue.publishTaskEvent({
        type: "task.succeeded",
        id: newId("evt"),
        taskId: done,
        runnerId: "runner-a",
        attempt: 1,
        at: clock.now,
        result: { ok: true },
      });
      await waitFor(async () => (await getTask(store.db, done))?.state === "succeeded");
      expect(await call("cancel_task", { task_id: done })).toMatchObject({
        isError: true,
        text: expect.stringMatching(/already succeeded.*\(task\.finished\)$/),
      });
    });

    it("retries a cancelled task as a new task with retry_of, and refuses to retry a queued one", async () => {
      const { task } = await ok("submit_task", { kind: "noop", steps: 3 });
      expect(await call("retry_task", { task_id: task.id })).toMatchObject({
        isError: true,
        text: expect.stringContaining("only failed or cancelled"),
      });
      await ok("cancel_task", { task_id: task.id });
      const r = await ok("retry_task", { task_id: task.id });
      expect(r.task.id).not.toBe(task.id);
      const row = (await getTask(store.db, r.task.id))!;
      expect(row).toMatchObject({ kind: "noop", state: "queued", created_by: "mcp:alice" });
      expect(JSON.parse(row.payload)).toEqual({ steps: 3, retry_of: task.id });
      await wasPublished(row.id);
    });

    it("clears the queue only with confirm: true, cancelling each queued task with an event", async () => {
      expect(await call("clear_queue", { confirm: false })).toMatchObject({
        isError: true,
        text: expect.stringContaining("confirm: true"),
      });
      expect(
        (await store.db.selectFrom("tasks").select("id").where("state", "=", "queued").execute()).length,
      ).toBeGreaterThan(0);
      const running = await runningTask();
      const queued = (await store.db.selectFrom("tasks").select("id").where("state", "=", "queued").execute()).map(
        (t) => t.id,
      );
      const r = await ok("clear_queue", { confirm: true });
      expect(r.cancelled).toBe(queued.length);
      expect(r.task_ids.sort()).toEqual(queued.sort());
      expect((await store.db.selectFrom("tasks").select("id").where("state", "=", "queued").execute()).length).toBe(0);
      expect((await getTask(store.db, running))!.state).toBe("running");
      for (const id of queued)
        expect(
          (await eventsOf({ taskId: id })).filter((e) => e.type === "task.cancelled" && e.actor === "mcp:alice"),
        ).toHaveLength(1);
    });

    it("answers a JSON-RPC error naming the scope when the token lacks it", async () => {
      await expect(call("clear_queue", { confirm: true }, asWriter)).rejects.toMatchObject({
        code: -32602,
        message: expect.stringContaining("'admin' scope"),
        data: { "pitcrew/error": { code: "auth.missing_scope", scope: "admin" } },
      });
    });
  });

  describe("events", () => {
    it("lists a task's events by seq cursor, reports progress, and says when a running task looks stale", async () => {
      const id = await runningTask();
      await queue.publishTaskEvent({
        type: "task.progress",
        id: newId("evt"),
        taskId: id,
        runnerId: "runner-a",
        attempt: 1,
        at: clock.now,
        message: "step 1/2",
        percent: 50,
      });
      await waitFor(async () => (await eventsOf({ taskId: id })).some((e) => e.type === "task.progress"));

      const page1 = await ok("list_events", { task_id: id, limit: 2 });
      expect(page1.events.map((e: any) => e.type)).toEqual(["task.created", "task.started"]);
      const page2 = await ok("list_events", { task_id: id, cursor: page1.next_cursor, limit: 2 });
      expect(page2.events.map((e: any) => e.type)).toEqual(["task.progress"]);
      expect(page2.next_cursor).toBeNull();

      expect(await ok("get_task_progress", { task_id: id })).toMatchObject({
        state: "running",
        percent: 50,
        message: "step 1/2",
        runner_id: "runner-a",
      });

      const fresh = await ok("get_latest_event", { task_id: id });
      expect(fresh).toMatchObject({
        state: "running",
        stale: false,
        stale_after_seconds: 3,
        event: { type: "task.progress" },
      });
      clock.now += 4000;
      const old = await ok("get_latest_event", { task_id: id });
      expect(old.stale).toBe(true);
      expect(old.age_seconds).toBeGreaterThanOrEqual(4);
      expect(await call("list_events", {})).toMatchObject({ isError: true });
    });
  });

  describe("incidents", () => {
    it("creates a manual incident and queues its analysis like the intake", async () => {
      const { incident, analysis_task_id } = await ok("create_incident", {
        title: "checkout is slow",
        namespace: "shop",
        service: "checkout",
        severity: "warning",
        labels: { team: "pay" },
      });
      const row = (await getIncident(store.db, incident.id))!;
      expect(row).toMatchObject({
        source: "mcp",
        state: "detected",
        namespace: "shop",
        service: "checkout",
        severity: "warning",
      });
      expect(JSON.parse(row.labels)).toMatchObject({ team: "pay", namespace: "shop" });
      const task = (await getTask(store.db, analysis_task_id))!;
      expect(task).toMatchObject({
        kind: "incident.analyze",
        pool: "control",
        incident_id: incident.id,
        idempotency_key: `analyze:${incident.id}:0`,
      });
      expect((await wasPublished(analysis_task_id)).payload).toEqual({ incidentId: incident.id });
      expect((await eventsOf({ incidentId: incident.id }))[0]).toMatchObject({
        type: "incident.detected",
        actor: "mcp:alice",
        channel: "mcp",
      });

      const listed = await ok("list_incidents", { namespace: "shop", state: "detected" });
      expect(listed.incidents.map((i: any) => i.id)).toEqual([incident.id]);
    });

    it("analyses, notes, escalates and resolves an incident, each with an event by the caller", async () => {
      const { id, outcome } = await analysedIncident("NothingMatches");
      expect(outcome).toBe("escalated");
      await ok("add_incident_note", { incident_id: id, text: "looked at the dashboards" });
      const note = (await eventsOf({ incidentId: id })).find((e) => e.type === "incident.note")!;
      expect(note).toMatchObject({ actor: "alice", channel: "mcp" });
      expect(JSON.parse(note.data)).toEqual({ text: "looked at the dashboards" });
      const resolved = await ok("resolve_incident", { incident_id: id, reason: "fixed by hand" });
      expect(resolved.incident.state).toBe("resolved");
      expect((await getIncident(store.db, id))!).toMatchObject({ state: "resolved", open_key: null });
      expect((await eventsOf({ incidentId: id })).at(-1)).toMatchObject({
        type: "incident.resolved",
        actor: "mcp:alice",
        reason: "fixed by hand",
      });
      expect(await call("escalate_incident", { incident_id: id, reason: "too late" })).toMatchObject({
        isError: true,
        text: expect.stringContaining("cannot escalate"),
      });

      const other = await ok("create_incident", { title: "other" });
      const esc = await ok("escalate_incident", { incident_id: other.incident.id, reason: "needs a human" });
      expect(esc.incident.state).toBe("escalated");
      expect((await eventsOf({ incidentId: other.incident.id })).at(-1)).toMatchObject({
        type: "incident.escalated",
        actor: "mcp:alice",
        channel: "mcp",
        reason: "needs a human",
      });
    });

    it("returns an incident with its plan, approvals and events", async () => {
      const { id, outcome } = await analysedIncident("AppDown");
      expect(outcome).toBe("awaiting_approval");
      const r = await ok("get_incident", { incident_id: id });
      expect(r.incident).toMatchObject({ state: "proposed", plan: { skill: "restart-app", approval: "before_run" } });
      expect(r.approvals).toHaveLength(1);
      expect(r.approvals[0]).toMatchObject({ state: "pending", kind: "before_run" });
      expect(r.events.map((e: any) => e.type)).toEqual(
        expect.arrayContaining(["incident.detected", "incident.planned", "approval.requested", "incident.proposed"]),
      );
      expect(r.allowed_events).toContain("approval.granted");
    });

    it("resolving a proposed incident cancels its pending approval", async () => {
      const { id } = await analysedIncident("AppDown");
      const r = await ok("resolve_incident", { incident_id: id, reason: "went away" });
      expect(r.cancelled_approvals).toBe(1);
      const a = await store.db
        .selectFrom("approvals")
        .selectAll()
        .where("incident_id", "=", id)
        .executeTakeFirstOrThrow();
      expect(a).toMatchObject({ state: "cancelled", decided_by: "mcp:alice", channel: "mcp" });
    });
  });

  describe("approvals", () => {
    it("approving a before_run plan queues the fix and moves the incident approved → fixing", async () => {
      const { id } = await analysedIncident("AppDown");
      const r = await ok("approve_action", { incident_id: id, reason: "go" });
      expect(r.incident.state).toBe("fixing");
      expect(r.task_id).toMatch(/^tsk_/);
      const a = await store.db
        .selectFrom("approvals")
        .selectAll()
        .where("incident_id", "=", id)
        .executeTakeFirstOrThrow();
      expect(a).toMatchObject({ state: "approved", decided_by: "alice", channel: "mcp", reason: "go" });
      const task = (await getTask(store.db, r.task_id))!;
      expect(task).toMatchObject({ kind: "skill", pool: "default", incident_id: id, created_by: "mcp:alice" });
      expect(JSON.parse(task.payload)).toMatchObject({
        skill: "restart-app",
        approval: "before_run",
        params: { deployment: "api" },
        action: { builtin: "restart" },
      });
      await wasPublished(task.id);
      const types = (await eventsOf({ incidentId: id })).filter((e) => e.actor === "mcp:alice").map((e) => e.type);
      expect(types).toEqual(expect.arrayContaining(["approval.approved", "incident.approved", "incident.fixing"]));
    });

    it("approving an inline skill runs it at once and records its result", async () => {
      const { id, outcome } = await analysedIncident("AppGated");
      expect(outcome).toBe("awaiting_approval");
      const r = await ok("approve_action", { incident_id: id });
      expect(r).toMatchObject({ task_id: null, inline_result: expect.any(String), incident: { state: "verifying" } });
      const result = (await eventsOf({ incidentId: id })).find((e) => e.type === "skill.result")!;
      expect(result).toMatchObject({ actor: "mcp:alice", channel: "mcp" });
      expect(JSON.parse(result.data)).toMatchObject({ skill: "probe-gated", kind: "applied" });
    });

    it("cancelling the queued fix of an approved incident escalates the incident", async () => {
      const { id } = await analysedIncident("AppDown");
      const { task_id } = await ok("approve_action", { incident_id: id });
      await ok("cancel_task", { task_id, reason: "wrong window" });
      expect((await getIncident(store.db, id))!.state).toBe("escalated");
      expect((await eventsOf({ incidentId: id })).at(-1)).toMatchObject({
        type: "incident.escalated",
        reason: "fix cancelled: wrong window",
      });
    });

    it("a second decision answers who decided first", async () => {
      const { id } = await analysedIncident("AppDown");
      const a = await store.db
        .selectFrom("approvals")
        .select("id")
        .where("incident_id", "=", id)
        .executeTakeFirstOrThrow();
      await ok("approve_action", { approval_id: a.id });
      const again = await call("reject_action", { approval_id: a.id }, await connect(principal("carol", ["approve"])));
      expect(again).toMatchObject({ isError: true, text: expect.stringContaining("already decided by alice") });
      const twice = await call("approve_action", { incident_id: id });
      expect(twice).toMatchObject({ isError: true, text: expect.stringContaining("already decided by alice") });
      expect((await getIncident(store.db, id))!.state).toBe("fixing");
    });

    it("rejecting moves the incident to rejected and records the decider", async () => {
      const { id } = await analysedIncident("AppDown");
      const r = await ok("reject_action", { incident_id: id, reason: "not during the sale" });
      expect(r).toMatchObject({
        approval: { state: "rejected", decided_by: "alice", channel: "mcp" },
        incident: { state: "rejected" },
      });
      expect((await getIncident(store.db, id))!.state).toBe("rejected");
      expect(
        await store.db
          .selectFrom("tasks")
          .select("id")
          .where("incident_id", "=", id)
          .where("kind", "=", "skill")
          .execute(),
      ).toHaveLength(0);
      expect((await eventsOf({ incidentId: id })).find((e) => e.type === "approval.rejected")).toMatchObject({
        actor: "mcp:alice",
        reason: "not during the sale",
      });
    });

    it("refuses an expired approval and leaves it pending", async () => {
      const { id } = await analysedIncident("AppDown");
      const saved = clock.now;
      clock.now += 2 * 3_600_000;
      try {
        expect(await call("approve_action", { incident_id: id })).toMatchObject({
          isError: true,
          text: expect.stringContaining("expired"),
        });
        expect(await call("reject_action", { incident_id: id })).toMatchObject({
          isError: true,
          text: expect.stringContaining("expired"),
        });
      } finally {
        clock.now = saved;
      }
      expect(
        (await store.db.selectFrom("approvals").select("state").where("incident_id", "=", id).executeTakeFirstOrThrow())
          .state,
      ).toBe("pending");
      expect((await getIncident(store.db, id))!.state).toBe("proposed");
    });

    it("needs the approve scope", async () => {
      const { id } = await analysedIncident("AppDown");
      await expect(call("approve_action", { incident_id: id }, asWriter)).rejects.toMatchObject({
        code: -32602,
        data: { "pitcrew/error": { code: "auth.missing_scope", scope: "approve" } },
      });
    });

    /** An incident whose fix opened a real pull request on the bare repository and awaits its merge. */
    async function proposedPullRequest(): Promise<{ id: string; number: number; branch: string }> {
      const { id, outcome } = await analysedIncident("AppSlow");
      expect(outcome).toBe("fixing");
      const task = await store.db
        .selectFrom("tasks")
        .selectAll()
        .where("incident_id", "=", id)
        .where("kind", "=", "skill")
        .executeTakeFirstOrThrow();
      const branch = `pitcrew/${id}`;
      await git(work, ["checkout", "--quiet", "-B", branch, "origin/main"], isolated);
      await writeFile(join(work, "deploy.yaml"), `replicas: 4\n# ${id}\n`);
      await git(work, ["commit", "--quiet", "-am", `scale for ${id}`], isolated);
      await git(work, ["push", "--quiet", "origin", `HEAD:refs/heads/${branch}`], isolated);
      const pr = await gitHost.createPullRequest({ branch, base: "main", title: `Scale api (${id})`, body: "" });
      // The runner reports success with the PR: the fix hook asks for a merge approval.
      await queue.publishTaskEvent({
        type: "task.succeeded",
        id: newId("evt"),
        taskId: task.id,
        runnerId: "runner-a",
        attempt: 1,
        at: clock.now,
        result: { changed: true, pr: { number: pr.number, url: pr.url, branch } },
      });
      await waitFor(async () => (await getIncident(store.db, id))!.state === "proposed");
      return { id, number: pr.number, branch };
    }

    it("approving a before_merge approval merges the pull request into the base branch and starts verifying", async () => {
      const { id, number, branch } = await proposedPullRequest();
      const head = (await git(bare, ["rev-parse", branch], isolated)).trim();
      const r = await ok("approve_action", { incident_id: id });
      expect(r.merged.number).toBe(number);
      expect(r.incident.state).toBe("verifying");
      const mainHead = (await git(bare, ["rev-parse", "main"], isolated)).trim();
      expect(mainHead).toBe(r.merged.sha);
      // The PR's commit is now in main's history.
      await git(bare, ["merge-base", "--is-ancestor", head, "main"], isolated);
      expect(await git(bare, ["show", "main:deploy.yaml"], isolated)).toContain("replicas: 4");
      expect((await gitHost.getPullRequest(number)).state).toBe("merged");
      const a = await store.db
        .selectFrom("approvals")
        .selectAll()
        .where("incident_id", "=", id)
        .executeTakeFirstOrThrow();
      expect(a).toMatchObject({ state: "approved", decided_by: "alice", channel: "mcp" });
      const types = (await eventsOf({ incidentId: id })).filter((e) => e.actor === "mcp:alice").map((e) => e.type);
      expect(types).toEqual(
        expect.arrayContaining(["approval.approved", "pr.merged", "incident.approved", "incident.verifying"]),
      );
      expect(await call("approve_action", { incident_id: id })).toMatchObject({
        isError: true,
        text: expect.stringContaining("already decided by alice"),
      });
    });

    it("rejecting a before_merge approval closes the pull request and leaves the base branch alone", async () => {
      const { id, number } = await proposedPullRequest();
      const before = (await git(bare, ["rev-parse", "main"], isolated)).trim();
      const r = await ok("reject_action", { incident_id: id, reason: "wrong fix" });
      expect(r.incident.state).toBe("rejected");
      expect((await gitHost.getPullRequest(number)).state).toBe("closed");
      expect((await git(bare, ["rev-parse", "main"], isolated)).trim()).toBe(before);
    });
  });

  describe("skills", () => {
    it("lists, gets and reloads skills", async () => {
      const list = await ok("list_skills");
      expect(list.skills.map((s: any) => s.name)).toEqual([
        "probe-app",
        "probe-gated",
        "restart-app",
        "rollback-app",
        "scale-app",
      ]);
      expect(list.skills.find((s: any) => s.name === "restart-app")).toMatchObject({
        approval_required: true,
        inline: false,
        action: "builtin",
      });
      const one = await ok("get_skill", { name: "scale-app" });
      expect(one.skill).toMatchObject({
        name: "scale-app",
        risk: "low",
        approval: "before_merge",
        action: { builtin: "scale" },
      });
      expect(await call("get_skill", { name: "nope" })).toMatchObject({ isError: true });
      const before = reloads;
      const r = await ok("reload_skills");
      expect(reloads).toBe(before + 1);
      expect(r).toMatchObject({
        loaded: expect.arrayContaining(["scale-app"]),
        problems: ["skills/broken.yaml:3: risk: invalid option"],
      });
    });

    it("a dry run renders the params and the approval needed without changing anything", async () => {
      const { incident } = await ok("create_incident", {
        title: "down",
        namespace: "web",
        labels: { deployment: "front" },
      });
      const before = (await eventsOf({ incidentId: incident.id })).length;
      const tasksBefore = (await store.db.selectFrom("tasks").select("id").execute()).length;
      const r = await ok("run_skill", { skill: "restart-app", incident_id: incident.id });
      expect(r).toMatchObject({
        dry_run: true,
        params: { namespace: "web", deployment: "front" },
        approval_required: true,
        approval_when: "before_run",
        task_id: null,
      });
      expect((await eventsOf({ incidentId: incident.id })).length).toBe(before);
      expect((await store.db.selectFrom("tasks").select("id").execute()).length).toBe(tasksBefore);
      expect(await call("run_skill", { skill: "restart-app", incident_id: incident.id, dry_run: false })).toMatchObject(
        { isError: true, text: expect.stringContaining("use the incident flow") },
      );
    });

    it("runs an inline skill and records skill.result; queues a repository skill as a fix task", async () => {
      const { incident } = await ok("create_incident", { title: "probe me", labels: { deployment: "api" } });
      const inline = await ok("run_skill", { skill: "probe-app", incident_id: incident.id, dry_run: false });
      expect(inline.result.kind).toBe("applied");
      const result = (await eventsOf({ incidentId: incident.id })).find((e) => e.type === "skill.result")!;
      expect(result).toMatchObject({ actor: "mcp:alice", channel: "mcp" });
      expect(JSON.parse(result.data)).toMatchObject({ skill: "probe-app", kind: "applied" });

      const queued = await ok("run_skill", { skill: "rollback-app", incident_id: incident.id, dry_run: false });
      const task = (await getTask(store.db, queued.task_id))!;
      expect(task).toMatchObject({ kind: "skill", incident_id: incident.id, created_by: "mcp:alice" });
      expect(JSON.parse(task.payload)).toMatchObject({
        skill: "rollback-app",
        params: { deployment: "api" },
        approval: "none",
      });
      await wasPublished(task.id);
    });
  });

  describe("fleet and system", () => {
    it("shows live and stale runners and the running tasks with their last progress", async () => {
      const id = await runningTask();
      await queue.publishTaskEvent({
        type: "task.progress",
        id: newId("evt"),
        taskId: id,
        runnerId: "runner-a",
        attempt: 1,
        at: clock.now,
        message: "halfway",
        percent: 50,
      });
      const beat = (runnerId: string, at: number) =>
        queue.publishHeartbeat({
          type: "runner.heartbeat",
          id: newId("evt"),
          runnerId,
          host: "h",
          version: "t",
          pool: "default",
          concurrency: 2,
          running: runnerId === "runner-a" ? [id] : [],
          totals: { succeeded: 0, failed: 0, cancelled: 0 },
          startedAt: at - 1000,
          at,
        });
      await beat("runner-a", clock.now);
      await beat("runner-old", clock.now - 60_000);
      await waitFor(async () => (await store.db.selectFrom("runners").select("id").execute()).length >= 2);
      await waitFor(async () => (await eventsOf({ taskId: id })).some((e) => e.type === "task.progress"));

      const s = await ok("fleet_status");
      expect(s.live_runners.map((r: any) => r.id)).toContain("runner-a");
      expect(s.stale_runners.map((r: any) => r.id)).toContain("runner-old");
      expect(s.tasks_by_state.running).toBeGreaterThanOrEqual(1);
      expect(s.running.find((t: any) => t.task_id === id)).toMatchObject({
        runner_id: "runner-a",
        runner_stale: false,
        percent: 50,
        message: "halfway",
      });
      const runners = await ok("list_runners", { include_stale: false });
      expect(runners.runners.map((r: any) => r.id)).not.toContain("runner-old");
    });

    it("pauses automation (analysis defers) and resumes it, re-queuing detected incidents", async () => {
      await ok("pause_automation", { reason: "maintenance" });
      expect(await getPause(store.db)).toMatchObject({ paused: true, by: "mcp:alice", reason: "maintenance" });
      const { id, outcome } = await analysedIncident("AppDown");
      expect(outcome).toBe("deferred");
      const r = await ok("resume_automation");
      expect(r.requeued).toBeGreaterThanOrEqual(1);
      expect((await getPause(store.db)).paused).toBe(false);
      const analyses = await store.db
        .selectFrom("tasks")
        .selectAll()
        .where("incident_id", "=", id)
        .where("kind", "=", "incident.analyze")
        .execute();
      expect(analyses).toHaveLength(2);
      const requeued = analyses.find((t) => t.created_by === "mcp:alice" && t.idempotency_key !== `analyze:${id}:0`)!;
      await wasPublished(requeued.id);
      const system = await store.db
        .selectFrom("events")
        .select(["type", "actor", "channel"])
        .where("type", "in", ["system.paused", "system.resumed"])
        .execute();
      expect(system).toEqual(
        expect.arrayContaining([
          { type: "system.paused", actor: "mcp:alice", channel: "mcp" },
          { type: "system.resumed", actor: "mcp:alice", channel: "mcp" },
        ]),
      );
    });

    it("lists every tool with input and output schemas", async () => {
      const { tools } = await asAdmin.listTools();
      const names = tools.map((t) => t.name);
      for (const n of [
        "submit_task",
        "cancel_task",
        "clear_queue",
        "get_latest_event",
        "approve_action",
        "run_skill",
        "fleet_status",
        "resume_automation",
      ])
        expect(names).toContain(n);
      for (const t of tools) {
        expect(t.outputSchema, t.name).toBeDefined();
        for (const [field, schema] of Object.entries(
          (t.inputSchema.properties ?? {}) as Record<string, { description?: string }>,
        ))
          expect(schema.description, `${t.name}.${field}`).toBeTruthy();
      }
    });
  });
});
