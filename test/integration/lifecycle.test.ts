import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listEvents } from "../../src/events/repo.ts";
import { requeueDetected } from "../../src/incidents/analysis.ts";
import { incidentFixHook } from "../../src/incidents/fix-outcome.ts";
import { getIncident } from "../../src/incidents/repo.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { openStore, type Store } from "../../src/store/db.ts";
import { setPause } from "../../src/system/settings.ts";
import { createTaskService } from "../../src/tasks/service.ts";
import { fixture, fp, newTag, postAlerts } from "../helpers/alerts.ts";
import { intakeApp, makeClock, skills, TOKEN, type IntakeHarness } from "../helpers/intake-app.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";

const factories = await storeFactories();

async function tasksOf(store: Store, incidentId: string, kind?: string) {
  let q = store.db.selectFrom("tasks").selectAll().where("incident_id", "=", incidentId);
  if (kind) q = q.where("kind", "=", kind);
  return q.orderBy("id").execute();
}

const types = async (store: Store, incidentId: string) =>
  (await listEvents(store.db, { incidentId, limit: 1000 })).map((e) => e.type);

/** A firing alert of another workload in the same namespace (its own fingerprint and dedupe key). */
function otherWorkload(tag: string, name: string) {
  const body = fixture("crashloop-firing.json", tag);
  body.alerts[0].labels.pod = `${name}-5d4c3b2a1-abcde`;
  body.alerts[0].fingerprint = fp(name, tag);
  return body;
}

for (const f of factories) {
  describe.skipIf(!f.available)(`incident lifecycle on ${f.name}`, () => {
    let store: TestStore;
    let h: IntakeHarness;

    beforeAll(async () => {
      store = await f.make();
      h = await intakeApp(store);
    });
    afterAll(async () => {
      await h?.close();
      await store?.close();
    });

    async function open(body: unknown): Promise<string> {
      const res = await postAlerts(h.app, body, TOKEN);
      expect(res.statusCode, res.body).toBe(200);
      return res.json().incidents[0];
    }

    it("creates exactly one incident and one analysis job for 200 concurrent posts of one alert from two replicas", async () => {
      const tag = newTag();
      const body = fixture("crashloop-firing.json", tag);
      // A second replica: its own connection pool (MySQL) or connection (SQLite) on the same database.
      const other = openStore(store.database);
      const h2 = await intakeApp(other, { clock: h.clock });
      try {
        const results = await Promise.all(
          Array.from({ length: 200 }, (_, i) => postAlerts(i % 2 ? h.app : h2.app, body, TOKEN)),
        );
        expect(results.map((r) => r.statusCode).filter((s) => s !== 200)).toEqual([]);
        const ids = new Set(results.flatMap((r) => r.json().incidents as string[]));
        expect(ids.size).toBe(1);
        const incidentId = [...ids][0]!;
        const rows = await store.db
          .selectFrom("incidents")
          .select("id")
          .where("namespace", "=", `payments-${tag}`)
          .execute();
        expect(rows).toHaveLength(1);
        expect(await tasksOf(store, incidentId, "incident.analyze")).toHaveLength(1);
        const alert = await store.db
          .selectFrom("alerts")
          .selectAll()
          .where("fingerprint", "=", fp("72f9ef95199423f0", tag))
          .execute();
        expect(alert).toHaveLength(1);
        expect(alert[0]!.repeat_count).toBe(199);
      } finally {
        await h2.close();
        await other.close();
      }
    });

    it("reopens a flapping incident within FLAP_WINDOW, counts the flap and analyses it again", async () => {
      const tag = newTag();
      h.clock.set("2026-11-20T11:06:00Z");
      const id = await open(fixture("flap-1-firing.json", tag));
      h.clock.set("2026-11-20T11:10:00Z");
      await postAlerts(h.app, fixture("flap-2-resolved.json", tag), TOKEN);
      expect((await getIncident(store.db, id))!.state).toBe("resolved");
      h.clock.set("2026-11-20T11:26:00Z");
      const again = await open(fixture("flap-3-firing.json", tag));
      expect(again).toBe(id);
      const inc = (await getIncident(store.db, id))!;
      expect(inc).toMatchObject({ state: "detected", flap_count: 1, resolved_at: null });
      expect(inc.open_key).not.toBeNull();
      expect(await tasksOf(store, id, "incident.analyze")).toHaveLength(2);
      expect(await types(store, id)).toEqual([
        "incident.detected",
        "task.created",
        "incident.resolved",
        "incident.detected",
        "task.created",
      ]);
    });

    it("escalates instead of fixing once flaps exceed FLAP_LIMIT", async () => {
      const strict = await intakeApp(store, { settings: { flapLimit: 0 }, clock: makeClock("2026-11-20T11:06:00Z") });
      try {
        const tag = newTag();
        const id = (await postAlerts(strict.app, fixture("flap-1-firing.json", tag), TOKEN)).json().incidents[0];
        strict.clock.set("2026-11-20T11:10:00Z");
        await postAlerts(strict.app, fixture("flap-2-resolved.json", tag), TOKEN);
        strict.clock.set("2026-11-20T11:26:00Z");
        await postAlerts(strict.app, fixture("flap-3-firing.json", tag), TOKEN);
        const inc = (await getIncident(store.db, id))!;
        expect(inc.state).toBe("escalated");
        expect(inc.open_key).not.toBeNull();
        expect(await tasksOf(store, id, "incident.analyze")).toHaveLength(1);
        const guard = await listEvents(store.db, { incidentId: id, type: "guardrail.flap_limit" });
        expect(guard).toHaveLength(1);
        expect(guard[0]!.reason).toMatch(/over FLAP_LIMIT 0/);
      } finally {
        await strict.close();
      }
    });

    it("opens a new incident when the alert re-fires after FLAP_WINDOW", async () => {
      const tag = newTag();
      h.clock.set("2026-11-20T11:06:00Z");
      const id = await open(fixture("flap-1-firing.json", tag));
      h.clock.set("2026-11-20T11:10:00Z");
      await postAlerts(h.app, fixture("flap-2-resolved.json", tag), TOKEN);
      h.clock.set("2026-11-20T12:30:00Z");
      const next = await open(fixture("flap-3-firing.json", tag));
      expect(next).not.toBe(id);
      expect((await getIncident(store.db, next))!.flap_count).toBe(0);
    });

    it("plans a fix with the matching skill and queues it for a runner", async () => {
      h.clock.set("2026-11-20T08:15:00Z");
      const tag = newTag();
      const id = await open(fixture("crashloop-firing.json", tag));
      expect(await h.analysis.analyze(id)).toBe("fixing");
      const inc = (await getIncident(store.db, id))!;
      expect(inc.state).toBe("fixing");
      expect(JSON.parse(inc.plan!)).toMatchObject({
        skill: "crashloop-after-deploy",
        planner: "rules",
        risk: "medium",
        approval: "before_merge",
      });
      const [fix] = await tasksOf(store, id, "skill");
      expect(JSON.parse(fix!.payload)).toMatchObject({
        incidentId: id,
        skill: "crashloop-after-deploy",
        params: { namespace: `payments-${tag}`, pod: "checkout-7d9f8b6c5-x2x9k" },
        approval: "before_merge",
        action: { builtin: "rollback" },
        rationale: expect.stringMatching(/^matched alertname KubePodCrashLooping/),
      });
      expect(await types(store, id)).toEqual([
        "incident.detected",
        "task.created",
        "incident.analyzing",
        "incident.planned",
        "task.created",
        "incident.fixing",
      ]);
      // Analysing again changes nothing.
      expect(await h.analysis.analyze(id)).toBe("skipped");
    });

    it("moves the incident to failed when its fix fails, and escalates the alert after MAX_FAILED_FIXES", async () => {
      const tag = newTag();
      const tasks = createTaskService({
        store,
        log: silentLogger,
        now: () => h.clock.now,
        onTerminal: incidentFixHook(store.dialect),
      });
      const body = fixture("crashloop-firing.json", tag);
      for (let i = 0; i < 3; i++) {
        body.alerts[0].startsAt = `2026-11-2${i}T08:00:00Z`;
        const id = await open(body);
        expect(await h.analysis.analyze(id)).toBe("fixing");
        const [fix] = await tasksOf(store, id, "skill");
        await tasks.fail(fix!.id, "git push rejected", "runner:test", "runner");
        const inc = (await getIncident(store.db, id))!;
        expect(inc).toMatchObject({ state: "failed", failed_fixes: 1, open_key: null });
      }
      body.alerts[0].startsAt = "2026-11-23T08:00:00Z";
      const fourth = await open(body);
      const inc = (await getIncident(store.db, fourth))!;
      expect(inc.state).toBe("escalated");
      expect(await tasksOf(store, fourth, "incident.analyze")).toHaveLength(0);
      expect((await listEvents(store.db, { incidentId: fourth, type: "guardrail.failed_fixes" }))[0]!.reason).toMatch(
        /3 earlier fixes/,
      );
    });

    it("records the plan and changes nothing under DRY_RUN", async () => {
      const dry = await intakeApp(store, { guardrails: { dryRun: true }, clock: h.clock });
      try {
        const id = (await postAlerts(dry.app, fixture("crashloop-firing.json", newTag()), TOKEN)).json().incidents[0];
        expect(await dry.analysis.analyze(id)).toBe("suppressed");
        expect((await getIncident(store.db, id))!.state).toBe("suppressed");
        expect(await tasksOf(store, id, "skill")).toHaveLength(0);
        expect(await types(store, id)).toContain("guardrail.dry_run");
        expect(JSON.parse((await getIncident(store.db, id))!.plan!).skill).toBe("crashloop-after-deploy");
      } finally {
        await dry.close();
      }
    });

    it("escalates when the hourly fix limit is reached", async () => {
      const capped = await intakeApp(store, { guardrails: { maxPrsPerHour: 0 }, clock: h.clock });
      try {
        const id = (await postAlerts(capped.app, fixture("crashloop-firing.json", newTag()), TOKEN)).json()
          .incidents[0];
        expect(await capped.analysis.analyze(id)).toBe("escalated");
        expect(await tasksOf(store, id, "skill")).toHaveLength(0);
        expect((await listEvents(store.db, { incidentId: id, type: "guardrail.max_prs_per_hour" }))[0]!.reason).toMatch(
          /MAX_PRS_PER_HOUR 0/,
        );
      } finally {
        await capped.close();
      }
    });

    it("escalates a second concurrent fix in a namespace over MAX_FIXES_PER_NAMESPACE", async () => {
      const one = await intakeApp(store, { guardrails: { maxFixesPerNamespace: 1 }, clock: h.clock });
      try {
        const tag = newTag();
        const a = (await postAlerts(one.app, fixture("crashloop-firing.json", tag), TOKEN)).json().incidents[0];
        const b = (await postAlerts(one.app, otherWorkload(tag, "billing"), TOKEN)).json().incidents[0];
        expect(a).not.toBe(b);
        expect(await one.analysis.analyze(a)).toBe("fixing");
        expect(await one.analysis.analyze(b)).toBe("escalated");
        expect((await listEvents(store.db, { incidentId: b, type: "guardrail.namespace_busy" }))[0]!.reason).toMatch(
          new RegExp(`1 fixes already under way in payments-${tag}`),
        );
      } finally {
        await one.close();
      }
    });

    it("defers analysis while paused and resumes it on resume", async () => {
      const tag = newTag();
      const id = await open(fixture("crashloop-firing.json", tag));
      await setPause(store, true, { actor: "ops@example.com", channel: "test", reason: "maintenance" }, h.clock.now);
      try {
        expect(await h.analysis.analyze(id)).toBe("deferred");
        expect((await getIncident(store.db, id))!.state).toBe("detected");
        expect((await listEvents(store.db, { incidentId: id, type: "guardrail.paused" }))[0]!.reason).toMatch(
          /paused by ops@example.com/,
        );
      } finally {
        await setPause(store, false, { actor: "ops@example.com", channel: "test" }, h.clock.now);
      }
      expect(
        await requeueDetected(
          store,
          h.clock.now,
          { actor: "ops@example.com", channel: "test" },
          { namespace: `payments-${tag}` },
        ),
      ).toBe(1);
      expect(await tasksOf(store, id, "incident.analyze")).toHaveLength(2);
      expect(await h.analysis.analyze(id)).toBe("fixing");
    });

    it("hands an alert no specific skill handles to the coding agent, with approval before merge", async () => {
      const body = fixture("crashloop-firing.json", newTag());
      body.alerts[0].labels.alertname = "NobodyHandlesThis";
      const id = await open(body);
      expect(await h.analysis.analyze(id)).toBe("fixing");
      const [fix] = await tasksOf(store, id, "agent");
      expect(JSON.parse(fix!.payload)).toMatchObject({
        skill: "investigate-with-agent",
        approval: "before_merge",
        prompt: expect.stringContaining("NobodyHandlesThis"),
      });
    });

    it("does not analyse an incident whose analysis job was cancelled while it waited on the bus", async () => {
      const id = await open(fixture("crashloop-firing.json", newTag()));
      const [job] = await tasksOf(store, id, "incident.analyze");
      await store.db.updateTable("tasks").set({ state: "cancelled" }).where("id", "=", job!.id).execute();
      // The message the relay had already published, as it was queued.
      await h.queue.publishTask("control", job!.id, {
        v: 1,
        taskId: job!.id,
        kind: "incident.analyze",
        pool: "control",
        incidentId: id,
        payload: JSON.parse(job!.payload),
        createdAt: Number(job!.created_at),
      });
      let settled = "";
      const handled = new Promise<void>((resolve) => {
        const sub = h.queue.consumeTasks("control", { concurrency: 1 }, async (d) => {
          const ack = d.ack.bind(d);
          d.ack = async () => void ((settled = "ack"), await ack());
          await h.analysis.handle(d);
          resolve();
          void sub.stop();
        });
      });
      await handled;
      expect(settled).toBe("ack");
      expect((await getIncident(store.db, id))!.state).toBe("detected");
      expect((await tasksOf(store, id, "incident.analyze"))[0]!.state).toBe("cancelled");
    });

    it("escalates an incident no skill matches", async () => {
      const narrow = await intakeApp(store, {
        clock: h.clock,
        skills: skills.filter((s) => s.name !== "investigate-with-agent"),
      });
      try {
        const body = fixture("crashloop-firing.json", newTag());
        body.alerts[0].labels.alertname = "NobodyHandlesThis";
        const id = (await postAlerts(narrow.app, body, TOKEN)).json().incidents[0];
        expect(await narrow.analysis.analyze(id)).toBe("escalated");
        const ev = (await listEvents(store.db, { incidentId: id, type: "incident.escalated" }))[0]!;
        expect(ev.reason).toBe("no skill matches this incident");
      } finally {
        await narrow.close();
      }
    });

    it("asks for approval before running a skill above the auto-approve risk, and cancels it when the alert resolves by itself", async () => {
      const tag = newTag();
      const body = fixture("argocd-outofsync.json", tag);
      h.clock.set("2026-11-22T09:20:00Z");
      const id = await open(body);
      expect(await h.analysis.analyze(id)).toBe("awaiting_approval");
      expect((await getIncident(store.db, id))!.state).toBe("proposed");
      const approvals = await store.db.selectFrom("approvals").selectAll().where("incident_id", "=", id).execute();
      expect(approvals).toMatchObject([{ state: "pending", risk: "low" }]);
      expect(await tasksOf(store, id, "skill")).toHaveLength(0);

      body.status = "resolved";
      body.alerts[0].status = "resolved";
      body.alerts[0].endsAt = "2026-11-22T09:40:00Z";
      h.clock.set("2026-11-22T09:41:00Z");
      await postAlerts(h.app, body, TOKEN);
      expect((await getIncident(store.db, id))!.state).toBe("resolved");
      expect(
        (await store.db.selectFrom("approvals").select("state").where("incident_id", "=", id).executeTakeFirstOrThrow())
          .state,
      ).toBe("cancelled");
      expect(await types(store, id)).toContain("approval.cancelled");
      h.clock.set("2026-11-20T08:15:00Z");
    });

    it("expires an approval nobody decided and escalates its incident", async () => {
      const { createVerifier } = await import("../../src/incidents/verifier.ts");
      h.clock.set("2026-11-22T09:20:00Z");
      const id = await open(fixture("argocd-outofsync.json", newTag()));
      expect(await h.analysis.analyze(id)).toBe("awaiting_approval");
      const verifier = createVerifier({ store, log: silentLogger, now: () => h.clock.now, skills: () => skills });
      await verifier.expireApprovals();
      expect(
        (await store.db.selectFrom("approvals").select("state").where("incident_id", "=", id).executeTakeFirstOrThrow())
          .state,
      ).toBe("pending");
      h.clock.advance(61 * 60_000);
      expect(await verifier.expireApprovals()).toBeGreaterThanOrEqual(1);
      expect(
        (await store.db.selectFrom("approvals").select("state").where("incident_id", "=", id).executeTakeFirstOrThrow())
          .state,
      ).toBe("expired");
      expect((await getIncident(store.db, id))!.state).toBe("escalated");
      expect(await types(store, id)).toEqual(expect.arrayContaining(["approval.expired", "incident.escalated"]));
      h.clock.set("2026-11-20T08:15:00Z");
    });
  });
}
