import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { randomBytes } from "node:crypto";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { createMemoryQueue } from "../../src/bus/memory.ts";
import type { TaskMessage } from "../../src/bus/jobs.ts";
import { loadConfig } from "../../src/config/load.ts";
import { createEventIngester } from "../../src/events/ingester.ts";
import { appendEvent, listEvents } from "../../src/events/repo.ts";
import { createLocalGitHost } from "../../src/gitops/local.ts";
import type { GitHost } from "../../src/gitops/port.ts";
import { incidentFixHook } from "../../src/incidents/fix-outcome.ts";
import { getIncident, newIncidentRow } from "../../src/incidents/repo.ts";
import { applyTransition } from "../../src/incidents/service.ts";
import { INCIDENT_STATES } from "../../src/incidents/lifecycle.ts";
import { queueFixTask } from "../../src/incidents/queueing.ts";
import { createApprovalService } from "../../src/approvals/service.ts";
import { createMcpServer } from "../../src/mcp/server.ts";
import type { McpDeps, Principal, Scope } from "../../src/mcp/tool.ts";
import { isAppError, errorMessage } from "../../src/shared/errors.ts";
import { newId } from "../../src/shared/ids.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { Skill } from "../../src/skills/schema.ts";
import { createTaskService } from "../../src/tasks/service.ts";
import { getTask } from "../../src/tasks/repo.ts";
import { createSkillExecutor } from "../../runner/executors/skill.ts";
import type { Executor } from "../../runner/executors/types.ts";
import { gitSync, makeBareRepo } from "./git.ts";
import type { TestStore } from "./store.ts";

// A fix's whole path without a queue in between, for the approvals tests: an incident whose fix
// task is queued exactly as analysis queues it, the real skill executor (clone, change, push, pull
// request) run on a real bare repository, its events applied by the real ingester and terminal
// hook, the approvals service and its control jobs run as the control-pool consumer runs them,
// and MCP tools through a real client.

export const uid = () => randomBytes(4).toString("hex");

/** A patch skill that sets the replicas of `apps/<app label>.yaml`, a pull request to be approved before merging. */
export function scaleSkill(over: Partial<Record<string, unknown>> = {}): Skill {
  return Skill.parse({
    name: "scale-app",
    description: "Scale the app to 3 replicas",
    match: { alertname: ["AppSlow"] },
    risk: "medium",
    approval: "before_merge",
    action: { patch: [{ file: "apps/{{labels.app}}.yaml", path: "spec.replicas", set: 3 }] },
    ...over,
  });
}

export type FixHarness = Awaited<ReturnType<typeof fixHarness>>;

export async function fixHarness(store: TestStore, skills: Skill[]) {
  const dir = mkdtempSync(join(tmpdir(), "pitcrew-fixes-"));
  const bare = makeBareRepo(dir, [{ message: "initial", files: { "README.md": "gitops\n" } }]);
  const host: GitHost = createLocalGitHost({
    repoPath: bare,
    committer: { name: "Pitcrew", email: "pitcrew@example.com" },
  });
  const clock = { now: Date.parse("2026-11-20T09:00:00Z") };
  const now = () => clock.now;
  const queue = createMemoryQueue({ log: silentLogger });
  const onTerminal = incidentFixHook(store.dialect);
  const ingester = createEventIngester({ store, queue, log: silentLogger, now, onTerminal });
  const approvals = createApprovalService({
    store,
    log: silentLogger,
    now,
    skills: () => skills,
    gitHost: host,
    fixPool: "default",
    deleteMergedBranches: true,
    sweep: { stuckAfterMs: 600_000, maxRetries: 2 },
  });
  const executor: Executor = createSkillExecutor({
    host,
    baseBranch: "main",
    author: { name: "Pitcrew", email: "pitcrew@example.com" },
    workspaceBase: dir,
  });
  const config = loadConfig({ DATA_DIR: dir, RUNNER_POOL: "default" });
  const mcpDeps: McpDeps = {
    config,
    log: silentLogger,
    store,
    queue,
    tasks: createTaskService({ store, log: silentLogger, now, onTerminal }),
    now,
    skills: () => skills,
    reloadSkills: async () => ({ skills, problems: [], published: true }),
    analyze: async () => {
      throw new Error("no analysis in these tests");
    },
    gitHost: host,
    approvals,
    kick: () => {},
  };
  const clients: Client[] = [];
  let work = 0;

  const git = (...args: string[]) => gitSync(dir, "--git-dir", bare, ...args);
  const events = (id: string) => listEvents(store.db, { incidentId: id, limit: 1000 });

  const h = {
    dir,
    bare,
    host,
    clock,
    store,
    approvals,
    git,
    /** A file on a branch of the bare repository, or undefined when it is not there. */
    show: (ref: string, path: string): string | undefined => {
      try {
        return git("show", `${ref}:${path}`);
      } catch {
        return undefined;
      }
    },
    branchExists: (branch: string) => git("for-each-ref", `refs/heads/${branch}`).trim() !== "",
    pullRecord: (n: number) =>
      JSON.parse(git("cat-file", "blob", `refs/pitcrew/pulls/${n}`)) as {
        state: string;
        branch: string;
        comments: Array<{ body: string }>;
      },
    events,
    eventsOf: async (id: string, type: string) => (await events(id)).filter((e) => e.type === type),
    states: async (id: string) =>
      (await events(id))
        .map((e) => e.type.replace(/^incident\./, ""))
        .filter((t) => (INCIDENT_STATES as readonly string[]).includes(t)),
    incident: async (id: string) => (await getIncident(store.db, id))!,
    approvalsOf: (id: string) =>
      store.db
        .selectFrom("approvals")
        .selectAll()
        .where("incident_id", "=", id)
        .orderBy("requested_at")
        .orderBy("id")
        .execute(),
    pending: (id: string) =>
      store.db
        .selectFrom("approvals")
        .selectAll()
        .where("incident_id", "=", id)
        .where("state", "=", "pending")
        .executeTakeFirstOrThrow(),
    tasksOf: (id: string, kind: string) =>
      store.db
        .selectFrom("tasks")
        .selectAll()
        .where("incident_id", "=", id)
        .where("kind", "=", kind)
        .orderBy("created_at")
        .orderBy("id")
        .execute(),

    /** A person's commit: writes `files` on `branch` (from `from` when new) and pushes it; returns the new head. */
    push(branch: string, files: Record<string, string>, from = "main"): string {
      const w = join(dir, `work-${++work}`);
      gitSync(dir, "clone", "--quiet", bare, w);
      const exists = gitSync(w, "ls-remote", "origin", `refs/heads/${branch}`).trim() !== "";
      gitSync(w, "checkout", "--quiet", "-B", branch, exists ? `origin/${branch}` : `origin/${from}`);
      for (const [path, content] of Object.entries(files)) {
        mkdirSync(dirname(join(w, path)), { recursive: true });
        writeFileSync(join(w, path), content);
      }
      gitSync(w, "add", ".");
      gitSync(w, "commit", "--quiet", "-m", `change on ${branch}`);
      gitSync(w, "push", "--quiet", "origin", `HEAD:refs/heads/${branch}`);
      return gitSync(w, "rev-parse", "HEAD").trim();
    },

    /**
     * An incident for app `app` (its manifest pushed to main) whose fix task is queued as analysis
     * queues it: the plan recorded, the incident `fixing`.
     */
    async fixing(skill: Skill, app = uid()): Promise<{ id: string; taskId: string; app: string; file: string }> {
      const file = `apps/${app}.yaml`;
      h.push("main", { [file]: `kind: Deployment\nmetadata:\n  name: ${app}\nspec:\n  replicas: 2\n` });
      const t = clock.now;
      const row = newIncidentRow(
        {
          id: newId("inc", t),
          fingerprint: app,
          dedupe_key: null,
          open_key: app,
          title: `${app} is slow`,
          source: "test",
          severity: "warning",
          namespace: "shop",
          service: app,
          alertname: "AppSlow",
          labels: { app },
          annotations: {},
        },
        t,
      );
      const plan = JSON.stringify({
        skill: skill.name,
        params: {},
        risk: skill.risk,
        approval: skill.approval,
        rationale: "test",
      });
      return store.db.transaction().execute(async (trx) => {
        await trx
          .insertInto("incidents")
          .values({ ...row, plan })
          .execute();
        await appendEvent(
          trx,
          store.dialect,
          {
            type: "incident.detected",
            incidentId: row.id,
            actor: "alertmanager",
            channel: "alertmanager",
            reason: "AppSlow fired",
            data: {},
            occurredAt: t,
          },
          t,
        );
        const by = { actor: "pitcrew:analysis", channel: "engine" };
        let inc = await applyTransition(trx, store.dialect, { ...row, plan }, "analysis.started", by, t);
        const taskId = await queueFixTask(trx, store.dialect, inc, skill, {}, skill.approval, t, {
          pool: "default",
          ...by,
        });
        inc = await applyTransition(trx, store.dialect, inc, "fix.started", { ...by, data: { taskId } }, t);
        return { id: row.id, taskId, app, file };
      });
    },

    /** Runs a queued runner task with the real executor and reports its outcome through the ingester. */
    async runTask(
      taskId: string,
    ): Promise<{ ok: true; result: any } | { ok: false; code: string | undefined; message: string }> {
      const t = (await getTask(store.db, taskId))!;
      const msg: TaskMessage = {
        v: 1,
        taskId: t.id,
        kind: t.kind,
        pool: t.pool,
        incidentId: t.incident_id,
        payload: JSON.parse(t.payload),
        createdAt: Number(t.created_at),
      };
      const base = { taskId, runnerId: "runner-1", attempt: 1 };
      const ctx = {
        signal: new AbortController().signal,
        attempt: 1,
        progress: async () => {},
        log: async () => {},
        prOpened: async (pr: { url: string; branch: string; number: number }) => {
          await ingester.applyTaskEvent({ type: "task.pr_opened", id: newId("evt"), ...base, at: clock.now, ...pr });
        },
        assertNotCancelled: async () => {},
      };
      await ingester.applyTaskEvent({ type: "task.started", id: newId("evt"), ...base, at: clock.now });
      try {
        const result = await executor(msg, ctx);
        await ingester.applyTaskEvent({ type: "task.succeeded", id: newId("evt"), ...base, at: clock.now, result });
        return { ok: true, result };
      } catch (err) {
        const code = isAppError(err) ? err.code : undefined;
        await ingester.applyTaskEvent({
          type: "task.failed",
          id: newId("evt"),
          ...base,
          at: clock.now,
          error: errorMessage(err),
          ...(code ? { code } : {}),
        });
        return { ok: false, code, message: errorMessage(err) };
      }
    },

    /** Runs the incident's queued control jobs of a kind, as the control-pool consumer would. */
    async runJobs(id: string, kind: string): Promise<unknown[]> {
      const out: unknown[] = [];
      for (const t of await h.tasksOf(id, kind)) {
        if (t.state !== "queued") continue;
        out.push(await approvals.jobs[kind]!.run(JSON.parse(t.payload), { taskId: t.id, incidentId: id, attempt: 1 }));
        await store.db.updateTable("tasks").set({ state: "succeeded" }).where("id", "=", t.id).execute();
      }
      return out;
    },

    /** An MCP client for `principal`, over the in-memory transport. */
    async mcp(subject: string, scopes: Scope[], via: Principal["via"] = "token") {
      const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
      await createMcpServer(mcpDeps, { subject, scopes: new Set(scopes), via }).connect(serverSide);
      const client = new Client({ name: "fixes-test", version: "1.0.0" });
      await client.connect(clientSide);
      clients.push(client);
      return async (
        name: string,
        args: Record<string, unknown> = {},
      ): Promise<{ isError: boolean; text: string; data: any }> => {
        const r = (await client.callTool({ name, arguments: args })) as CallToolResult;
        return {
          isError: !!r.isError,
          text: r.content.map((c) => (c.type === "text" ? c.text : "")).join("\n"),
          data: r.structuredContent,
        };
      };
    },

    async close() {
      await Promise.all(clients.map((c) => c.close()));
      await queue.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return h;
}
