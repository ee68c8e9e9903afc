import { createServer, type Server } from "node:http";
import type { KyselyPlugin, RootOperationNode } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listEvents } from "../../src/events/repo.ts";
import { createAnalysisWorker, type AnalysisDeps } from "../../src/incidents/analysis.ts";
import { getIncident } from "../../src/incidents/repo.ts";
import { unavailable } from "../../src/shared/errors.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { rulesPlanner, type Planner } from "../../src/skills/planner.ts";
import { Skill } from "../../src/skills/schema.ts";
import type { Store } from "../../src/store/db.ts";
import type { TaskRow } from "../../src/store/schema.ts";
import { fixture, newTag, postAlerts } from "../helpers/alerts.ts";
import { intakeApp, skills, TOKEN, type IntakeHarness } from "../helpers/intake-app.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";
import { waitFor } from "../helpers/wait.ts";

// An analysis that fails half way (a database cut, a planner that says "later", a control plane
// stopped during a Claude call) is delivered again; the redelivery must resume the incident where
// it stands, never answer "skipped" and leave it `analyzing` or `fixing` for good.

const factories = await storeFactories();

/** A store whose first query matching `match` fails as a dropped MySQL connection does. */
function failingOnce(
  store: Store,
  match: (node: RootOperationNode, json: string) => boolean,
): Store & { failures: number } {
  const state = { failures: 0 };
  const plugin: KyselyPlugin = {
    transformQuery({ node }) {
      if (state.failures === 0 && match(node, JSON.stringify(node))) {
        state.failures += 1;
        throw Object.assign(new Error("Connection lost: The server closed the connection."), {
          code: "PROTOCOL_CONNECTION_LOST",
        });
      }
      return node;
    },
    async transformResult({ result }) {
      return result;
    },
  };
  return {
    ...store,
    db: store.db.withPlugin(plugin),
    get failures() {
      return state.failures;
    },
  };
}

const historyLoad = (node: RootOperationNode, json: string) =>
  node.kind === "SelectQueryNode" && json.includes('"name":"events"') && json.includes('"name":"occurred_at"');
const planWrite = (node: RootOperationNode, json: string) =>
  node.kind === "UpdateQueryNode" && json.includes('"name":"plan"');
const skillResultWrite = (node: RootOperationNode, json: string) =>
  node.kind === "InsertQueryNode" && json.includes("skill.result");

for (const f of factories) {
  describe.skipIf(!f.available)(`analysis resumes after a failed attempt on ${f.name}`, () => {
    let store: TestStore;
    let h: IntakeHarness;
    let server: Server;
    let port = 0;

    beforeAll(async () => {
      store = await f.make();
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

    function worker(over: Partial<AnalysisDeps> = {}) {
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
        ...over,
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

    /** Publishes the incident's analysis job as the outbox relay would, and waits until a worker has finished with it. */
    async function runJob(w: ReturnType<typeof worker>, incidentId: string): Promise<TaskRow> {
      const [job] = await tasksOf(incidentId, "incident.analyze");
      const sub = w.start(1);
      try {
        await h.queue.publishTask("control", job!.id, {
          v: 1,
          taskId: job!.id,
          kind: "incident.analyze",
          pool: "control",
          incidentId,
          payload: JSON.parse(job!.payload),
          createdAt: Number(job!.created_at),
        });
        return await waitFor(async () => {
          const t = (await tasksOf(incidentId, "incident.analyze"))[0]!;
          return (t.state === "succeeded" || t.state === "failed") && t;
        }, 15_000);
      } finally {
        await sub.stop();
      }
    }

    it("resumes an analysis whose final transaction failed: the redelivered job plans the incident instead of skipping it", async () => {
      const id = await open(fixture("crashloop-firing.json", newTag()));
      const flaky = failingOnce(store, planWrite);
      const job = await runJob(worker({ store: flaky }), id);
      expect(flaky.failures).toBe(1);
      expect(job).toMatchObject({ state: "succeeded", attempts: 2 });
      expect(JSON.parse(job.result!)).toEqual({ outcome: "fixing", resumed: true });
      expect((await getIncident(store.db, id))!.state).toBe("fixing");
      const fixes = await tasksOf(id, "skill");
      expect(fixes).toHaveLength(1);
      expect(JSON.parse(fixes[0]!.payload)).toMatchObject({ skill: "crashloop-after-deploy" });
      expect((await listEvents(store.db, { incidentId: id, type: "incident.resumed" }))[0]!.reason).toBe(
        "analysis resumed: an earlier attempt did not finish",
      );
    });

    it("retries a planner that fails with a retryable error instead of escalating", async () => {
      const id = await open(fixture("crashloop-firing.json", newTag()));
      let calls = 0;
      const planner: Planner = {
        async plan(ctx, s) {
          calls += 1;
          if (calls === 1) throw unavailable("planner.unavailable", "the model is overloaded");
          return rulesPlanner.plan(ctx, s);
        },
      };
      const job = await runJob(worker({ planner }), id);
      expect(calls).toBe(2);
      expect(job.state).toBe("succeeded");
      expect(JSON.parse(job.result!)).toMatchObject({ outcome: "fixing" });
      expect((await getIncident(store.db, id))!.state).toBe("fixing");
      expect(await listEvents(store.db, { incidentId: id, type: "incident.escalated" })).toHaveLength(0);
    });

    it("retries a store error while loading the planner's history; it is not 'no skill matches'", async () => {
      const id = await open(fixture("crashloop-firing.json", newTag()));
      const flaky = failingOnce(store, historyLoad);
      const job = await runJob(worker({ store: flaky }), id);
      expect(flaky.failures).toBe(1);
      expect(job).toMatchObject({ state: "succeeded", attempts: 2 });
      expect((await getIncident(store.db, id))!.state).toBe("fixing");
      expect(await listEvents(store.db, { incidentId: id, type: "incident.escalated" })).toHaveLength(0);
      expect(await tasksOf(id, "skill")).toHaveLength(1);
    });

    it("runs an inline skill again when its first run never recorded its result", async () => {
      const probe = Skill.parse({
        name: "target-down-probe",
        description: "probe",
        match: { alertname: ["TargetDown"] },
        risk: "read",
        approval: "none",
        action: { builtin: "probe", with: { url: `http://127.0.0.1:${port}/healthz`, timeout: "2s" } },
      });
      const id = await open(fixture("target-down.json", newTag()));
      const flaky = failingOnce(store, skillResultWrite);
      const job = await runJob(worker({ store: flaky, skills: () => [probe] }), id);
      expect(flaky.failures).toBe(1);
      expect(job).toMatchObject({ state: "succeeded", attempts: 2 });
      expect(JSON.parse(job.result!)).toMatchObject({
        outcome: "verifying",
        resumed: true,
        inline: { skill: "target-down-probe", kind: "applied" },
      });
      expect((await getIncident(store.db, id))!.state).toBe("verifying");
      const results = await listEvents(store.db, { incidentId: id, type: "skill.result" });
      expect(results).toHaveLength(1);
      expect(JSON.parse(results[0]!.data)).toMatchObject({
        skill: "target-down-probe",
        kind: "applied",
        details: { status: 200 },
      });
    });

    it("never queues a second fix when two deliveries of one job run at once", async () => {
      const id = await open(fixture("crashloop-firing.json", newTag()));
      const w = worker();
      const outcomes = await Promise.all([w.analyze(id), w.analyze(id)].map((p) => p.catch((e: Error) => e.message)));
      expect(outcomes).toContain("fixing");
      expect(await tasksOf(id, "skill")).toHaveLength(1);
      expect((await getIncident(store.db, id))!.state).toBe("fixing");
    });
  });
}
