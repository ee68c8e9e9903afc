import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { setupServer } from "msw/node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRunner } from "../../runner/worker.ts";
import { createSkillExecutor } from "../../runner/executors/skill.ts";
import type { Executor as TaskExecutor } from "../../runner/executors/types.ts";
import { createAlertIntake } from "../../src/alerts/intake.ts";
import { defaultLabelMapping } from "../../src/alerts/normalize.ts";
import { createApprovalService } from "../../src/approvals/service.ts";
import { createQueueDepthReader } from "../../src/bus/depth.ts";
import { createMemoryQueue } from "../../src/bus/memory.ts";
import { addToOutbox, createOutboxRelay } from "../../src/bus/outbox.ts";
import { createEventIngester } from "../../src/events/ingester.ts";
import { listEvents } from "../../src/events/repo.ts";
import { recordHeartbeat } from "../../src/fleet/repo.ts";
import { createFleetMonitor } from "../../src/fleet/monitor.ts";
import { createLocalGitHost } from "../../src/gitops/local.ts";
import { buildHttpApp } from "../../src/http/app.ts";
import { createAnalysisWorker } from "../../src/incidents/analysis.ts";
import { incidentFixHook } from "../../src/incidents/fix-outcome.ts";
import { createLifecycleMetrics } from "../../src/incidents/lifecycle-metrics.ts";
import { getIncident, newIncidentRow } from "../../src/incidents/repo.ts";
import { createSweeper } from "../../src/incidents/sweeper.ts";
import { createVerifier } from "../../src/incidents/verifier.ts";
import { createDeliverer, type Sender } from "../../src/notify/deliverer.ts";
import { AppError } from "../../src/shared/errors.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { createMetrics, type Metrics } from "../../src/shared/metrics.ts";
import { createClaudePlanner } from "../../src/skills/planner-claude.ts";
import { rulesPlanner } from "../../src/skills/planner.ts";
import { CONTROL_POOL, createControlJobs } from "../../src/tasks/control-jobs.ts";
import { handleDeadLetters } from "../../src/tasks/dead-letter.ts";
import { createTaskService } from "../../src/tasks/service.ts";
import { createAnthropicMock } from "../msw/anthropic.ts";
import { fixture, newTag, postAlerts } from "../helpers/alerts.ts";
import { checkoutDeployment, makeBareRepo } from "../helpers/git.ts";
import { skills, TOKEN } from "../helpers/intake-app.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";
import { queueFactories } from "../helpers/queues.ts";
import { waitFor } from "../helpers/wait.ts";

// GET /metrics after the README's flow, embedded: an AlertManager alert opens an incident, the
// rules plan its rollback, a runner opens the pull request (its first attempt fails and the task
// is delivered again), a person approves through MCP, the merge lands, AlertManager resolves the
// alert. Around it: a payload refused for its token and one for its shape, a task message that
// runs out of deliveries, a stranded incident for the sweeper, a runner gone silent, notices
// whose sender fails once or for good, and a Claude planner's tokens and errors. Every metric is
// read from the endpoint and compared with what happened (the database's rows where it has them).

const sqlite = (await storeFactories()).find((f) => f.name === "sqlite")!;

/** The samples of a Prometheus text exposition, by name and labels. */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = [...(m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)]
      .map(([, k, v]) => `${k}=${v}`)
      .sort();
    out.set(`${m[1]}{${labels.join(",")}}`, Number(m[3]));
  }
  return out;
}

const key = (name: string, labels: Record<string, string> = {}) =>
  `${name}{${Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .sort()
    .join(",")}}`;

describe("/metrics after an alert → pull request → approval → merge → resolve flow", () => {
  let store: TestStore;
  let metrics: Metrics;
  let app: FastifyInstance;
  let dir: string;
  let bare: string;
  const tag = newTag();
  const stops: Array<() => Promise<void> | void> = [];
  const alice = { subject: "alice", actor: "mcp:alice", channel: "mcp" };
  // What the notice sender answered, to compare with the deliveries counter.
  const answers = { retry: 0 };
  let incidentId: string;
  let strandedId: string;

  const scrape = async () => {
    const res = await app.inject({ method: "GET", url: "/metrics" });
    expect(res.statusCode).toBe(200);
    return { text: res.body, samples: parseMetrics(res.body) };
  };

  beforeAll(async () => {
    store = await sqlite.make();
    metrics = createMetrics();
    stops.push(store.onEventsCommitted(createLifecycleMetrics(metrics)));
    const queue = createMemoryQueue({ log: silentLogger, settings: { maxDeliver: 3 } });
    dir = mkdtempSync(join(tmpdir(), "pitcrew-metrics-"));
    const ns = `payments-${tag}`;
    bare = makeBareRepo(
      dir,
      ["v1.4.0", "v1.5.0"].map((v) => ({
        message: `checkout ${v}`,
        files: { [`apps/${ns}/deployment.yaml`]: checkoutDeployment(ns, v) },
      })),
    );
    const host = createLocalGitHost({ repoPath: bare, committer: { name: "Pitcrew", email: "pitcrew@example.com" } });
    const onTerminal = incidentFixHook(store.dialect, { autoApproveMaxRisk: "low" });
    const relay = createOutboxRelay(
      { store, queue, log: silentLogger, metrics },
      { intervalMs: 20, batch: 100, retentionMs: 86_400_000 },
    );
    const kick = () => relay.kick();
    const tasks = createTaskService({ store, log: silentLogger, now: Date.now, onEnqueued: kick, onTerminal });
    const ingesting = createEventIngester({
      store,
      queue,
      log: silentLogger,
      now: Date.now,
      onTerminal,
      metrics,
    }).start(4);
    const deadLetters = handleDeadLetters({ queue, tasks, log: silentLogger, metrics });
    const analysis = createAnalysisWorker({
      store,
      queue,
      log: silentLogger,
      now: Date.now,
      skills: () => skills,
      planner: rulesPlanner,
      guardrails: {
        dryRun: false,
        maxPrsPerHour: 100,
        maxPrsPerDay: 100,
        maxFixesPerNamespace: 5,
        autoApproveMaxRisk: "low",
      },
      onEnqueued: kick,
      metrics,
    });
    const approvals = createApprovalService({
      store,
      log: silentLogger,
      now: Date.now,
      skills: () => skills,
      gitHost: host,
      fixPool: "default",
      deleteMergedBranches: true,
      sweep: { stuckAfterMs: 600_000, maxRetries: 3 },
      onEnqueued: kick,
    });
    const control = createControlJobs(
      { store, queue, log: silentLogger, now: Date.now, onDone: kick, metrics },
      { "incident.analyze": analysis.job, ...approvals.jobs },
    ).start(2);
    // The first attempt of every fix fails in a way worth retrying: the bus delivers it again.
    const skill = createSkillExecutor({
      host,
      baseBranch: "main",
      author: { name: "Pitcrew", email: "pitcrew@example.com" },
      workspaceBase: dir,
    });
    const flakyOnce: TaskExecutor = async (task, ctx) => {
      if (ctx.attempt === 1)
        throw new AppError("unavailable", "gitops.unavailable", "the Git host did not answer", { retryable: true });
      return skill(task, ctx);
    };
    const runner = createRunner(
      { queue, log: silentLogger, executors: { skill: flakyOnce } },
      {
        id: "metrics-runner",
        pool: "default",
        concurrency: 2,
        heartbeatMs: 60_000,
        ackWaitMs: 30_000,
        version: "test",
        drainTimeoutMs: 1000,
      },
    );
    const intake = createAlertIntake({
      store,
      log: silentLogger,
      now: Date.now,
      skills: () => skills,
      settings: { flapWindowMs: 30 * 60_000, flapLimit: 3, maxFailedFixes: 3, labels: defaultLabelMapping },
      onCommitted: kick,
    });
    app = await buildHttpApp({
      log: silentLogger,
      store,
      queue,
      metrics,
      bodyLimit: 1_048_576,
      alertmanager: {
        intake,
        auth: { mode: "token", token: TOKEN, user: "alertmanager" },
        bodyLimit: 32 * 1_048_576,
      },
    });
    await app.ready();
    runner.start();
    relay.start();
    stops.push(
      () => app.close(),
      () => runner.stop(),
      () => control.stop(),
      () => relay.stop(),
      () => ingesting.stop(),
      () => deadLetters.stop(),
      () => queue.close(),
    );

    // The flow.
    const firing = fixture("crashloop-firing.json", tag);
    const opened = await postAlerts(app, firing, TOKEN);
    expect(opened.statusCode, opened.body).toBe(200);
    incidentId = opened.json().incidents[0];
    await waitFor(async () => (await getIncident(store.db, incidentId))?.state === "proposed", 30_000, 100);
    const r = await approvals.approve({ incidentId }, alice, "looks right");
    expect(r.incident.state).toBe("verifying");
    const resolved = await postAlerts(app, fixture("crashloop-resolved.json", tag), TOKEN);
    expect(resolved.statusCode, resolved.body).toBe(200);
    expect((await getIncident(store.db, incidentId))!.state).toBe("resolved");
    // Refused payloads: a wrong token, and a body that is not an AlertManager payload.
    expect((await postAlerts(app, firing, "wrong-token")).statusCode).toBe(401);
    expect((await postAlerts(app, { version: "4", alerts: "none" }, TOKEN)).statusCode).toBe(400);
    // Everything queued by the flow (merge job, pull request clean-up) has run.
    await waitFor(
      async () =>
        (await store.db.selectFrom("tasks").select("id").where("state", "in", ["queued", "running"]).execute())
          .length === 0,
      20_000,
    );

    // A task message nobody acknowledges: it uses its three deliveries and is dead-lettered.
    const doomed = queue.consumeTasks("doomed", { concurrency: 1 }, async (d) => d.nak());
    stops.push(() => doomed.stop());
    const dead = { v: 1, taskId: "tsk_doomed", kind: "noop", pool: "doomed", incidentId: null, payload: {} };
    await queue.publishTask("doomed", "doomed-1", { ...dead, createdAt: Date.now() });
    await waitFor(
      async () =>
        (await scrape()).samples.get(key("pitcrew_dead_letters_total", { pool: "doomed" })) === 1 ? true : undefined,
      10_000,
    );
    // A message waiting on a pool no runner pulls.
    await queue.publishTask("idle", "idle-1", { ...dead, taskId: "tsk_idle", pool: "idle", createdAt: Date.now() });
    await createQueueDepthReader({ queue, log: silentLogger, metrics }, { pools: ["default", CONTROL_POOL] }).tick();

    // An incident stranded in `detected` an hour ago with no work queued: the sweeper escalates it.
    const hourAgo = Date.now() - 3_600_000;
    strandedId = `inc_stranded_${tag}`;
    await store.db
      .insertInto("incidents")
      .values(
        newIncidentRow(
          {
            id: strandedId,
            fingerprint: `stranded-${tag}`,
            dedupe_key: null,
            open_key: `f:stranded-${tag}`,
            title: "stranded",
            source: "alertmanager",
            severity: "warning",
            namespace: null,
            service: null,
            alertname: "Stranded",
            labels: {},
            annotations: {},
          },
          hourAgo,
        ),
      )
      .execute();
    await createSweeper({
      store,
      log: silentLogger,
      now: Date.now,
      skills: () => skills,
      settings: { stuckAfterMs: 600_000, intervalMs: 60_000, maxRetries: 0 },
      metrics,
    }).sweep();

    // The runner of this test is live; another one was last heard ten minutes ago.
    await recordHeartbeat(store.db, store.dialect, {
      type: "runner.heartbeat",
      id: `evt_gone_${tag}`,
      runnerId: "gone-runner",
      host: "gone",
      version: "test",
      pool: "default",
      concurrency: 1,
      running: [],
      totals: { succeeded: 0, failed: 0, cancelled: 0 },
      startedAt: hourAgo,
      at: Date.now() - 600_000,
    });
    await createFleetMonitor({ store, log: silentLogger, now: Date.now, heartbeatMs: 60_000, metrics }).tick();

    // The time to resolve, counted by the verifier's pass.
    await createVerifier({
      store,
      log: silentLogger,
      now: Date.now,
      skills: () => skills,
      observeResolved: (s) => metrics.timeToResolve.observe(s),
    }).tick();

    // The notices the flow asked for: an approval message fails once then goes out; the incident
    // card's chat is gone, so each card is given up.
    const telegram: Sender = {
      async deliver(row) {
        if (row.kind !== "approval.message") return { status: "dead", error: "chat not found" };
        if (Number(row.attempts) === 0) {
          answers.retry += 1;
          return { status: "retry", error: "telegram answered 502" };
        }
        return { status: "sent", target: "chat-1" };
      },
    };
    const deliverer = createDeliverer({
      store,
      log: silentLogger,
      now: Date.now,
      owner: "metrics-test",
      senders: { telegram },
      settings: { backoff: { baseMs: 1, maxMs: 1 }, maxAttempts: 5 },
      metrics,
    });
    await waitFor(async () => {
      await deliverer.runOnce();
      const pending = await store.db.selectFrom("deliveries").select("id").where("state", "=", "pending").execute();
      return pending.length === 0;
    }, 10_000);
  }, 120_000);

  afterAll(async () => {
    for (const s of stops.reverse()) await s();
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("has the process and Node.js metrics under their usual names, without a prefix", async () => {
    const { text } = await scrape();
    for (const name of [
      "process_cpu_seconds_total",
      "process_resident_memory_bytes",
      "process_start_time_seconds",
      "nodejs_eventloop_lag_seconds",
      "nodejs_heap_size_used_bytes",
      "nodejs_version_info",
    ])
      expect(text).toMatch(new RegExp(`^${name}[ {]`, "m"));
    expect(text).not.toMatch(/^pitcrew_(process|nodejs)_/m);
    // The gauges once recomputed with COUNT queries at every scrape are gone.
    expect(text).not.toMatch(/^pitcrew_(incidents|tasks)\{state=/m);
    expect(text).not.toMatch(/^pitcrew_outbox_pending /m);
  });

  it("counts the alerts by outcome and the payloads by status", async () => {
    const { samples } = await scrape();
    expect(samples.get(key("pitcrew_alerts_received_total", { outcome: "opened" }))).toBe(1);
    expect(samples.get(key("pitcrew_alerts_received_total", { outcome: "resolved" }))).toBe(1);
    expect(samples.get(key("pitcrew_alert_payloads_total", { status: "accepted" }))).toBe(2);
    expect(samples.get(key("pitcrew_alert_payloads_total", { status: "unauthorized" }))).toBe(1);
    expect(samples.get(key("pitcrew_alert_payloads_total", { status: "invalid" }))).toBe(1);
    expect(samples.get(key("pitcrew_alertmanager_intake_duration_seconds_count", { outcome: "stored" }))).toBe(2);
  });

  it("counts incidents opened by severity, resolved and escalated by skill, and times alert → PR and → resolve", async () => {
    const { samples } = await scrape();
    expect(samples.get(key("pitcrew_incidents_opened_total", { severity: "warning" }))).toBe(1);
    expect(samples.get(key("pitcrew_incidents_resolved_total", { skill: "crashloop-after-deploy" }))).toBe(1);
    // The stranded incident had no plan.
    expect(samples.get(key("pitcrew_incidents_escalated_total", { skill: "none" }))).toBe(1);
    const inc = (await getIncident(store.db, incidentId))!;
    const proposed = (await listEvents(store.db, { incidentId, type: "incident.proposed" }))[0]!;
    expect(samples.get(key("pitcrew_alert_to_pr_seconds_count"))).toBe(1);
    expect(samples.get(key("pitcrew_alert_to_pr_seconds_sum"))).toBeCloseTo(
      (Number(proposed.occurred_at) - Number(inc.opened_at)) / 1000,
      3,
    );
    expect(samples.get(key("pitcrew_incident_time_to_resolve_seconds_count"))).toBe(1);
    expect(samples.get(key("pitcrew_incident_time_to_resolve_seconds_sum"))).toBeCloseTo(
      Number(inc.time_to_resolve_ms) / 1000,
      3,
    );
  });

  it("times the analysis by planner, and the runner's task by kind and outcome", async () => {
    const { samples } = await scrape();
    expect(samples.get(key("pitcrew_analysis_duration_seconds_count", { planner: "rules" }))).toBe(1);
    expect(samples.get(key("pitcrew_task_duration_seconds_count", { kind: "skill", outcome: "succeeded" }))).toBe(1);
    const task = await store.db
      .selectFrom("tasks")
      .selectAll()
      .where("incident_id", "=", incidentId)
      .where("kind", "=", "skill")
      .executeTakeFirstOrThrow();
    expect(samples.get(key("pitcrew_task_duration_seconds_sum", { kind: "skill", outcome: "succeeded" }))).toBeCloseTo(
      (Number(task.finished_at) - Number(task.started_at)) / 1000,
      3,
    );
  });

  it("counts redeliveries and dead letters by pool, and reads the queue depth per pool", async () => {
    const { samples } = await scrape();
    // The fix's first attempt failed; its second delivery ran it.
    expect(samples.get(key("pitcrew_queue_redeliveries_total", { pool: "default" }))).toBe(1);
    expect(samples.get(key("pitcrew_dead_letters_total", { pool: "doomed" }))).toBe(1);
    expect(samples.get(key("pitcrew_queue_depth", { pool: "idle" }))).toBe(1);
    expect(samples.get(key("pitcrew_queue_depth", { pool: "default" }))).toBe(0);
    expect(samples.get(key("pitcrew_queue_depth", { pool: CONTROL_POOL }))).toBe(0);
    expect(samples.get(key("pitcrew_queue_depth", { pool: "doomed" }))).toBe(0);
  });

  it("has the outbox's batch sizes summing to the rows it published, and no lag once it caught up", async () => {
    const { samples } = await scrape();
    const sent = await store.db.selectFrom("outbox").select("id").where("sent_at", "is not", null).execute();
    expect(sent.length).toBeGreaterThan(0);
    expect(samples.get(key("pitcrew_outbox_batch_size_sum"))).toBe(sent.length);
    expect(samples.get(key("pitcrew_outbox_batch_size_count"))).toBeGreaterThan(0);
    // Measured every 2 s at most: the pass after the last row went out says 0.
    await expect
      .poll(async () => (await scrape()).samples.get(key("pitcrew_outbox_lag_seconds")), { timeout: 10_000 })
      .toBe(0);
  });

  it("counts approvals by channel and outcome, the merge included", async () => {
    const { samples } = await scrape();
    expect(samples.get(key("pitcrew_approvals_total", { channel: "mcp", outcome: "approved" }))).toBe(1);
    expect(samples.get(key("pitcrew_approvals_total", { channel: "mcp", outcome: "merged" }))).toBe(1);
    expect([...samples.keys()].filter((k) => k.startsWith("pitcrew_approvals_total{"))).toHaveLength(2);
  });

  it("counts deliveries by channel and outcome as the deliveries table recorded them", async () => {
    const { samples } = await scrape();
    const rows = await store.db.selectFrom("deliveries").select(["state"]).where("channel", "=", "telegram").execute();
    const sent = rows.filter((r) => r.state === "sent").length;
    const dead = rows.filter((r) => r.state === "dead").length;
    expect(sent).toBeGreaterThan(0);
    expect(dead).toBeGreaterThan(0);
    expect(samples.get(key("pitcrew_deliveries_total", { channel: "telegram", outcome: "sent" }))).toBe(sent);
    expect(samples.get(key("pitcrew_deliveries_total", { channel: "telegram", outcome: "dead" }))).toBe(dead);
    expect(samples.get(key("pitcrew_deliveries_total", { channel: "telegram", outcome: "retried" }))).toBe(
      answers.retry,
    );
  });

  it("has the runners by state, the stuck incidents and the sweeper's actions as of their last pass", async () => {
    const { samples } = await scrape();
    expect(samples.get(key("pitcrew_runners", { state: "live" }))).toBe(1);
    expect(samples.get(key("pitcrew_runners", { state: "stale" }))).toBe(1);
    expect(samples.get(key("pitcrew_incidents_stuck"))).toBe(1);
    expect(samples.get(key("pitcrew_sweeper_actions_total", { action: "escalated" }))).toBe(1);
    expect((await getIncident(store.db, strandedId))!.state).toBe("escalated");
  });

  it("counts a Claude planner's tokens by type and its failures by reason", async () => {
    const apiKey = "sk-ant-api03-test-metrics-0123456789abcdef";
    const mock = createAnthropicMock({ apiKey });
    const server = setupServer();
    server.listen({ onUnhandledRequest: "error" });
    try {
      const planner = createClaudePlanner({
        apiKey,
        model: "claude-sonnet-5-5",
        maxTokens: 1024,
        timeoutMs: 5000,
        log: silentLogger,
        fallback: rulesPlanner,
        metrics,
      });
      const ctx = {
        incident: {
          id: `inc_claude_${tag}`,
          alertname: "KubePodCrashLooping",
          fingerprint: "8f3c2a91d4e5b607",
          namespace: "shop",
          service: "checkout",
          severity: "warning",
          title: "crash looping",
        },
        labels: {
          alertname: "KubePodCrashLooping",
          namespace: "shop",
          pod: "checkout-7d9f8-abcde",
          severity: "warning",
        },
        annotations: {},
      };
      server.use(
        mock.toolUse(
          "crashloop-after-deploy",
          { namespace: "shop", pod: "checkout-7d9f8-abcde", rationale: "the image changed", confidence: 0.8 },
          { usage: { input_tokens: 1200, output_tokens: 80 } },
        ),
      );
      expect((await planner.plan(ctx, skills))?.planner).toBe("claude");
      server.use(mock.rateLimited());
      expect((await planner.plan(ctx, skills))?.fallback).toMatch(/rate limited/);
      server.use(mock.text("I would roll back.", { usage: { input_tokens: 900, output_tokens: 12 } }));
      expect((await planner.plan(ctx, skills))?.fallback).toMatch(/instead of a tool call/);
    } finally {
      server.close();
    }
    const { samples } = await scrape();
    expect(samples.get(key("pitcrew_planner_tokens_total", { planner: "claude", type: "input" }))).toBe(2100);
    expect(samples.get(key("pitcrew_planner_tokens_total", { planner: "claude", type: "output" }))).toBe(92);
    expect(samples.get(key("pitcrew_planner_errors_total", { planner: "claude", reason: "rate_limited" }))).toBe(1);
    expect(samples.get(key("pitcrew_planner_errors_total", { planner: "claude", reason: "no_tool_call" }))).toBe(1);
  });

  it("times every HTTP request by route and status, /metrics included", async () => {
    await scrape();
    const { samples } = await scrape();
    expect(
      samples.get(
        key("pitcrew_http_request_duration_seconds_count", {
          method: "POST",
          route: "/webhooks/alertmanager",
          status_code: "200",
        }),
      ),
    ).toBe(2);
    expect(
      samples.get(
        key("pitcrew_http_request_duration_seconds_count", { method: "GET", route: "/metrics", status_code: "200" }),
      ),
    ).toBeGreaterThan(0);
  });
});

for (const factory of await queueFactories()) {
  describe.skipIf(!factory.available)(`queue depth on the ${factory.name} queue`, () => {
    it("counts the task messages stored and not yet acknowledged, by pool, a running one included", async () => {
      const queue = await factory.make();
      try {
        const body = (taskId: string, pool: string) => ({
          v: 1,
          taskId,
          kind: "noop",
          pool,
          incidentId: null,
          payload: {},
          createdAt: Date.now(),
        });
        await queue.publishTask("a", "m1", body("t1", "a"));
        await queue.publishTask("a", "m2", body("t2", "a"));
        await queue.publishTask("b", "m3", body("t3", "b"));
        expect(await queue.depths()).toEqual({ a: 2, b: 1 });

        let release!: () => void;
        const held = new Promise<void>((r) => (release = r));
        let running = false;
        const b = queue.consumeTasks("b", { concurrency: 1 }, async (d) => {
          running = true;
          await held;
          await d.ack();
        });
        await waitFor(() => running);
        expect((await queue.depths()).b).toBe(1);
        release();
        const a = queue.consumeTasks("a", { concurrency: 2 }, async (d) => d.ack());
        await waitFor(async () => {
          const d = await queue.depths();
          return (d.a ?? 0) === 0 && (d.b ?? 0) === 0;
        });
        await a.stop();
        await b.stop();
      } finally {
        await queue.close();
        await factory.cleanup(queue);
      }
    });
  });
}

describe("outbox lag while the queue refuses", () => {
  it("is the age of the oldest unsent row, and the relay counts no rows as published", async () => {
    const store = await sqlite.make();
    const queue = createMemoryQueue({ log: silentLogger });
    const metrics = createMetrics({ defaults: false });
    const down: typeof queue = {
      ...queue,
      publishTask: async () => {
        throw new AppError("unavailable", "queue.publish_failed", "nats: disconnected", { retryable: true });
      },
    };
    const relay = createOutboxRelay(
      { store, queue: down, log: silentLogger, metrics },
      { intervalMs: 20, batch: 100, retentionMs: 86_400_000 },
    );
    try {
      const written = Date.now() - 30_000;
      await addToOutbox(store.db, { topic: "task", pool: "default", msgId: "m-lag", body: {} }, written);
      relay.start();
      await expect
        .poll(async () => (await metrics.outboxLag.get()).values[0]?.value ?? 0, { timeout: 10_000 })
        .toBeGreaterThanOrEqual(30);
      const batches = (await metrics.outboxBatch.get()).values;
      expect(batches.find((v) => v.metricName === "pitcrew_outbox_batch_size_sum")?.value).toBe(0);
    } finally {
      await relay.stop();
      await queue.close();
      await store.close();
    }
  });
});
