import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAnalysisWorker } from "../../src/incidents/analysis.ts";
import { getIncident } from "../../src/incidents/repo.ts";
import { listEvents } from "../../src/events/repo.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { Skill } from "../../src/skills/schema.ts";
import { rulesPlanner } from "../../src/skills/planner.ts";
import { verify } from "../../src/webhooks/sign.ts";
import { fixture, newTag, postAlerts } from "../helpers/alerts.ts";
import { intakeApp, TOKEN, type IntakeHarness } from "../helpers/intake-app.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";

const sqlite = (await storeFactories()).find((f) => f.name === "sqlite")!;
const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

describe("inline skills in the analysis worker", () => {
  let store: TestStore;
  let h: IntakeHarness;
  let server: Server;
  let port = 0;
  let healthy = true;
  let remoteAnswer: unknown = { type: "result", ok: true, summary: "cache flushed" };
  let lastSignatureOk = false;

  beforeAll(async () => {
    store = await sqlite.make();
    h = await intakeApp(store);
    server = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        if (req.url === "/healthz") {
          res.writeHead(healthy ? 200 : 503).end(healthy ? "ok" : "down");
          return;
        }
        lastSignatureOk = verify(req.headers as Record<string, string>, body, SECRET).ok;
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(remoteAnswer));
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    port = (server.address() as { port: number }).port;
  });
  afterAll(async () => {
    server.close();
    await h.close();
    await store.close();
  });

  function worker(skills: Skill[]) {
    return createAnalysisWorker({
      store,
      queue: h.queue,
      log: silentLogger,
      now: () => h.clock.now,
      skills: () => skills,
      planner: rulesPlanner,
      guardrails: {
        dryRun: false,
        maxPrsPerHour: 1000,
        maxPrsPerDay: 10_000,
        maxFixesPerNamespace: 10,
        autoApproveMaxRisk: "read",
      },
      inline: { secrets: (name) => (name === "REMOTE_SKILL_SECRET" ? SECRET : undefined) },
    });
  }

  const probeSkill = () =>
    Skill.parse({
      name: "target-down-probe",
      description: "probe",
      match: { alertname: ["TargetDown"] },
      risk: "read",
      approval: "none",
      action: { builtin: "probe", with: { url: `http://127.0.0.1:${port}/healthz`, timeout: "2s" } },
    });

  it("runs a read-only probe inline and waits for the alert to clear when the target answers", async () => {
    healthy = true;
    const id = (await postAlerts(h.app, fixture("target-down.json", newTag()), TOKEN)).json().incidents[0];
    expect(await worker([probeSkill()]).analyze(id)).toBe("verifying");
    expect((await getIncident(store.db, id))!.state).toBe("verifying");
    const result = (await listEvents(store.db, { incidentId: id, type: "skill.result" }))[0]!;
    expect(JSON.parse(result.data)).toMatchObject({
      skill: "target-down-probe",
      kind: "applied",
      details: { status: 200 },
    });
    expect(
      await store.db
        .selectFrom("tasks")
        .select("id")
        .where("incident_id", "=", id)
        .where("kind", "=", "skill")
        .execute(),
    ).toHaveLength(0);
  });

  it("escalates an incident whose fix did not resolve the alert within the skill's window, and closes one that did", async () => {
    healthy = true;
    const { createVerifier } = await import("../../src/incidents/verifier.ts");
    const skill = Skill.parse({ ...probeSkill(), verify: { alert_resolves_within: "10m" } });
    const tagA = newTag();
    const a = (await postAlerts(h.app, fixture("target-down.json", tagA), TOKEN)).json().incidents[0];
    expect(await worker([skill]).analyze(a)).toBe("verifying");
    const verifier = createVerifier({ store, log: silentLogger, now: () => h.clock.now, skills: () => [skill] });
    await verifier.tick();
    h.clock.advance(9 * 60_000);
    await verifier.tick();
    expect((await getIncident(store.db, a))!.state).toBe("verifying");
    h.clock.advance(2 * 60_000);
    expect(await verifier.tick()).toBeGreaterThanOrEqual(1);
    expect((await getIncident(store.db, a))!.state).toBe("escalated");
    expect((await listEvents(store.db, { incidentId: a, type: "incident.escalated" }))[0]!.reason).toBe(
      "the alert still fires 10m after the fix",
    );

    // A second incident whose alert resolves in time is closed by the intake, not escalated.
    const tagB = newTag();
    const body = fixture("target-down.json", tagB);
    const b = (await postAlerts(h.app, body, TOKEN)).json().incidents[0];
    expect(await worker([skill]).analyze(b)).toBe("verifying");
    h.clock.advance(60_000);
    body.status = "resolved";
    body.alerts[0].status = "resolved";
    body.alerts[0].endsAt = new Date(h.clock.now).toISOString();
    await postAlerts(h.app, body, TOKEN);
    expect((await getIncident(store.db, b))!.state).toBe("resolved");
    h.clock.advance(20 * 60_000);
    await verifier.tick();
    expect((await getIncident(store.db, b))!.state).toBe("resolved");
  });

  it("escalates with the probe's evidence when the target is down", async () => {
    healthy = false;
    const id = (await postAlerts(h.app, fixture("target-down.json", newTag()), TOKEN)).json().incidents[0];
    expect(await worker([probeSkill()]).analyze(id)).toBe("escalated");
    const esc = (await listEvents(store.db, { incidentId: id, type: "incident.escalated" }))[0]!;
    expect(esc.reason).toMatch(/^probe failed: .*503/);
  });

  it("follows a failed probe with the skill it names in on_failure, queued as a fix", async () => {
    healthy = false;
    const restart = Skill.parse({
      name: "target-down-restart",
      description: "restart",
      match: { alertname: ["TargetDown"], priority: -10 },
      risk: "low",
      approval: "before_merge",
      action: { builtin: "restart", with: { namespace: "{{labels.namespace}}", deployment: "{{labels.service}}" } },
    });
    const probe = Skill.parse({ ...probeSkill(), on_failure: "target-down-restart" });
    const tag = newTag();
    const id = (await postAlerts(h.app, fixture("target-down.json", tag), TOKEN)).json().incidents[0];
    expect(await worker([probe, restart]).analyze(id)).toBe("fixing");
    expect((await getIncident(store.db, id))!.state).toBe("fixing");
    const fix = await store.db
      .selectFrom("tasks")
      .selectAll()
      .where("incident_id", "=", id)
      .where("kind", "=", "skill")
      .execute();
    expect(fix).toHaveLength(1);
    expect(JSON.parse(fix[0]!.payload)).toMatchObject({
      skill: "target-down-restart",
      params: { namespace: `payments-${tag}`, deployment: "payments-api" },
      approval: "before_merge",
      action: { builtin: "restart" },
    });

    // The follow-up is now the incident's plan, with its own rationale from what the probe found.
    const plan = JSON.parse((await getIncident(store.db, id))!.plan!);
    const url = `http://127.0.0.1:${port}/healthz`;
    expect(plan).toMatchObject({
      skill: "target-down-restart",
      params: { namespace: `payments-${tag}`, deployment: "payments-api" },
      planner: "rules",
      risk: "low",
      approval: "before_merge",
      after: "target-down-probe",
    });
    expect(plan.rationale).toMatch(
      new RegExp(
        `^probe of ${url.replace(/[.]/g, "\\.")} failed: HTTP 503 in \\d+ ms; following with target-down-restart$`,
      ),
    );
    expect(JSON.parse(fix[0]!.payload).rationale).toBe(plan.rationale);
    const planned = await listEvents(store.db, { incidentId: id, type: "incident.planned" });
    expect(planned.map((e) => JSON.parse(e.data).skill)).toEqual(["target-down-probe", "target-down-restart"]);
    expect(planned[1]!.reason).toBe(plan.rationale);
    // The probe's result says what it really found.
    const [result] = await listEvents(store.db, { incidentId: id, type: "skill.result" });
    expect(result!.reason).toMatch(new RegExp(`^probe failed: GET ${url.replace(/[.]/g, "\\.")} → 503 in \\d+ ms`));
    expect(JSON.parse(result!.data)).toMatchObject({
      skill: "target-down-probe",
      kind: "escalate",
      params: { url },
      details: { status: 503, latencyMs: expect.any(Number) },
    });
  });

  it("a follow-up that cannot reach its target says what the probe saw: the connection error", async () => {
    const restart = Skill.parse({
      name: "target-down-restart",
      description: "restart",
      match: { alertname: ["TargetDown"], priority: -10 },
      risk: "low",
      approval: "before_merge",
      action: { builtin: "restart", with: { namespace: "{{labels.namespace}}", deployment: "{{labels.service}}" } },
    });
    const closed = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, "127.0.0.1", () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const probe = Skill.parse({
      ...probeSkill(),
      action: { builtin: "probe", with: { url: `http://127.0.0.1:${closed}/healthz`, timeout: "2s" } },
      on_failure: "target-down-restart",
    });
    const id = (await postAlerts(h.app, fixture("target-down.json", newTag()), TOKEN)).json().incidents[0];
    expect(await worker([probe, restart]).analyze(id)).toBe("fixing");
    const plan = JSON.parse((await getIncident(store.db, id))!.plan!);
    expect(plan.rationale).toMatch(
      new RegExp(
        `^probe of http://127\\.0\\.0\\.1:${closed}/healthz failed: ECONNREFUSED in \\d+ ms; following with target-down-restart$`,
      ),
    );
    const [result] = await listEvents(store.db, { incidentId: id, type: "skill.result" });
    expect(JSON.parse(result!.data)).toMatchObject({ kind: "escalate", details: { error: "ECONNREFUSED" } });
  });

  it("does not run an on_failure follow-up that must be approved before it runs; a person gets the incident", async () => {
    healthy = false;
    const restart = Skill.parse({
      name: "target-down-restart",
      description: "restart",
      match: { alertname: ["TargetDown"], priority: -10 },
      risk: "medium",
      approval: "before_run",
      action: { builtin: "restart", with: { namespace: "{{labels.namespace}}", deployment: "{{labels.service}}" } },
    });
    const probe = Skill.parse({ ...probeSkill(), on_failure: "target-down-restart" });
    const id = (await postAlerts(h.app, fixture("target-down.json", newTag()), TOKEN)).json().incidents[0];
    expect(await worker([probe, restart]).analyze(id)).toBe("escalated");
    expect(
      await store.db
        .selectFrom("tasks")
        .select("id")
        .where("incident_id", "=", id)
        .where("kind", "=", "skill")
        .execute(),
    ).toHaveLength(0);
    expect((await listEvents(store.db, { incidentId: id, type: "incident.escalated" }))[0]!.reason).toMatch(
      /target-down-restart needs approval before it runs$/,
    );
  });

  it("calls a remote skill with a signed request and records its result", async () => {
    remoteAnswer = { type: "result", ok: true, summary: "cache flushed" };
    const remote = Skill.parse({
      name: "remote-flush",
      description: "remote",
      match: { alertname: ["TargetDown"] },
      risk: "read",
      approval: "none",
      action: {
        http: { url: `http://127.0.0.1:${port}/skill`, secret_env: "REMOTE_SKILL_SECRET", timeout: "2s" },
        with: { service: "{{labels.service}}" },
      },
    });
    const id = (await postAlerts(h.app, fixture("target-down.json", newTag()), TOKEN)).json().incidents[0];
    expect(await worker([remote]).analyze(id)).toBe("verifying");
    expect(lastSignatureOk).toBe(true);
    expect((await listEvents(store.db, { incidentId: id, type: "skill.result" }))[0]!.reason).toBe("cache flushed");
  });
});
