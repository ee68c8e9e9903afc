import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listEvents } from "../../src/events/repo.ts";
import { createAnalysisWorker } from "../../src/incidents/analysis.ts";
import { incidentFixHook } from "../../src/incidents/fix-outcome.ts";
import { getIncident } from "../../src/incidents/repo.ts";
import { applyTransition } from "../../src/incidents/service.ts";
import { createSweeper } from "../../src/incidents/sweeper.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { rulesPlanner } from "../../src/skills/planner.ts";
import { Skill } from "../../src/skills/schema.ts";
import { setPause } from "../../src/system/settings.ts";
import { fixture, fp, newTag, postAlerts } from "../helpers/alerts.ts";
import { intakeApp, skills, TOKEN, type IntakeHarness } from "../helpers/intake-app.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";

// The sweeper on a fake clock: incidents whose work stopped being in flight are queued again,
// escalated after SWEEP_MAX_RETRIES with the reason, or given the outcome their fix task reached.
// Each dialect gets a database of its own: a sweeper serves the whole database.

const factories = await storeFactories();
const STUCK = 10 * 60_000;

function otherWorkload(tag: string, name: string) {
  const body = fixture("crashloop-firing.json", tag);
  body.alerts[0].labels.pod = `${name}-5d4c3b2a1-abcde`;
  body.alerts[0].fingerprint = fp(name, tag);
  return body;
}

for (const f of factories) {
  describe.skipIf(!f.available)(`sweeper on ${f.name}`, () => {
    let store: TestStore;
    let h: IntakeHarness;
    let server: Server;
    let port = 0;

    beforeAll(async () => {
      store = await f.make({ own: true });
      h = await intakeApp(store);
      server = createServer((_req, res) => void res.writeHead(200).end("ok"));
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
      port = (server.address() as { port: number }).port;
    });
    afterAll(async () => {
      server?.close();
      await h?.close();
      await store?.close();
    });

    const probe = () =>
      Skill.parse({
        name: "target-down-probe",
        description: "probe",
        match: { alertname: ["TargetDown"] },
        risk: "read",
        approval: "none",
        action: { builtin: "probe", with: { url: `http://127.0.0.1:${port}/healthz`, timeout: "2s" } },
      });

    function worker(opts: { skills?: Skill[]; maxFixesPerNamespace?: number } = {}) {
      return createAnalysisWorker({
        store,
        queue: h.queue,
        log: silentLogger,
        now: () => h.clock.now,
        skills: () => opts.skills ?? skills,
        planner: rulesPlanner,
        guardrails: {
          dryRun: false,
          maxPrsPerHour: 1000,
          maxPrsPerDay: 10_000,
          maxFixesPerNamespace: opts.maxFixesPerNamespace ?? 10,
          autoApproveMaxRisk: "read",
          stuckAfterMs: STUCK,
        },
      });
    }

    function sweeper(maxRetries = 2, extra?: Array<(now: number) => Promise<number>>) {
      return createSweeper({
        store,
        log: silentLogger,
        now: () => h.clock.now,
        skills: () => [...skills, probe()],
        settings: { stuckAfterMs: STUCK, intervalMs: 1000, maxRetries },
        onTerminal: incidentFixHook(store.dialect),
        extra,
      });
    }

    async function open(body: unknown): Promise<string> {
      const res = await postAlerts(h.app, body, TOKEN);
      expect(res.statusCode, res.body).toBe(200);
      return res.json().incidents[0];
    }

    const tasksOf = (id: string, kind: string) =>
      store.db
        .selectFrom("tasks")
        .selectAll()
        .where("incident_id", "=", id)
        .where("kind", "=", kind)
        .orderBy("id")
        .execute();

    /** Runs the analysis as its job would, and marks the job done. */
    async function analyzed(w: ReturnType<typeof worker>, id: string) {
      const outcome = await w.analyze(id);
      await store.db
        .updateTable("tasks")
        .set({ state: "succeeded", result: JSON.stringify({ outcome }), finished_at: h.clock.now })
        .where("incident_id", "=", id)
        .where("kind", "=", "incident.analyze")
        .where("state", "=", "queued")
        .execute();
      return outcome;
    }

    /** The control plane running the incident's latest analysis job died: the job is `running` and silent. */
    async function jobDied(id: string) {
      const jobs = await tasksOf(id, "incident.analyze");
      const job = jobs[jobs.length - 1]!;
      await store.db
        .updateTable("tasks")
        .set({
          state: "running",
          attempts: 1,
          started_at: h.clock.now,
          updated_at: h.clock.now,
          runner_id: "control-plane",
        })
        .where("id", "=", job.id)
        .execute();
    }

    /** What analyze() had committed when its control plane died during the planner call. */
    async function diedWhilePlanning(id: string) {
      await jobDied(id);
      await store.db.transaction().execute(async (trx) => {
        const inc = (await getIncident(trx, id))!;
        await applyTransition(
          trx,
          store.dialect,
          inc,
          "analysis.started",
          { actor: "pitcrew:analysis", channel: "engine", reason: "analysis started" },
          h.clock.now,
        );
      });
    }

    it("queues the analysis of an incident stranded in analyzing again, and escalates it with the reason after SWEEP_MAX_RETRIES", async () => {
      const id = await open(fixture("crashloop-firing.json", newTag()));
      await diedWhilePlanning(id);
      const s = sweeper(2);

      h.clock.advance(STUCK - 1000);
      await s.sweep();
      expect((await getIncident(store.db, id))!).toMatchObject({ state: "analyzing", requeues: 0 });
      expect(await tasksOf(id, "incident.analyze")).toHaveLength(1);

      for (const attempt of [1, 2]) {
        h.clock.advance(2000);
        expect((await s.sweep()).requeued).toBeGreaterThanOrEqual(1);
        expect((await getIncident(store.db, id))!).toMatchObject({
          state: "analyzing",
          requeues: attempt,
          state_since: h.clock.now,
        });
        const jobs = await tasksOf(id, "incident.analyze");
        expect(jobs).toHaveLength(attempt + 1);
        expect(jobs[attempt]).toMatchObject({ state: "queued", pool: "control", created_by: "pitcrew:sweeper" });
        // Queued again, so in flight: the next pass leaves it alone.
        h.clock.advance(STUCK + 1000);
        await s.sweep();
        expect(await tasksOf(id, "incident.analyze")).toHaveLength(attempt + 1);
        // That job's control plane died too.
        await jobDied(id);
        h.clock.advance(STUCK + 1000);
      }
      const requeued = await listEvents(store.db, { incidentId: id, type: "incident.requeued" });
      expect(requeued.map((e) => JSON.parse(e.data).attempt)).toEqual([1, 2]);
      expect(requeued[0]!.reason).toBe("analysis was not in flight for 10m; queued again (retry 1 of 2)");

      expect((await s.sweep()).escalated).toBeGreaterThanOrEqual(1);
      expect((await getIncident(store.db, id))!.state).toBe("escalated");
      const esc = await listEvents(store.db, { incidentId: id, type: "incident.escalated" });
      expect(esc).toHaveLength(1);
      expect(esc[0]!.reason).toMatch(
        /^analysis did not finish after 3 attempts: its last job stopped answering \S+ ago$/,
      );
      expect(await tasksOf(id, "incident.analyze")).toHaveLength(3);
    });

    it("a re-queued analysis resumes the incident and plans it", async () => {
      const id = await open(fixture("crashloop-firing.json", newTag()));
      await diedWhilePlanning(id);
      h.clock.advance(STUCK + 1000);
      await sweeper().sweep();
      const [, again] = await tasksOf(id, "incident.analyze");
      expect(again).toMatchObject({ state: "queued" });
      expect(await worker().analyze(id)).toBe("fixing");
      expect((await getIncident(store.db, id))!).toMatchObject({ state: "fixing", requeues: 0 });
      expect(await tasksOf(id, "skill")).toHaveLength(1);
    });

    it("resumes an inline skill whose run was cut off: the re-queued job runs it again", async () => {
      const id = await open(fixture("target-down.json", newTag()));
      // The state analyze() leaves when its control plane dies while the probe runs.
      await jobDied(id);
      await store.db.transaction().execute(async (trx) => {
        let inc = (await getIncident(trx, id))!;
        inc = await applyTransition(
          trx,
          store.dialect,
          inc,
          "analysis.started",
          { actor: "pitcrew:analysis", channel: "engine" },
          h.clock.now,
        );
        const plan = {
          skill: "target-down-probe",
          params: { url: `http://127.0.0.1:${port}/healthz`, timeout: "2s" },
          rationale: "matched",
          confidence: 1,
          planner: "rules",
          risk: "read",
          approval: "none",
          action: "builtin",
          inline: true,
        };
        await trx
          .updateTable("incidents")
          .set({ plan: JSON.stringify(plan) })
          .where("id", "=", id)
          .execute();
        await applyTransition(
          trx,
          store.dialect,
          inc,
          "fix.started",
          { actor: "pitcrew:analysis", channel: "engine", reason: "running target-down-probe inline" },
          h.clock.now,
        );
      });
      h.clock.advance(STUCK + 1000);
      await sweeper().sweep();
      expect((await getIncident(store.db, id))!).toMatchObject({ state: "fixing", requeues: 1 });
      expect((await listEvents(store.db, { incidentId: id, type: "incident.requeued" }))[0]!.reason).toMatch(
        /^the inline skill target-down-probe was not in flight/,
      );
      expect(await worker({ skills: [probe()] }).analyze(id)).toBe("verifying");
      expect(JSON.parse((await listEvents(store.db, { incidentId: id, type: "skill.result" }))[0]!.data)).toMatchObject(
        { kind: "applied", details: { status: 200 } },
      );
    });

    it("leaves incidents whose work is in flight, and sweeps nothing while automation is paused", async () => {
      const queued = await open(fixture("crashloop-firing.json", newTag()));
      const stranded = await open(fixture("crashloop-firing.json", newTag()));
      await diedWhilePlanning(stranded);
      h.clock.advance(STUCK + 1000);
      await setPause(store, true, { actor: "ops@example.com", channel: "test" }, h.clock.now);
      try {
        await sweeper().sweep();
        expect((await getIncident(store.db, stranded))!.requeues).toBe(0);
      } finally {
        await setPause(store, false, { actor: "ops@example.com", channel: "test" }, h.clock.now);
      }
      await sweeper().sweep();
      expect((await getIncident(store.db, stranded))!.requeues).toBe(1);
      // Its analysis job still waits on the bus: nothing to do.
      expect((await getIncident(store.db, queued))!).toMatchObject({ state: "detected", requeues: 0 });
      expect(await tasksOf(queued, "incident.analyze")).toHaveLength(1);
    });

    it("a stranded fixing holds no namespace slot, and the sweeper applies the outcome its fix task reached", async () => {
      const tag = newTag();
      const w = worker({ maxFixesPerNamespace: 1 });
      const a = await open(fixture("crashloop-firing.json", tag));
      expect(await analyzed(w, a)).toBe("fixing");
      // Its runner reported failure, but the outcome never reached the incident.
      const [fix] = await tasksOf(a, "skill");
      await store.db
        .updateTable("tasks")
        .set({ state: "failed", error: "git push rejected", finished_at: h.clock.now, updated_at: h.clock.now })
        .where("id", "=", fix!.id)
        .execute();

      // Within its deadline the fix still holds the namespace's only slot.
      const b = await open(otherWorkload(tag, "billing"));
      expect(await analyzed(w, b)).toBe("escalated");
      expect((await listEvents(store.db, { incidentId: b, type: "guardrail.namespace_busy" }))[0]!.reason).toMatch(
        /^1 fixes already under way/,
      );

      // Past it, nothing is in flight for it any more: the slot is free.
      h.clock.advance(STUCK + 1000);
      const c = await open(otherWorkload(tag, "ledger"));
      expect(await analyzed(w, c)).toBe("fixing");

      await sweeper().sweep();
      expect((await getIncident(store.db, a))!).toMatchObject({ state: "failed", failed_fixes: 1 });
      expect((await listEvents(store.db, { incidentId: a, type: "incident.recovered" }))[0]!.reason).toBe(
        `fix task ${fix!.id} ended failed but its outcome was never applied; applied now`,
      );
      // c's fix task is queued: in flight, not touched.
      expect((await getIncident(store.db, c))!.state).toBe("fixing");
    });

    it("runs the extra sweeps it is given on every pass", async () => {
      const seen: number[] = [];
      const r = await sweeper(2, [async (now) => (seen.push(now), 2)]).sweep();
      expect(seen).toEqual([h.clock.now]);
      expect(r.extra).toBe(2);
    });
  });
}
