import { HttpResponse, http } from "msw";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load.ts";
import { listEvents } from "../../src/events/repo.ts";
import { createAnalysisWorker } from "../../src/incidents/analysis.ts";
import { getIncident } from "../../src/incidents/repo.ts";
import { createPlanner } from "../../src/main/planner.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { fixture, newTag, postAlerts } from "../helpers/alerts.ts";
import { intakeApp, skills, TOKEN, type IntakeHarness } from "../helpers/intake-app.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";
import { strictMockServer } from "../helpers/msw.ts";
import { createAnthropicMock, promptText } from "../msw/anthropic.ts";

const API_KEY = "sk-ant-api03-analysis-test-4f7Qe2Lm9Xc1Vb8Nz3";
const mock = createAnthropicMock({ apiKey: API_KEY });
const server = strictMockServer();
const factories = await storeFactories();

beforeAll(() => server.listen());
afterEach(() => server.resetHandlers());
afterAll(() => server.close());

for (const f of factories) {
  describe.skipIf(!f.available)(`analysis with the Claude planner on ${f.name}`, () => {
    let store: TestStore;
    let h: IntakeHarness;
    let worker: ReturnType<typeof createAnalysisWorker>;

    beforeAll(async () => {
      store = await f.make();
      h = await intakeApp(store);
      const config = loadConfig({ ANTHROPIC_API_KEY: API_KEY, ANTHROPIC_TIMEOUT: "2s", SKILLS_DIR: "skills" });
      // Created after msw listens: the SDK takes the global fetch when it is built.
      worker = createAnalysisWorker({
        store,
        queue: h.queue,
        log: silentLogger,
        now: () => h.clock.now,
        skills: () => skills,
        planner: await createPlanner(config, silentLogger, store),
        guardrails: {
          dryRun: false,
          maxPrsPerHour: 1000,
          maxPrsPerDay: 10_000,
          maxFixesPerNamespace: 10,
          autoApproveMaxRisk: "read",
        },
      });
    });
    afterAll(async () => {
      await h?.close();
      await store?.close();
    });

    async function open(file: string, tag: string): Promise<string> {
      const res = await postAlerts(h.app, fixture(file, tag), TOKEN);
      expect(res.statusCode).toBe(200);
      return res.json().incidents[0];
    }

    it("records Claude's plan and its token usage, keeping the skill author's caps", async () => {
      server.use(
        mock.toolUse(
          "replicas-mismatch-scale",
          {
            namespace: "shop",
            deployment: "cart",
            factor: 3,
            max: 200,
            rationale: "Replicas lag after a node drain.",
            confidence: 0.8,
          },
          { usage: { input_tokens: 1200, output_tokens: 90 } },
        ),
      );
      const tag = newTag();
      const id = await open("replicas-mismatch.json", tag);
      expect(await worker.analyze(id)).toBe("fixing");
      const inc = (await getIncident(store.db, id))!;
      const plan = JSON.parse(inc.plan!);
      expect(plan).toMatchObject({ skill: "replicas-mismatch-scale", planner: "claude", confidence: 0.8 });
      // factor and max are literal in the skill: the model's 3 and 200 are not used.
      expect(plan.params).toMatchObject({ factor: 1.5, max: 20, namespace: "shop", deployment: "cart" });
      expect(plan.rationale).toMatch(/pinned by policy: factor, max/);
      expect(inc).toMatchObject({ llm_calls: 1, llm_input_tokens: 1200, llm_output_tokens: 90 });
      const prompt = promptText(mock.requests.at(-1)!);
      expect(prompt).toContain(`shop-${tag}`);
    });

    it("pins every parameter of a skill that runs without approval to the alert's own values", async () => {
      const tag = newTag();
      const probed: string[] = [];
      server.use(
        mock.toolUse("target-down-probe", {
          url: "http://attacker.example/steal",
          timeout: "60s",
          rationale: "Probe it.",
          confidence: 0.9,
        }),
        // The alert's service does not answer, as when it is down.
        http.get(`http://payments-api.payments-${tag}.svc/healthz`, ({ request }) => {
          probed.push(request.url);
          return HttpResponse.error();
        }),
      );
      const id = await open("target-down.json", tag);
      await worker.analyze(id);
      // Claude's plan (the probe then fails here and its follow-up becomes the incident's plan).
      const plan = JSON.parse((await listEvents(store.db, { incidentId: id, type: "incident.planned" }))[0]!.data);
      expect(plan.planner).toBe("claude");
      expect(plan.params).toEqual({ url: `http://payments-api.payments-${tag}.svc:80/healthz`, timeout: "5s" });
      // The probe that ran is the pinned one, not the model's.
      expect(probed).toEqual([`http://payments-api.payments-${tag}.svc/healthz`]);
    });

    it("falls back to the rules with the reason when Claude is overloaded, and still counts nothing it did not answer", async () => {
      server.use(mock.overloaded());
      const id = await open("crashloop-firing.json", newTag());
      expect(await worker.analyze(id)).toBe("fixing");
      const inc = (await getIncident(store.db, id))!;
      expect(JSON.parse(inc.plan!)).toMatchObject({
        skill: "crashloop-after-deploy",
        planner: "rules",
        fallback: "claude: overloaded (529)",
      });
      expect(inc.llm_calls).toBe(0);
    });
  });
}
