import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAlertIntake } from "../../src/alerts/intake.ts";
import { createMemoryQueue } from "../../src/bus/memory.ts";
import { createMetrics } from "../../src/shared/metrics.ts";
import { createApprovalService } from "../../src/approvals/service.ts";
import { loadConfig } from "../../src/config/load.ts";
import { createEventIngester } from "../../src/events/ingester.ts";
import { buildHttpApp } from "../../src/http/app.ts";
import { createAnalysisWorker } from "../../src/incidents/analysis.ts";
import { getIncident } from "../../src/incidents/repo.ts";
import { createDeps } from "../../src/main/deps.ts";
import { createGitHost } from "../../src/main/gitops.ts";
import { createLogger } from "../../src/shared/logger.ts";
import { loadSkills } from "../../src/skills/load.ts";
import { rulesPlanner } from "../../src/skills/planner.ts";
import { migrateToLatest } from "../../src/store/db.ts";
import { createControlJobs } from "../../src/tasks/control-jobs.ts";
import { buildExecutors } from "../../runner/executors/index.ts";
import { createRunner } from "../../runner/worker.ts";
import { fixture, newTag, postAlerts } from "../helpers/alerts.ts";
import { checkoutDeployment, makeBareRepo } from "../helpers/git.ts";
import { storeFactories } from "../helpers/store.ts";
import { waitFor } from "../helpers/wait.ts";
import { appendEvent } from "../../src/events/repo.ts";
import type { CommittedEvent } from "../../src/store/commit-hooks.ts";

// The README's flow — an AlertManager alert, the plan, the fix's pull request, a person's
// approval, the merge, AlertManager's resolve — on the control plane's own wiring (createDeps
// subscribes the lifecycle log), with every log line captured: each step writes one info line
// with its ids, in the order the steps happened.

type Line = Record<string, any> & { msg: string; level: number };

const TOKEN = "lifecycle-token-0123456789abcdef";
const INFO = 30;

describe("lifecycle log lines", () => {
  const tag = newTag();
  const lines: Line[] = [];
  const stops: Array<() => Promise<void> | void> = [];
  let dir: string;
  let app: Awaited<ReturnType<typeof buildHttpApp>>;
  let approvals: ReturnType<typeof createApprovalService>;
  let store: Awaited<ReturnType<typeof createDeps>>["deps"]["store"];
  // AlertManager's clock for the intake: the resolve comes 55 minutes after the alert.
  let clock = Date.parse("2026-11-20T09:45:00Z");

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "pitcrew-lifecycle-"));
    const bare = makeBareRepo(
      dir,
      ["v1.4.0", "v1.5.0"].map((v) => ({
        message: `checkout ${v}`,
        files: { [`apps/payments-${tag}/deployment.yaml`]: checkoutDeployment(`payments-${tag}`, v) },
      })),
    );
    const config = loadConfig({
      DATA_DIR: join(dir, "data"),
      GITOPS_REPO: bare,
      ALERTMANAGER_TOKEN: TOKEN,
      AUTO_APPROVE_MAX_RISK: "low",
    });
    const capture = new Writable({
      write(chunk, _enc, cb) {
        for (const l of String(chunk).split("\n").filter(Boolean)) lines.push(JSON.parse(l) as Line);
        cb();
      },
    });
    const log = createLogger({ level: "info", destination: capture });
    const { deps, relay, onTerminal } = await createDeps(config, log);
    store = deps.store;
    await migrateToLatest(store);
    const skills = loadSkills("skills").skills;
    const host = await createGitHost(config, log);
    const ingester = createEventIngester({ store, queue: deps.queue, log, now: Date.now, onTerminal }).start(2);
    const analysis = createAnalysisWorker({
      store,
      queue: deps.queue,
      log,
      now: Date.now,
      skills: () => skills,
      planner: rulesPlanner,
      guardrails: { ...config.guardrails, stuckAfterMs: config.sweep.stuckAfterMs },
      fixPool: config.runner.pool,
      onEnqueued: () => relay.kick(),
    });
    approvals = createApprovalService({
      store,
      log,
      now: Date.now,
      skills: () => skills,
      gitHost: host,
      fixPool: config.runner.pool,
      deleteMergedBranches: true,
      sweep: config.sweep,
      onEnqueued: () => relay.kick(),
    });
    const control = createControlJobs(
      { store, queue: deps.queue, log, now: Date.now, onDone: () => relay.kick() },
      { "incident.analyze": analysis.job, ...approvals.jobs },
    ).start(2);
    const runner = createRunner(
      { queue: deps.queue, log, executors: await buildExecutors(config, { host, env: process.env }) },
      {
        id: "lifecycle-runner",
        pool: config.runner.pool,
        concurrency: 1,
        heartbeatMs: 60_000,
        ackWaitMs: 30_000,
        version: "test",
        drainTimeoutMs: 1000,
      },
    );
    runner.start();
    relay.start();
    const intake = createAlertIntake({
      store,
      log,
      now: () => clock,
      skills: () => skills,
      settings: {
        flapWindowMs: config.guardrails.flapWindowMs,
        flapLimit: config.guardrails.flapLimit,
        maxFailedFixes: config.guardrails.maxFailedFixes,
        labels: config.labels,
      },
      onCommitted: () => relay.kick(),
    });
    app = await buildHttpApp({
      log,
      store,
      queue: deps.queue,
      metrics: deps.metrics,
      bodyLimit: config.bodyLimit,
      alertmanager: {
        intake,
        auth: { mode: "token", token: TOKEN, user: "alertmanager" },
        bodyLimit: config.alertmanager.bodyLimit,
      },
    });
    await app.ready();
    stops.push(
      () => app.close(),
      () => runner.stop(),
      () => control.stop(),
      () => relay.stop(),
      () => ingester.stop(),
      () => deps.queue.close(),
      () => store.close(),
    );
  });

  afterAll(async () => {
    for (const s of stops) await s();
    rmSync(dir, { recursive: true, force: true });
  });

  it("writes one info line per step, with its ids, from the alert to the resolve", async () => {
    const res = await postAlerts(app, fixture("crashloop-firing.json", tag), TOKEN);
    expect(res.statusCode, res.body).toBe(200);
    const id = res.json().incidents[0] as string;

    await waitFor(async () => (await getIncident(store.db, id))?.state === "proposed", 30_000);
    const pending = await store.db
      .selectFrom("approvals")
      .selectAll()
      .where("incident_id", "=", id)
      .executeTakeFirstOrThrow();
    const decided = await approvals.approve(
      { incidentId: id },
      { subject: "alice", actor: "mcp:alice", channel: "mcp" },
      "looks right",
    );
    expect(decided.incident.state).toBe("verifying");

    clock = Date.parse("2026-11-20T10:40:00Z");
    const resolved = await postAlerts(app, fixture("crashloop-resolved.json", tag), TOKEN);
    expect(resolved.statusCode, resolved.body).toBe(200);
    expect((await getIncident(store.db, id))!.state).toBe("resolved");

    const task = await store.db
      .selectFrom("tasks")
      .selectAll()
      .where("incident_id", "=", id)
      .where("kind", "=", "skill")
      .executeTakeFirstOrThrow();
    const ofIncident = lines.filter((l) => l.incidentId === id || l.incidentIds?.includes(id));
    const steps = ofIncident.filter((l) => l.component === "lifecycle" || l.msg === "alerts received");
    for (const l of steps) expect(l.level, l.msg).toBe(INFO);
    expect(steps.map((l) => l.msg)).toEqual([
      "incident opened",
      "alerts received",
      "plan chosen",
      "fix queued",
      "pull request opened",
      "approval requested",
      "approval decided",
      "pull request merged",
      "verifying fix",
      "incident resolved",
      "alerts received",
    ]);
    const [opened, received, plan, queued, pr, requested, decision, merged, verifying, done, resolve] = steps;
    expect(opened).toMatchObject({ incidentId: id, alertname: "KubePodCrashLooping", by: "alertmanager" });
    expect(received).toMatchObject({ status: "firing", alerts: 1, outcomes: { opened: 1 }, incidentIds: [id] });
    expect(plan).toMatchObject({
      incidentId: id,
      skill: "crashloop-after-deploy",
      planner: "rules",
      confidence: 1,
      risk: "medium",
    });
    expect(queued).toMatchObject({ incidentId: id, taskId: task.id, kind: "skill", skill: "crashloop-after-deploy" });
    expect(pr).toMatchObject({
      incidentId: id,
      taskId: task.id,
      number: pending.pr_number,
      branch: pending.pr_branch,
      url: expect.any(String),
    });
    expect(requested).toMatchObject({
      incidentId: id,
      approvalId: pending.id,
      taskId: task.id,
      risk: "medium",
      number: pending.pr_number,
    });
    expect(decision).toMatchObject({
      incidentId: id,
      approvalId: pending.id,
      decision: "approved",
      by: "mcp:alice",
      channel: "mcp",
    });
    expect(merged).toMatchObject({
      incidentId: id,
      approvalId: pending.id,
      number: pending.pr_number,
      sha: decided.merged!.sha,
    });
    expect(verifying).toMatchObject({ incidentId: id, from: "approved" });
    expect(done).toMatchObject({ incidentId: id, timeToResolveMs: 55 * 60_000, by: "alertmanager" });
    expect(resolve).toMatchObject({ status: "resolved", alerts: 1, outcomes: { resolved: 1 }, incidentIds: [id] });
    // The runner's own line stays (it is the runner's view, not a lifecycle step).
    expect(lines.some((l) => l.msg === "task succeeded" && l.taskId === task.id)).toBe(true);
  });
});

describe("refused AlertManager requests", () => {
  it("logs a 401 at warn once a minute at most, with the caller and the scheme, never the credentials", async () => {
    const store = await (await storeFactories())[0]!.make();
    const lines: Line[] = [];
    const capture = new Writable({
      write(chunk, _enc, cb) {
        for (const l of String(chunk).split("\n").filter(Boolean)) lines.push(JSON.parse(l) as Line);
        cb();
      },
    });
    const log = createLogger({ level: "debug", destination: capture });
    const intake = createAlertIntake({
      store,
      log,
      now: Date.now,
      skills: () => [],
      settings: { flapWindowMs: 60_000, flapLimit: 3, maxFailedFixes: 3, labels: loadConfig({}).labels },
    });
    const queue = createMemoryQueue({ log });
    const http = await buildHttpApp({
      log,
      store,
      queue,
      metrics: createMetrics(),
      bodyLimit: 1_048_576,
      alertmanager: { intake, auth: { mode: "token", token: TOKEN, user: "alertmanager" }, bodyLimit: 1_048_576 },
    });
    try {
      const secret = "Wrong-Secret-Sent-By-A-Stranger-42";
      const body = fixture("crashloop-firing.json", newTag());
      for (let i = 0; i < 5; i++) expect((await postAlerts(http, body, secret)).statusCode).toBe(401);
      const basic = Buffer.from(`alertmanager:${secret}`).toString("base64");
      expect((await postAlerts(http, body, undefined, { authorization: `Basic ${basic}` })).statusCode).toBe(401);
      expect((await postAlerts(http, body, undefined)).statusCode).toBe(401);

      const refused = lines.filter((l) => l.msg === "AlertManager webhook refused: missing or invalid credentials");
      expect(refused).toHaveLength(1);
      expect(refused[0]).toMatchObject({ level: 40, scheme: "bearer", suppressed: 0, ip: "127.0.0.1" });
      const all = JSON.stringify(lines);
      for (const leak of [secret, basic, TOKEN]) expect(all).not.toContain(leak);
    } finally {
      await http.close();
      await queue.close();
      await store.close();
    }
  });
});

for (const f of await storeFactories()) {
  describe.skipIf(!f.available)(`committed events (${f.name})`, () => {
    it("reports an event once its transaction commits, never one whose transaction rolled back", async () => {
      const store = await f.make();
      const seen: CommittedEvent[][] = [];
      const stop = store.onEventsCommitted((events) => seen.push(events));
      const tag = newTag();
      const event = (type: string) => ({
        type,
        incidentId: `inc_${tag}`,
        actor: "test",
        channel: "test",
        data: { n: 1 },
        occurredAt: Date.now(),
      });
      try {
        await expect(
          store.db.transaction().execute(async (trx) => {
            await appendEvent(trx, store.dialect, event("incident.escalated"), Date.now());
            throw new Error("changed my mind");
          }),
        ).rejects.toThrow("changed my mind");
        expect(seen).toEqual([]);

        await store.db.transaction().execute(async (trx) => {
          await appendEvent(trx, store.dialect, event("incident.analyzing"), Date.now());
          await appendEvent(trx, store.dialect, event("incident.escalated"), Date.now());
          // Nothing is reported before the COMMIT.
          expect(seen).toEqual([]);
        });
        // Only this transaction's events: the rolled-back one is not carried over on the connection.
        expect(seen.map((batch) => batch.map((e) => e.type))).toEqual([["incident.analyzing", "incident.escalated"]]);
        expect(seen[0]![0]).toMatchObject({ incidentId: `inc_${tag}`, actor: "test", data: { n: 1 } });

        // Outside a transaction a statement commits as it runs.
        await appendEvent(store.db, store.dialect, event("incident.resolved"), Date.now());
        expect(seen.at(-1)!.map((e) => e.type)).toEqual(["incident.resolved"]);

        // Unsubscribed: nothing more arrives.
        stop();
        await store.db.transaction().execute((trx) => appendEvent(trx, store.dialect, event("x.y"), Date.now()));
        expect(seen).toHaveLength(2);
      } finally {
        stop();
        await store.close();
      }
    });
  });
}
