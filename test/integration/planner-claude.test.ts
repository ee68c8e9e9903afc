import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createClaudePlanner, type ClaudeUsage } from "../../src/skills/planner-claude.ts";
import { rulesPlanner, type PlanContext } from "../../src/skills/planner.ts";
import { Skill } from "../../src/skills/schema.ts";
import { createAnthropicMock, promptText, type AnthropicMock } from "../msw/anthropic.ts";
import { captureLogger } from "../helpers/assert.ts";
import { strictMockServer } from "../helpers/msw.ts";

const API_KEY = "sk-ant-api03-test-Zq8vLx2Rk9Pw4Nc7Hd1Fy6Tb3Mj5Gs0";
const MODEL = "claude-sonnet-5-5";

const skill = (s: Record<string, unknown>) => Skill.parse(s);
const SKILLS = [
  skill({
    name: "crashloop-after-deploy",
    description: "Roll back a Deployment whose pods crash-loop after a new image rolled out",
    match: { alertname: ["KubePodCrashLooping"], labels: { severity: "critical|warning" }, priority: 10 },
    risk: "medium",
    action: { builtin: "rollback", with: { namespace: "{{labels.namespace}}", pod: "{{labels.pod}}" } },
    verify: { alert_resolves_within: "15m" },
  }),
  skill({
    name: "restart-crashlooping",
    description: "Rolling-restart the workload of a crash-looping pod",
    match: { alertname: ["KubePodCrashLooping"] },
    risk: "low",
    action: { builtin: "restart", with: { namespace: "{{labels.namespace}}", pod: "{{labels.pod}}" } },
  }),
  skill({
    name: "investigate-with-agent",
    description: "Hand the incident to a coding agent that investigates and proposes a fix",
    match: { labels: { severity: "critical|warning" } },
    risk: "high",
    action: {
      agent: { prompt: "Investigate {{incident.alertname}} in {{labels.namespace}}" },
      with: { namespace: "{{labels.namespace}}", max_minutes: 30, open_pr: true },
    },
  }),
  skill({
    name: "replicas-mismatch-scale",
    description: "Scale up a Deployment whose available replicas lag the desired count",
    match: { alertname: ["KubeDeploymentReplicasMismatch"] },
    risk: "low",
    action: {
      builtin: "scale",
      with: { namespace: "{{labels.namespace}}", deployment: "{{labels.deployment}}", factor: 1.5, max: 20 },
    },
  }),
];
const OFFERED = ["crashloop-after-deploy", "restart-crashlooping", "investigate-with-agent"];

let seq = 0;
function crashloop(): PlanContext {
  seq += 1;
  return {
    incident: {
      id: `inc_claude_${seq}_${Date.now()}`,
      alertname: "KubePodCrashLooping",
      fingerprint: "8f3c2a91d4e5b607",
      namespace: "shop",
      service: "checkout",
      severity: "critical",
      title: "Pod shop/checkout-7d9f8-abcde is crash looping",
    },
    labels: {
      alertname: "KubePodCrashLooping",
      namespace: "shop",
      pod: "checkout-7d9f8-abcde",
      container: "app",
      severity: "critical",
    },
    annotations: {
      summary: "Pod is crash looping.",
      description: "Pod shop/checkout-7d9f8-abcde (app) is in waiting state (reason: CrashLoopBackOff).",
    },
    recentEvents: [
      { type: "incident.detected", reason: "alert KubePodCrashLooping firing", at: Date.parse("2026-03-02T10:14:05Z") },
      {
        type: "deploy.observed",
        reason: "image checkout:2.4.1 rolled out 6 minutes before the alert",
        at: Date.parse("2026-03-02T10:08:00Z"),
      },
    ],
    pastIncidents: [
      {
        id: "inc_01JNPAST0000000000000000",
        state: "resolved",
        skill: "crashloop-after-deploy",
        outcome: "rolled back to checkout:2.3.9; alert resolved in 4m",
        at: Date.parse("2026-02-11T08:00:00Z"),
      },
    ],
  };
}

const server = strictMockServer();
beforeAll(() => server.listen());
afterEach(() => server.resetHandlers());
afterAll(() => server.close());

function setup(o: { timeoutMs?: number } = {}) {
  const mock: AnthropicMock = createAnthropicMock({ apiKey: API_KEY });
  const usage: ClaudeUsage[] = [];
  const { log, lines } = captureLogger();
  const planner = createClaudePlanner({
    apiKey: API_KEY,
    model: MODEL,
    maxTokens: 1024,
    timeoutMs: o.timeoutMs ?? 5000,
    log,
    fallback: rulesPlanner,
    onUsage: (u) => void usage.push(u),
  });
  return { mock, usage, lines, planner };
}

describe("Claude planner", () => {
  it("plans from a good tool call with Claude's skill, params, rationale and confidence, and reports the tokens", async () => {
    const { mock, usage, planner, lines } = setup();
    const input = {
      namespace: "shop",
      pod: "checkout-7d9f8-abcde",
      rationale: "Crash loop began right after checkout:2.4.1; a restart clears the stale config mount seen in events.",
      confidence: 0.82,
    };
    server.use(
      mock.toolUse("restart-crashlooping", input, {
        usage: { input_tokens: 2210, output_tokens: 143 },
        preamble: "Looking at the events first.",
      }),
    );
    const ctx = crashloop();

    const plan = await planner.plan(ctx, SKILLS);

    expect(plan).toEqual({
      skill: "restart-crashlooping",
      params: { namespace: "shop", pod: "checkout-7d9f8-abcde" },
      rationale: input.rationale,
      confidence: 0.82,
      planner: "claude",
    });
    expect(usage).toEqual([{ incidentId: ctx.incident.id, inputTokens: 2210, outputTokens: 143, model: MODEL }]);
    expect(mock.requests).toHaveLength(1);
    expect(lines.join("")).toContain('"msg":"claude planned"');
  });

  it("offers exactly the matching skills as tools, forces one tool call and puts the incident in the prompt", async () => {
    const { mock, planner } = setup();
    server.use(
      mock.toolUse("crashloop-after-deploy", {
        namespace: "shop",
        pod: "checkout-7d9f8-abcde",
        rationale: "Deploy 6 minutes before.",
        confidence: 0.9,
      }),
    );
    const ctx = crashloop();
    await planner.plan(ctx, SKILLS);

    const req = mock.requests[0]!;
    expect(req.body.model).toBe(MODEL);
    expect(req.body.max_tokens).toBe(1024);
    expect(req.body.tools!.map((t) => t.name)).toEqual(OFFERED);
    expect(req.body.tool_choice).toEqual({ type: "any", disable_parallel_tool_use: true });

    const agent = req.body.tools!.find((t) => t.name === "investigate-with-agent")!;
    expect(agent.input_schema.required).toEqual(["namespace", "max_minutes", "open_pr", "rationale", "confidence"]);
    expect(agent.input_schema.properties!.max_minutes!.type).toBe("number");
    expect(agent.input_schema.properties!.open_pr!.type).toBe("boolean");
    expect(agent.input_schema.properties!.namespace!.description).toContain('"shop"');
    expect(agent.input_schema.properties!.confidence).toMatchObject({ type: "number", minimum: 0, maximum: 1 });
    expect(agent.description).toContain("risk: high");

    const prompt = promptText(req);
    for (const [k, v] of Object.entries(ctx.labels)) expect(prompt).toContain(`"${k}": "${v}"`);
    expect(prompt).toContain("CrashLoopBackOff");
    expect(prompt).toContain("image checkout:2.4.1 rolled out 6 minutes before the alert");
    expect(prompt).toContain("inc_01JNPAST0000000000000000");
    expect(prompt).toContain("rolled back to checkout:2.3.9");
  });

  it("sends the API key in the request but never in logs or fallback reasons", async () => {
    const { mock, planner, lines } = setup();
    // An error message that echoes the key must not carry it into the reason or the log.
    server.use(mock.error(400, "invalid_request_error", `tools.0: rejected for key ${API_KEY}`));
    const plan = await planner.plan(crashloop(), SKILLS);

    // SDK 1.12 sends the key as a bearer token (older SDKs used x-api-key).
    expect(mock.requests[0]!.headers.authorization).toBe(`Bearer ${API_KEY}`);
    expect(plan!.fallback).toBe("claude: request rejected (400 invalid_request_error): tools.0: rejected for key ***");
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.join("")).not.toContain(API_KEY);
    expect(lines.join("")).not.toContain(API_KEY.slice(-12));
  });

  it.each([
    ["confidence above 1", { confidence: 1.4 }, "confidence must be ≤ 1"],
    ["negative confidence", { confidence: -0.1 }, "confidence must be ≥ 0"],
    ["blank rationale", { rationale: "  " }, "rationale must not be empty"],
    ["a number for a string parameter", { pod: 42 }, "pod must be a string"],
    ["a missing parameter", { pod: undefined }, "pod is required"],
  ])("falls back to rules when the tool input has %s", async (_name, change, reason) => {
    const { mock, planner, usage } = setup();
    const input = {
      namespace: "shop",
      pod: "checkout-7d9f8-abcde",
      rationale: "Restart it.",
      confidence: 0.7,
      ...change,
    };
    server.use(mock.toolUse("restart-crashlooping", input));
    const plan = await planner.plan(crashloop(), SKILLS);

    expect(plan).toMatchObject({
      skill: "crashloop-after-deploy",
      planner: "rules",
      confidence: 1,
      params: { namespace: "shop", pod: "checkout-7d9f8-abcde" },
    });
    expect(plan!.fallback).toBe(`claude: invalid input for restart-crashlooping: ${reason}`);
    expect(usage).toHaveLength(1);
  });

  it("checks parameters by the type of the skill's value: a number given as text is invalid", async () => {
    const { mock, planner } = setup();
    server.use(
      mock.toolUse("investigate-with-agent", {
        namespace: "shop",
        max_minutes: "30",
        open_pr: true,
        rationale: "Unclear cause.",
        confidence: 0.4,
      }),
    );
    const plan = await planner.plan(crashloop(), SKILLS);
    expect(plan).toMatchObject({
      skill: "crashloop-after-deploy",
      planner: "rules",
      fallback: "claude: invalid input for investigate-with-agent: max_minutes must be a number",
    });
  });

  it("falls back to rules when Claude answers text instead of a tool call, still recording the tokens", async () => {
    const { mock, planner, usage } = setup();
    server.use(mock.text("I would roll back the deployment.", { usage: { input_tokens: 900, output_tokens: 12 } }));
    const ctx = crashloop();
    const plan = await planner.plan(ctx, SKILLS);
    expect(plan).toMatchObject({
      skill: "crashloop-after-deploy",
      planner: "rules",
      fallback: "claude: answered text instead of a tool call",
    });
    expect(usage).toEqual([{ incidentId: ctx.incident.id, inputTokens: 900, outputTokens: 12, model: MODEL }]);
  });

  it("falls back to rules on a refusal", async () => {
    const { mock, planner } = setup();
    server.use(mock.refusal());
    const plan = await planner.plan(crashloop(), SKILLS);
    expect(plan).toMatchObject({
      skill: "crashloop-after-deploy",
      planner: "rules",
      fallback: "claude: refused to answer (cyber)",
    });
  });

  it("falls back to rules when Claude calls a skill that was not offered", async () => {
    const { mock, planner } = setup();
    // A real skill, but it does not match this alert, so it was not a tool.
    server.use(
      mock.toolUse("replicas-mismatch-scale", {
        namespace: "shop",
        deployment: "checkout",
        factor: 1.5,
        max: 20,
        rationale: "Scale.",
        confidence: 0.6,
      }),
    );
    const plan = await planner.plan(crashloop(), SKILLS);
    expect(plan).toMatchObject({
      skill: "crashloop-after-deploy",
      planner: "rules",
      fallback: 'claude: chose tool "replicas-mismatch-scale", which was not offered',
    });
  });

  it("falls back to rules when Claude makes more than one tool call", async () => {
    const { mock, planner } = setup();
    const input = { namespace: "shop", pod: "checkout-7d9f8-abcde", rationale: "Either.", confidence: 0.5 };
    server.use(
      mock.toolUses([
        { name: "restart-crashlooping", input },
        { name: "crashloop-after-deploy", input },
      ]),
    );
    const plan = await planner.plan(crashloop(), SKILLS);
    expect(plan).toMatchObject({
      skill: "crashloop-after-deploy",
      planner: "rules",
      fallback: "claude: answered 2 tool calls instead of one",
    });
  });

  it("falls back to rules on 529 overloaded without retrying", async () => {
    const { mock, planner, usage } = setup();
    server.use(mock.overloaded());
    const plan = await planner.plan(crashloop(), SKILLS);
    expect(plan).toMatchObject({
      skill: "crashloop-after-deploy",
      planner: "rules",
      fallback: "claude: overloaded (529)",
    });
    expect(mock.requests).toHaveLength(1);
    expect(usage).toEqual([]);
  });

  it("falls back to rules on 429 rate limited without waiting for retry-after", async () => {
    const { mock, planner } = setup();
    server.use(mock.rateLimited(30));
    const started = Date.now();
    const plan = await planner.plan(crashloop(), SKILLS);
    expect(plan).toMatchObject({
      skill: "crashloop-after-deploy",
      planner: "rules",
      fallback: "claude: rate limited (429), retry after 30 s",
    });
    expect(mock.requests).toHaveLength(1);
    // Before the 30 s retry-after could have passed.
    expect(Date.now() - started).toBeLessThan(30_000);
  });

  it("falls back to rules on a 500", async () => {
    const { mock, planner } = setup();
    server.use(mock.serverError());
    const plan = await planner.plan(crashloop(), SKILLS);
    expect(plan).toMatchObject({ planner: "rules", fallback: "claude: server error (500 api_error)" });
  });

  it("falls back to rules when the API rejects the key", async () => {
    const { planner } = setup();
    server.use(createAnthropicMock({ apiKey: "sk-ant-some-other-key" }).text("unused"));
    const plan = await planner.plan(crashloop(), SKILLS);
    expect(plan).toMatchObject({ planner: "rules", fallback: "claude: not authorized (401 authentication_error)" });
  });

  it("falls back to rules when no answer comes within timeoutMs", async () => {
    const { mock, planner, usage } = setup({ timeoutMs: 200 });
    server.use(mock.delayed(5000, "restart-crashlooping"));
    const plan = await planner.plan(crashloop(), SKILLS);
    // Rules, not the tool call that would have come after 5 s: the planner gave up first.
    expect(plan).toMatchObject({
      skill: "crashloop-after-deploy",
      planner: "rules",
      fallback: "claude: timeout after 200 ms",
    });
    expect(mock.requests).toHaveLength(1);
    expect(usage).toEqual([]);
  });

  it("falls back to rules when the headers come at once but the body stalls past timeoutMs", async () => {
    const { mock, planner } = setup({ timeoutMs: 200 });
    server.use(mock.stalledBody(5000));
    const plan = await planner.plan(crashloop(), SKILLS);
    // Rules, not the body that would have ended after 5 s: the planner gave up first.
    expect(plan).toMatchObject({ planner: "rules", fallback: "claude: timeout after 200 ms" });
  });

  it("does not call the API when no skill matches, and rules decide", async () => {
    const { mock, planner, usage } = setup();
    server.use(mock.toolUse("restart-crashlooping", { namespace: "x", pod: "y", rationale: "z", confidence: 1 }));
    const ctx = crashloop();
    ctx.incident.alertname = "Watchdog";
    ctx.labels = { alertname: "Watchdog", severity: "none" };
    const plan = await planner.plan(ctx, SKILLS);
    expect(plan).toBeNull();
    expect(mock.requests).toHaveLength(0);
    expect(usage).toEqual([]);
  });
});
