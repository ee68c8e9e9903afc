import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FastifyInstance } from "fastify";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult, Tool } from "@modelcontextprotocol/sdk/types.js";
import { createMemoryQueue } from "../../src/bus/memory.ts";
import { loadConfig } from "../../src/config/load.ts";
import { buildHttpApp } from "../../src/http/app.ts";
import { createMetrics } from "../../src/shared/metrics.ts";
import { createMcpAuth, mcpTokens } from "../../src/mcp/auth.ts";
import { hasScope, type Scope } from "../../src/mcp/tool.ts";
import { allTools } from "../../src/mcp/tools/index.ts";
import { createScheduler } from "../../src/schedules/scheduler.ts";
import { createScheduleService } from "../../src/schedules/service.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { Skill } from "../../src/skills/schema.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";
import { mcpTestDeps } from "../helpers/mcp.ts";

// The MCP protocol as a client sees it, through the real SDK Client over the real HTTP endpoint:
// which tools a token sees, protocol errors versus tool errors, capabilities, one semantics across
// tools (not_found, bad_cursor, ids, times), idempotency, annotations and portable output schemas.

const sqlite = (await storeFactories()).find((f) => f.name === "sqlite")!;
const uid = () => randomBytes(4).toString("hex");
const TOKENS: Record<Scope, string> = {
  read: "proto-reader-0123456789abcdef",
  write: "proto-writer-0123456789abcdef",
  approve: "proto-approver-0123456789abcdef",
  admin: "proto-admin-0123456789abcdef",
};
const SKILLS = [
  Skill.parse({
    name: "restart-service",
    description: "Restart the service",
    match: { alertname: ["ServiceDown"] },
    risk: "medium",
    approval: "before_run",
    action: {
      builtin: "restart",
      with: { namespace: "{{labels.namespace}}", deployment: "{{labels.service}}", why: "{{labels.severity}}" },
    },
  }),
];

type Outcome = { isError: boolean; text: string; data: any; meta: any };

describe("MCP protocol", () => {
  let store: TestStore;
  let app: FastifyInstance;
  let url: string;
  let dir: string;
  const queue = createMemoryQueue({ log: silentLogger });
  const clients = new Map<Scope, Client>();

  async function client(scope: Scope): Promise<Client> {
    let c = clients.get(scope);
    if (!c) {
      c = new Client({ name: "mcp-protocol-test", version: "1.0.0" });
      await c.connect(
        new StreamableHTTPClientTransport(new URL(url), {
          requestInit: { headers: { authorization: `Bearer ${TOKENS[scope]}` } },
        }),
      );
      clients.set(scope, c);
    }
    return c;
  }
  async function call(name: string, args: Record<string, unknown> = {}, scope: Scope = "admin"): Promise<Outcome> {
    const r = (await (await client(scope)).callTool({ name, arguments: args })) as CallToolResult;
    const text = r.content.map((c) => (c.type === "text" ? c.text : "")).join("\n");
    return { isError: !!r.isError, text, data: r.structuredContent, meta: r._meta };
  }
  async function ok(name: string, args: Record<string, unknown> = {}, scope: Scope = "admin"): Promise<any> {
    const r = await call(name, args, scope);
    if (r.isError) throw new Error(`${name} failed: ${r.text}`);
    return r.data;
  }
  /** A tool failure: its code ends the text and is in _meta. */
  async function failure(name: string, args: Record<string, unknown>): Promise<string> {
    const r = await call(name, args);
    expect(r.isError, `${name}: ${r.text}`).toBe(true);
    const code = r.meta?.["pitcrew/error"]?.code as string;
    expect(r.text, name).toMatch(new RegExp(`\\(${code.replace(/\./g, "\\.")}\\)$`));
    return code;
  }
  /** One raw JSON-RPC POST, as a client without the SDK would send it. */
  async function post(body: unknown, scope: Scope = "admin") {
    const res = await fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        authorization: `Bearer ${TOKENS[scope]}`,
      },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as any };
  }

  beforeAll(async () => {
    store = await sqlite.make();
    dir = mkdtempSync(join(tmpdir(), "pitcrew-mcp-protocol-"));
    const config = loadConfig({
      DATA_DIR: dir,
      SCHEDULES_DIR: join(dir, "schedules"),
      MCP_TOKENS: JSON.stringify(
        Object.entries(TOKENS).map(([scope, token]) => ({ name: scope, token, scopes: [scope] })),
      ),
    });
    const now = Date.now;
    const service = createScheduleService({ store, log: silentLogger, now, dir: join(dir, "schedules") });
    const scheduler = createScheduler({ store, log: silentLogger, now, skills: () => SKILLS, config });
    const deps = mcpTestDeps({ config, store, queue, skills: SKILLS, now }, { schedules: { service, scheduler } });
    const auth = createMcpAuth({ tokens: mcpTokens(config).tokens, log: silentLogger });
    app = await buildHttpApp({
      log: silentLogger,
      store,
      queue,
      metrics: createMetrics(),
      bodyLimit: 1_048_576,
      mcp: { deps, auth },
    });
    await app.listen({ port: 0, host: "127.0.0.1" });
    url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}/mcp`;
  });
  afterAll(async () => {
    await Promise.all([...clients.values()].map((c) => c.close()));
    await app?.close();
    await queue.close();
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("lists to each token only the tools its scopes allow, and refuses a call outside them with -32602 naming the scope", async () => {
    for (const scope of ["read", "write", "approve", "admin"] as const) {
      const { tools } = await (await client(scope)).listTools();
      const expected = allTools.filter((t) => hasScope({ scopes: new Set([scope]) }, t.scope)).map((t) => t.name);
      expect(tools.map((t) => t.name).sort(), scope).toEqual(expected.sort());
    }
    const reader = (await (await client("read")).listTools()).tools.map((t) => t.name);
    expect(reader).toContain("get_incident");
    expect(reader).not.toContain("submit_task");
    expect(reader).not.toContain("clear_queue");

    await expect(call("submit_task", { kind: "noop" }, "read")).rejects.toMatchObject({
      code: -32602,
      message: expect.stringContaining("tool submit_task needs the 'write' scope; this token has: read"),
      data: { "pitcrew/error": { code: "auth.missing_scope", scope: "write" } },
    });
    expect(await store.db.selectFrom("tasks").select("id").execute()).toEqual([]);
  });

  it("answers an unknown tool and invalid arguments with JSON-RPC -32602, a readable message and a Pitcrew code", async () => {
    await expect(call("drop_database", {})).rejects.toMatchObject({
      code: -32602,
      message: expect.stringContaining('unknown tool: "drop_database"'),
      data: { "pitcrew/error": { code: "tool.unknown" } },
    });
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ["list_tasks", { limit: 500 }, "limit: must be at most 200"],
      ["list_tasks", { limit: 0 }, "limit: must be at least 1"],
      [
        "list_tasks",
        { state: "done" },
        'state: must be one of "queued", "running", "succeeded", "failed", "cancelled"',
      ],
      ["get_task", {}, "task_id: is required"],
      ["get_task", { task_id: 42 }, "task_id: must be a string"],
      ["add_incident_note", { incident_id: "inc_x", text: "" }, "text: must not be empty"],
      ["list_tasks", { limit: 10, bogus: true }, 'unknown argument "bogus"'],
    ];
    for (const [tool, args, message] of cases) {
      await expect(call(tool, args), `${tool} ${JSON.stringify(args)}`).rejects.toMatchObject({
        code: -32602,
        message: expect.stringContaining(`invalid arguments for ${tool}: ${message}`),
        data: { "pitcrew/error": { code: "request.invalid_params" } },
      });
    }
    // Over the wire: a JSON-RPC error in the body, not a tool result, and no validator dump.
    const raw = await post({
      jsonrpc: "2.0",
      id: 7,
      method: "tools/call",
      params: { name: "list_tasks", arguments: { limit: 500 } },
    });
    expect(raw.status).toBe(200);
    expect(raw.body.result).toBeUndefined();
    expect(raw.body.error).toEqual({
      code: -32602,
      message: "invalid arguments for list_tasks: limit: must be at most 200",
      data: {
        "pitcrew/error": {
          code: "request.invalid_params",
          issues: [{ path: "limit", message: "must be at most 200" }],
        },
      },
    });
  });

  it("does not claim tools.listChanged, which a stateless server never sends", async () => {
    const caps = (await client("read")).getServerCapabilities();
    expect(caps?.tools).toBeDefined();
    expect(caps?.tools?.listChanged).toBeUndefined();
    const raw = await post({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "curl", version: "1" } },
    });
    expect(raw.body.result.capabilities.tools).toEqual({});
  });

  it("ends every expected tool failure with its Pitcrew code, in the text and in _meta", async () => {
    expect(await failure("get_task", { task_id: "tsk_missing" })).toBe("task.not_found");
    expect(await failure("submit_task", { kind: "prompt" })).toBe("task.prompt_required");
    expect(await failure("clear_queue", { confirm: false })).toBe("queue.confirm_required");
    expect(await failure("approve_action", {})).toBe("approval.ref_required");
    expect(await failure("list_events", {})).toBe("event.scope_required");
    const r = await call("get_task", { task_id: "tsk_missing" });
    expect(r.meta).toEqual({ "pitcrew/error": { code: "task.not_found", kind: "not_found", retryable: false } });
    expect(r.data).toBeUndefined();
  });

  it("names an unknown id <kind>.not_found and a malformed cursor <kind>.bad_cursor in every tool", async () => {
    const missing: Array<[string, Record<string, unknown>, string]> = [
      ["get_task", { task_id: "tsk_nope" }, "task.not_found"],
      ["get_task_progress", { task_id: "tsk_nope" }, "task.not_found"],
      ["cancel_task", { task_id: "tsk_nope" }, "task.not_found"],
      ["retry_task", { task_id: "tsk_nope" }, "task.not_found"],
      ["get_latest_event", { task_id: "tsk_nope" }, "task.not_found"],
      ["get_incident", { incident_id: "inc_nope" }, "incident.not_found"],
      ["analyze_incident", { incident_id: "inc_nope" }, "incident.not_found"],
      ["escalate_incident", { incident_id: "inc_nope", reason: "x" }, "incident.not_found"],
      ["resolve_incident", { incident_id: "inc_nope", reason: "x" }, "incident.not_found"],
      ["add_incident_note", { incident_id: "inc_nope", text: "x" }, "incident.not_found"],
      ["get_latest_event", { incident_id: "inc_nope" }, "incident.not_found"],
      ["approve_action", { incident_id: "inc_nope" }, "incident.not_found"],
      ["reject_action", { incident_id: "inc_nope" }, "incident.not_found"],
      ["rebuild_fix", { incident_id: "inc_nope" }, "incident.not_found"],
      ["approve_action", { approval_id: "apr_nope" }, "approval.not_found"],
      ["reject_action", { approval_id: "apr_nope" }, "approval.not_found"],
      ["get_skill", { name: "nope" }, "skill.not_found"],
      ["run_skill", { skill: "nope", incident_id: "inc_nope" }, "skill.not_found"],
      ["run_skill", { skill: "restart-service", incident_id: "inc_nope" }, "incident.not_found"],
      ["get_schedule", { name: "nope" }, "schedule.not_found"],
      ["update_schedule", { name: "nope", enabled: false }, "schedule.not_found"],
      ["delete_schedule", { name: "nope" }, "schedule.not_found"],
      ["run_schedule", { name: "nope" }, "schedule.not_found"],
      ["redeliver_webhook", { delivery_id: "dlv_nope" }, "delivery.not_found"],
      ["delete_webhook", { name: "nope" }, "webhook.not_found"],
    ];
    for (const [tool, args, code] of missing)
      expect(await failure(tool, args), `${tool} ${JSON.stringify(args)}`).toBe(code);

    const cursors: Array<[string, Record<string, unknown>, string]> = [
      ["list_tasks", {}, "task.bad_cursor"],
      ["list_incidents", {}, "incident.bad_cursor"],
      ["list_approvals", {}, "approval.bad_cursor"],
      ["list_deliveries", {}, "delivery.bad_cursor"],
      ["list_schedules", {}, "schedule.bad_cursor"],
      ["list_events", { task_id: "tsk_nope" }, "event.bad_cursor"],
    ];
    for (const [tool, args, code] of cursors) {
      expect(await failure(tool, { ...args, cursor: "not a cursor!" }), tool).toBe(code);
      expect(await failure(tool, { ...args, cursor: "-1" }), tool).toBe(code);
    }
    // The cursor a list hands out is accepted back.
    for (let i = 0; i < 3; i++) await ok("submit_task", { kind: "noop" });
    const page = await ok("list_tasks", { limit: 2 });
    expect((await ok("list_tasks", { limit: 2, cursor: page.next_cursor })).tasks.length).toBeGreaterThan(0);
  });

  it("names ids one way in inputs and outputs (id for the object, <kind>_id for a reference) and writes every time as ISO 8601", async () => {
    const { tools } = await (await client("admin")).listTools();
    const keys = new Set<string>();
    const collect = (s: any) => {
      if (!s || typeof s !== "object") return;
      for (const [k, v] of Object.entries((s.properties ?? {}) as Record<string, unknown>)) {
        keys.add(k);
        collect(v);
      }
      for (const sub of [s.items, s.additionalProperties, ...(s.anyOf ?? [])]) collect(sub);
    };
    for (const t of tools) {
      collect(t.inputSchema);
      collect(t.outputSchema);
    }
    for (const k of keys) {
      expect(k, "snake_case").toMatch(/^[a-z][a-z0-9_]*$/);
      expect(k, "a reference is <kind>_id, not <kind>Id").not.toMatch(/[a-z]Id$/);
      // A reference may say what for (analysis_task_id, running_task_ids); its last word is the kind.
      if (/_ids?$/.test(k))
        expect(
          k
            .replace(/_ids?$/, "")
            .split("_")
            .pop(),
          k,
        ).toMatch(/^(incident|task|approval|delivery|event|runner)$/);
    }
    // Every input <kind>_id comes back under the same name somewhere in that tool's output.
    for (const t of tools) {
      const out = new Set<string>();
      const walk = (s: any) => {
        if (!s || typeof s !== "object") return;
        for (const [k, v] of Object.entries((s.properties ?? {}) as Record<string, unknown>)) {
          out.add(k);
          walk(v);
        }
        for (const sub of [s.items, ...(s.anyOf ?? [])]) walk(sub);
      };
      walk(t.outputSchema);
      for (const k of Object.keys((t.inputSchema.properties ?? {}) as object).filter((k) => k.endsWith("_id"))) {
        const kind = k.slice(0, -3);
        expect(out.has(k) || out.has(kind) || out.has(`${kind}s`), `${t.name}: ${k} in, nothing of it out`).toBe(true);
      }
    }

    const { incident } = await ok("create_incident", { title: `times ${uid()}`, namespace: "shop" });
    const { task } = await ok("submit_task", { kind: "noop" });
    const answers = [
      await ok("get_incident", { incident_id: incident.id }),
      await ok("get_task", { task_id: task.id }),
      await ok("list_events", { task_id: task.id }),
      await ok("get_task_progress", { task_id: task.id }),
      await ok("pause_automation", {}),
      await ok("system_status", {}),
      await ok("resume_automation", {}),
    ];
    let checked = 0;
    const iso = (v: unknown, path: string) => {
      if (v === null) return;
      expect(typeof v, path).toBe("string");
      expect(new Date(v as string).toISOString(), path).toBe(v);
      checked++;
    };
    const walkValue = (v: unknown, path: string) => {
      if (Array.isArray(v)) v.forEach((x, i) => walkValue(x, `${path}[${i}]`));
      else if (v && typeof v === "object") {
        for (const [k, x] of Object.entries(v)) {
          if ((k.endsWith("_at") || k === "at") && !path.includes(".payload") && !path.includes(".data"))
            iso(x, `${path}.${k}`);
          else walkValue(x, `${path}.${k}`);
        }
      }
    };
    answers.forEach((a, i) => walkValue(a, `answer${i}`));
    expect(checked).toBeGreaterThanOrEqual(7);
    expect((await ok("system_status", {})).paused.at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it("create_incident: an idempotency key returns the first incident, refuses other fields, and its service and severity reach skill templates", async () => {
    const key = `k-${uid()}`;
    const args = {
      title: "Checkout down",
      namespace: "shop",
      service: "checkout",
      severity: "critical",
      alertname: "ServiceDown",
      labels: { team: "pay" },
      idempotency_key: key,
    };
    const first = await ok("create_incident", args);
    expect(first.created).toBe(true);
    expect(first.incident.labels).toEqual({
      team: "pay",
      namespace: "shop",
      service: "checkout",
      severity: "critical",
      alertname: "ServiceDown",
    });
    const again = await ok("create_incident", { ...args, labels: { team: "pay" } });
    expect(again).toMatchObject({
      created: false,
      incident: { id: first.incident.id },
      analysis_task_id: first.analysis_task_id,
    });
    expect(
      await store.db.selectFrom("incidents").select("id").where("title", "=", "Checkout down").execute(),
    ).toHaveLength(1);

    expect(await failure("create_incident", { ...args, severity: "warning" })).toBe("incident.idempotency_conflict");
    // Concurrent first calls with a new key open one incident.
    const raceKey = `race-${uid()}`;
    const raced = await Promise.all(
      [1, 2, 3].map(() => ok("create_incident", { title: "Raced", idempotency_key: raceKey })),
    );
    expect(new Set(raced.map((r) => r.incident.id)).size).toBe(1);
    expect(raced.filter((r) => r.created)).toHaveLength(1);

    const dry = await ok("run_skill", { skill: "restart-service", incident_id: first.incident.id });
    expect(dry.params).toEqual({ namespace: "shop", deployment: "checkout", why: "critical" });

    const many = Object.fromEntries(Array.from({ length: 201 }, (_, i) => [`l${i}`, "v"]));
    await expect(call("create_incident", { title: "too many", labels: many })).rejects.toMatchObject({
      code: -32602,
      message: expect.stringContaining("labels: must have at most 200 labels"),
    });
    await expect(
      call("create_incident", { title: "too long", labels: { big: "x".repeat(16_385) } }),
    ).rejects.toMatchObject({
      code: -32602,
      message: expect.stringContaining("labels.big: must be at most 16384 characters"),
    });

    const taskKey = `t-${uid()}`;
    const t1 = await ok("submit_task", { kind: "noop", steps: 2, idempotency_key: taskKey });
    expect(await ok("submit_task", { kind: "noop", steps: 2, idempotency_key: taskKey })).toMatchObject({
      created: false,
      task: { id: t1.task.id },
    });
    expect(await failure("submit_task", { kind: "noop", steps: 3, idempotency_key: taskKey })).toBe(
      "task.idempotency_conflict",
    );
  });

  it("annotates tools truthfully, and a repeat of an idempotent cancel is a success", async () => {
    const { tools } = await (await client("admin")).listTools();
    const byName = new Map<string, Tool>(tools.map((t) => [t.name, t]));
    for (const t of tools) {
      expect(typeof t.annotations?.readOnlyHint, t.name).toBe("boolean");
      expect(typeof t.annotations?.openWorldHint, t.name).toBe("boolean");
      if (t.annotations?.readOnlyHint) expect(t.annotations.destructiveHint, t.name).toBeUndefined();
      else expect(typeof t.annotations?.destructiveHint, t.name).toBe("boolean");
      expect(t.name.startsWith("get_") || t.name.startsWith("list_") ? t.annotations?.readOnlyHint : true, t.name).toBe(
        true,
      );
    }
    for (const n of [
      "approve_action",
      "reject_action",
      "rebuild_fix",
      "run_skill",
      "submit_task",
      "retry_task",
      "redeliver_webhook",
      "resolve_incident",
      "analyze_incident",
      "run_schedule",
    ]) {
      expect(byName.get(n)?.annotations?.openWorldHint, n).toBe(true);
    }
    for (const n of ["get_incident", "list_tasks", "create_incident", "add_incident_note", "pause_automation"])
      expect(byName.get(n)?.annotations?.openWorldHint, n).toBe(false);
    for (const n of [
      "resolve_incident",
      "delete_schedule",
      "delete_webhook",
      "cancel_task",
      "clear_queue",
      "reject_action",
    ])
      expect(byName.get(n)?.annotations?.destructiveHint, n).toBe(true);
    for (const n of ["cancel_task", "clear_queue", "pause_automation", "update_schedule"])
      expect(byName.get(n)?.annotations?.idempotentHint, n).toBe(true);

    const { task } = await ok("submit_task", { kind: "noop" });
    const first = await ok("cancel_task", { task_id: task.id });
    const second = await call("cancel_task", { task_id: task.id });
    expect(second.isError).toBe(false);
    expect(second.data).toEqual(first);
    const cancels = await store.db
      .selectFrom("events")
      .select("id")
      .where("task_id", "=", task.id)
      .where("type", "=", "task.cancelled")
      .execute();
    expect(cancels).toHaveLength(1);
  });

  it("writes tool schemas in the subset common clients accept: one type per node, nullable as anyOf with null, nothing left unconstrained", async () => {
    const { tools } = await (await client("admin")).listTools();
    // Free-form objects, where the shape is not Pitcrew's to know: a task's payload (by kind), an
    // event's data (by type), a skill's parameters, a scheduled task's fields, a runner's result.
    const FREE_OBJECT = /\.(payload|data|params|with|task|result\|\d|set\|\d|append\|\d)$/;
    const CONSTRAINING = [
      "type",
      "enum",
      "const",
      "anyOf",
      "properties",
      "additionalProperties",
      "items",
      "required",
      "minimum",
      "maximum",
      "minLength",
      "maxLength",
      "pattern",
    ];
    const problems: string[] = [];
    const check = (s: any, path: string) => {
      if (typeof s === "boolean") return problems.push(`${path}: bare ${s}`);
      for (const bad of ["oneOf", "allOf", "not", "$ref", "if", "nullable"])
        if (bad in s) problems.push(`${path}: ${bad}`);
      // What the MCP Inspector's --strict lint warns about: a type list, a node that constrains nothing.
      if (Array.isArray(s.type)) problems.push(`${path}: type ${JSON.stringify(s.type)}`);
      if (!CONSTRAINING.some((k) => k in s)) problems.push(`${path}: constrains nothing`);
      if (s.type === "object" && !s.properties && s.additionalProperties === true && !FREE_OBJECT.test(path))
        problems.push(`${path}: free-form object`);
      if (s.anyOf) {
        const nulls = s.anyOf.filter((x: any) => x.type === "null").length;
        if (nulls === 1 && s.anyOf.length !== 2 && !FREE_OBJECT.test(`${path}|0`))
          problems.push(`${path}: nullable anyOf of ${s.anyOf.length}`);
        s.anyOf.forEach((x: any, i: number) => check(x, `${path}|${i}`));
      }
      for (const [k, v] of Object.entries((s.properties ?? {}) as Record<string, unknown>)) check(v, `${path}.${k}`);
      if (s.items) check(s.items, `${path}[]`);
      if (s.additionalProperties !== undefined && s.additionalProperties !== true && s.additionalProperties !== false)
        check(s.additionalProperties, `${path}{}`);
    };
    for (const t of tools) {
      check(t.outputSchema, `${t.name}`);
      check(t.inputSchema, `${t.name}<in>`);
    }
    expect(problems.join("\n")).toBe("");
    // The forms in use, as a client sees them.
    const task = (tools.find((t) => t.name === "get_task")!.outputSchema as any).properties.task.properties;
    expect(task.incident_id).toEqual({
      description: expect.any(String),
      anyOf: [{ type: "string" }, { type: "null" }],
    });
    expect(task.payload).toMatchObject({ type: "object", additionalProperties: true });
    expect(task.result.anyOf.map((x: any) => x.type)).toEqual([
      "object",
      "array",
      "string",
      "number",
      "boolean",
      "null",
    ]);
    const inc = (tools.find((t) => t.name === "get_incident")!.outputSchema as any).properties.incident.properties;
    expect(inc.plan.anyOf.map((x: any) => x.type)).toEqual(["object", "null"]);
    expect(Object.keys(inc.plan.anyOf[0].properties)).toEqual(
      expect.arrayContaining(["skill", "params", "rationale", "risk", "approval"]),
    );
    // The SDK Client checked every result in this file against these schemas; one more, end to end.
    const { incident } = await ok("create_incident", { title: `schema ${uid()}` });
    expect((await call("get_incident", { incident_id: incident.id })).isError).toBe(false);
  });
});
