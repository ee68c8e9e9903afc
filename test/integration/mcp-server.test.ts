import { createServer, type Server } from "node:http";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from "jose";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { createMemoryQueue } from "../../src/bus/memory.ts";
import { loadConfig, type Config } from "../../src/config/load.ts";
import { buildHttpApp } from "../../src/http/app.ts";
import { createMetrics } from "../../src/shared/metrics.ts";
import { createMcpAuth, mcpTokens } from "../../src/mcp/auth.ts";
import { createMcpServer } from "../../src/mcp/server.ts";
import { defineTool, type McpDeps } from "../../src/mcp/tool.ts";
import { allTools } from "../../src/mcp/tools/index.ts";
import { AppError } from "../../src/shared/errors.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { loadOrCreateToken } from "../../src/shared/secrets.ts";
import { VERSION } from "../../src/shared/version.ts";
import { getPause, setPause } from "../../src/system/settings.ts";
import { loadSkills } from "../../src/skills/load.ts";
import { waitFor } from "../helpers/wait.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";
import { spawnPitcrew } from "../helpers/process.ts";
import { mcpTestDeps } from "../helpers/mcp.ts";

const sqlite = (await storeFactories()).find((f) => f.name === "sqlite")!;
const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "pitcrew-mcp-"));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const SKILLS = loadSkills("skills").skills;
const ADMIN = "admin-token-0123456789abcdef";
const READER = "reader-token-0123456789abcdef";
const WRITER = "writer-token-0123456789abcdef";
const AUDIENCE = "pitcrew-test";

/** A local OIDC issuer: discovery document plus JWKS, and a signer for its tokens. */
async function startIssuer() {
  const { publicKey, privateKey } = await generateKeyPair("RS256");
  const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "RS256", use: "sig" };
  let hits = 0;
  const server: Server = createServer((req, res) => {
    hits++;
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    res.setHeader("content-type", "application/json");
    if (req.url === "/.well-known/openid-configuration")
      res.end(JSON.stringify({ issuer: base, jwks_uri: `${base}/keys` }));
    else if (req.url === "/keys") res.end(JSON.stringify({ keys: [jwk] }));
    else res.writeHead(404).end("{}");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const issuer = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const sign = (claims: { scope?: unknown; aud?: string; exp?: number; sub?: string }, key: CryptoKey = privateKey) => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ scope: claims.scope })
      .setProtectedHeader({ alg: "RS256", kid: "k1" })
      .setIssuer(issuer)
      .setAudience(claims.aud ?? AUDIENCE)
      .setSubject(claims.sub ?? "alice")
      .setIssuedAt(now - 300)
      .setExpirationTime(claims.exp ?? now + 300)
      .sign(key);
  };
  return { issuer, sign, hits: () => hits, close: () => new Promise<void>((r) => server.close(() => r())) };
}

function testDeps(config: Config, store: TestStore, queue: ReturnType<typeof createMemoryQueue>): McpDeps {
  return mcpTestDeps({ config, store, queue, skills: SKILLS });
}

const text = (r: unknown) => ((r as CallToolResult).content[0] as { text: string }).text;

describe("MCP over Streamable HTTP", () => {
  let store: TestStore;
  let app: FastifyInstance;
  let url: string;
  let issuer: Awaited<ReturnType<typeof startIssuer>>;
  const queue = createMemoryQueue({ log: silentLogger });
  const clients: Client[] = [];

  async function connect(token: string): Promise<Client> {
    const client = new Client({ name: "pitcrew-test", version: "1.0.0" });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(url), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    );
    clients.push(client);
    return client;
  }

  /** One raw JSON-RPC POST, as curl would send it. */
  async function post(
    headers: Record<string, string>,
    body: unknown = { jsonrpc: "2.0", id: 1, method: "tools/list" },
  ) {
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers },
      body: JSON.stringify(body),
    });
    return { status: res.status, headers: res.headers, body: (await res.json().catch(() => undefined)) as any };
  }

  beforeAll(async () => {
    store = await sqlite.make();
    issuer = await startIssuer();
    const config = loadConfig({
      DATA_DIR: tempDir(),
      MCP_TOKENS: JSON.stringify([
        { name: "ops", token: ADMIN, scopes: ["admin"] },
        { name: "dashboard", token: READER, scopes: ["read"] },
        { name: "ci", token: WRITER, scopes: ["write"] },
      ]),
      MCP_OIDC_ISSUER: issuer.issuer,
      MCP_OIDC_AUDIENCE: AUDIENCE,
      MCP_ALLOWED_ORIGINS: "http://good.example",
    });
    const auth = createMcpAuth({ tokens: mcpTokens(config).tokens, oidc: config.mcp.oidc, log: silentLogger });
    app = await buildHttpApp({
      log: silentLogger,
      store,
      queue,
      metrics: createMetrics(),
      bodyLimit: 1_048_576,
      mcp: { deps: testDeps(config, store, queue), auth },
    });
    await app.listen({ port: 0, host: "127.0.0.1" });
    url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}/mcp`;
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await app?.close();
    await issuer?.close();
    await queue.close();
    await store?.close();
  });

  it("initializes and names the server", async () => {
    const client = await connect(ADMIN);
    expect(client.getServerVersion()).toMatchObject({ name: "pitcrew", version: VERSION });
    expect(client.getServerCapabilities()?.tools).toBeDefined();
  });

  it("lists every tool with input and output schemas, and a description on every input field", async () => {
    const client = await connect(ADMIN);
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(allTools.map((t) => t.name).sort());
    expect(tools.map((t) => t.name)).toContain("system_status");
    for (const t of tools) {
      expect(t.name, t.name).toMatch(/^[a-z]+(_[a-z]+)+$/);
      expect(t.inputSchema.type, t.name).toBe("object");
      expect(t.outputSchema?.type, t.name).toBe("object");
      expect(t.description, t.name).toBeTruthy();
      for (const [field, schema] of Object.entries(t.inputSchema.properties ?? {})) {
        expect((schema as { description?: string }).description, `${t.name}.${field}`).toBeTruthy();
      }
    }
  });

  it("calls a tool of every family over HTTP, and the effects land in the store and the queue", async () => {
    const client = await connect(ADMIN);
    const published: string[] = [];
    const sub = queue.consumeTasks("default", { concurrency: 8 }, async (d) => {
      published.push((d.data as { taskId: string }).taskId);
      await d.ack();
    });
    try {
      // tasks
      const submitted = await client.callTool({ name: "submit_task", arguments: { kind: "noop" } });
      expect(submitted.isError, text(submitted)).toBeFalsy();
      const taskId = (submitted.structuredContent as { task: { id: string } }).task.id;
      expect(
        (await store.db.selectFrom("tasks").select("state").where("id", "=", taskId).executeTakeFirstOrThrow()).state,
      ).toBe("queued");
      expect(await store.db.selectFrom("outbox").select("id").where("msg_id", "=", taskId).execute()).toHaveLength(1);
      // events
      const events = await client.callTool({ name: "list_events", arguments: { task_id: taskId } });
      expect((events.structuredContent as { events: Array<{ type: string }> }).events.map((e) => e.type)).toEqual([
        "task.created",
      ]);
      // incidents
      const created = await client.callTool({
        name: "create_incident",
        arguments: { title: "Checkout latency over SLO", namespace: "shop", severity: "critical" },
      });
      expect(created.isError, text(created)).toBeFalsy();
      const incidentId = (created.structuredContent as { incident: { id: string } }).incident.id;
      const inc = await store.db
        .selectFrom("incidents")
        .selectAll()
        .where("id", "=", incidentId)
        .executeTakeFirstOrThrow();
      expect(inc).toMatchObject({ state: "detected", source: "mcp", namespace: "shop" });
      expect(
        await store.db
          .selectFrom("tasks")
          .select("id")
          .where("incident_id", "=", incidentId)
          .where("kind", "=", "incident.analyze")
          .execute(),
      ).toHaveLength(1);
      // skills, fleet
      const listed = await client.callTool({ name: "list_skills", arguments: {} });
      expect(
        (listed.structuredContent as { skills: Array<{ name: string }> }).skills.map((x) => x.name).sort(),
      ).toEqual(SKILLS.map((x) => x.name).sort());
      const fleet = await client.callTool({ name: "fleet_status", arguments: {} });
      // The noop task and the incident's analysis job.
      expect((fleet.structuredContent as { tasks_by_state: Record<string, number> }).tasks_by_state.queued).toBe(2);
      // system
      await client.callTool({ name: "pause_automation", arguments: { reason: "drill" } });
      const row = await store.db
        .selectFrom("settings")
        .select("value")
        .where("key", "=", "automation.paused")
        .executeTakeFirstOrThrow();
      expect(JSON.parse(row.value)).toEqual({ paused: true, reason: "drill" });
      await client.callTool({ name: "resume_automation", arguments: {} });
      expect((await getPause(store.db)).paused).toBe(false);
      // The queued task reached the queue through the outbox.
      const { createOutboxRelay } = await import("../../src/bus/outbox.ts");
      await createOutboxRelay(
        { store, queue, log: silentLogger },
        { intervalMs: 10, batch: 100, retentionMs: 86_400_000 },
      ).runOnce();
      await waitFor(() => published.includes(taskId), 5000);
    } finally {
      await sub.stop();
    }
  });

  it("answers system_status with structured content that follows the pause switch", async () => {
    const client = await connect(READER);
    const before = await client.callTool({ name: "system_status", arguments: {} });
    expect(before.isError).toBeFalsy();
    const tokens = `tokens: ops; JWTs from ${issuer.issuer} with the approve scope`;
    expect(before.structuredContent).toEqual({
      version: VERSION,
      mode: "embedded",
      store: { ok: true, detail: "ok", dialect: "sqlite", location: expect.stringMatching(/\/pitcrew\.db$/) },
      queue: { ok: true, detail: "ok", kind: "memory", servers: [] },
      // Other tests may have paused and resumed before: only the switch matters here.
      paused: expect.objectContaining({ paused: false }),
      // The setup the start banner shows (src/system/setup.ts builds both).
      gitops: { provider: "local", repository: expect.stringMatching(/\/gitops\.git$/), base_branch: "main" },
      dry_run: false,
      auto_approve_max_risk: "read",
      approval_channels: [
        { channel: "mcp", who: tokens },
        { channel: "console", who: tokens },
      ],
      agent_clis: ["claude-code", "codex", "opencode"].map((agent) =>
        expect.objectContaining({ agent, default: agent === "claude-code" }),
      ),
      agent_cli_scope: "in-process runners",
      skills: { loaded: SKILLS.map((s) => s.name), failed: [] },
    });
    expect(text(before)).toMatch(/embedded: healthy; automation running/);

    await setPause(store, true, { actor: "test", channel: "cli", reason: "maintenance" }, Date.now());
    try {
      const after = await client.callTool({ name: "system_status", arguments: {} });
      expect(after.structuredContent).toMatchObject({ paused: { paused: true, by: "test", reason: "maintenance" } });
      expect(text(after)).toMatch(/automation PAUSED \(maintenance\)/);
    } finally {
      await setPause(store, false, { actor: "test", channel: "cli" }, Date.now());
    }
  });

  it("refuses a request without a token with 401 and a Bearer challenge", async () => {
    const res = await post({});
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe(
      'Bearer resource_metadata="http://localhost:18088/.well-known/oauth-protected-resource/mcp"',
    );
    expect(res.body.error).toMatchObject({ code: "auth.invalid_token", message: "missing bearer token" });
    await expect(connect("")).rejects.toThrow();
  });

  it("refuses a wrong token with 401", async () => {
    const res = await post({ authorization: `Bearer ${ADMIN.slice(0, -1)}x` });
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer /);
    expect(res.body.error.code).toBe("auth.invalid_token");
    await expect(connect("not-a-token-at-all-but-long-enough")).rejects.toThrow();
  });

  it("answers a tool call outside the token's scopes with a JSON-RPC error naming the scope it lacks", async () => {
    const client = await connect(WRITER);
    await expect(client.callTool({ name: "system_status", arguments: {} })).rejects.toMatchObject({
      code: -32602,
      message: expect.stringContaining("tool system_status needs the 'read' scope; this token has: write"),
      data: { "pitcrew/error": { code: "auth.missing_scope", scope: "read" } },
    });
  });

  it("accepts a JWT from the configured issuer, found through its discovery document", async () => {
    const client = await connect(await issuer.sign({ scope: "openid pitcrew:read" }));
    const r = await client.callTool({ name: "system_status", arguments: {} });
    expect(r.isError).toBeFalsy();
    expect(r.structuredContent).toMatchObject({ mode: "embedded" });
    expect(issuer.hits()).toBeGreaterThanOrEqual(2);
  });

  it("reads scopes given as an array claim", async () => {
    const client = await connect(await issuer.sign({ scope: ["read"] }));
    expect((await client.callTool({ name: "system_status", arguments: {} })).isError).toBeFalsy();
  });

  it("refuses an expired JWT with 401", async () => {
    const res = await post({
      authorization: `Bearer ${await issuer.sign({ scope: "read", exp: Math.floor(Date.now() / 1000) - 120 })}`,
    });
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer /);
    expect(res.body.error.message).toBe("the token has expired");
  });

  it("refuses a JWT for another audience with 401", async () => {
    const res = await post({ authorization: `Bearer ${await issuer.sign({ scope: "read", aud: "someone-else" })}` });
    expect(res.status).toBe(401);
    expect(res.body.error.message).toMatch(/"aud"/);
  });

  it("refuses a JWT signed by a key the issuer does not publish with 401", async () => {
    const other = await generateKeyPair("RS256");
    const res = await post({ authorization: `Bearer ${await issuer.sign({ scope: "read" }, other.privateKey)}` });
    expect(res.status).toBe(401);
  });

  it("answers a JWT without the scope with an error naming the scope, and lists no tools to it", async () => {
    const client = await connect(await issuer.sign({ scope: "openid profile" }));
    await expect(client.callTool({ name: "system_status", arguments: {} })).rejects.toMatchObject({
      code: -32602,
      message: expect.stringContaining("this token has: no scopes"),
    });
    expect((await client.listTools()).tools).toEqual([]);
  });

  it("refuses a cross-origin browser request with 403, and lets an allowed origin through", async () => {
    const evil = await post({ authorization: `Bearer ${ADMIN}`, origin: "http://evil.example" });
    expect(evil.status).toBe(403);
    expect(evil.body.error.code).toBe("mcp.origin_not_allowed");
    const good = await post(
      { authorization: `Bearer ${ADMIN}`, origin: "http://good.example" },
      {
        jsonrpc: "2.0",
        id: 1,
        method: "initialize",
        params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "curl", version: "1" } },
      },
    );
    expect(good.status).toBe(200);
    expect(good.body.result.serverInfo.name).toBe("pitcrew");
  });

  it("answers GET and DELETE /mcp with 405 and Allow: POST", async () => {
    for (const method of ["GET", "DELETE"]) {
      const res = await fetch(url, {
        method,
        headers: { authorization: `Bearer ${ADMIN}`, accept: "text/event-stream" },
      });
      expect(res.status, method).toBe(405);
      expect(res.headers.get("allow"), method).toBe("POST");
      await res.body?.cancel();
    }
  });
});

describe("MCP tool error mapping", () => {
  const failing = [
    defineTool({
      name: "fail_expected",
      title: "Fails as expected",
      description: "Throws an AppError.",
      scope: "read",
      input: { id: z.string().describe("An id.") },
      output: { ok: z.boolean().describe("Never returned.") },
      annotations: { readOnlyHint: true, openWorldHint: false },
      async handler(args) {
        throw new AppError("not_found", "thing.not_found", `thing ${args.id} does not exist`);
      },
    }),
    defineTool({
      name: "fail_unexpected",
      title: "Fails unexpectedly",
      description: "Throws a plain Error.",
      scope: "read",
      input: {},
      output: { ok: z.boolean().describe("Never returned.") },
      annotations: { readOnlyHint: true, openWorldHint: false },
      async handler() {
        throw new Error("secret internals: password=hunter2");
      },
    }),
  ];

  it("turns an AppError into its message and code, and hides anything else behind 'internal error'", async () => {
    const store = await sqlite.make();
    const queue = createMemoryQueue({ log: silentLogger });
    const deps = testDeps(loadConfig({ DATA_DIR: tempDir() }), store, queue);
    const server = createMcpServer(deps, { subject: "t", scopes: new Set(["read"]), via: "token" }, failing);
    const [a, b] = InMemoryTransport.createLinkedPair();
    const client = new Client({ name: "t", version: "1" });
    await Promise.all([server.connect(a), client.connect(b)]);
    try {
      const expected = await client.callTool({ name: "fail_expected", arguments: { id: "x1" } });
      expect(expected.isError).toBe(true);
      expect(text(expected)).toBe("thing x1 does not exist (thing.not_found)");
      expect(expected._meta).toMatchObject({
        "pitcrew/error": { code: "thing.not_found", kind: "not_found", retryable: false },
      });

      const unexpected = await client.callTool({ name: "fail_unexpected", arguments: {} });
      expect(unexpected.isError).toBe(true);
      expect(text(unexpected)).toBe("internal error (internal)");
      expect(JSON.stringify(unexpected)).not.toContain("hunter2");
    } finally {
      await client.close();
      await server.close();
      await queue.close();
      await store.close();
    }
  });
});

describe("the generated MCP token", () => {
  it("is written with mode 0600 in a 0700 folder, reused on the next start, and accepted as admin", async () => {
    const config = loadConfig({ DATA_DIR: tempDir() });
    const first = mcpTokens(config);
    expect(first.generated?.created).toBe(true);
    const path = first.generated!.path;
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(dirname(path)).mode & 0o777).toBe(0o700);
    expect(Buffer.from(first.generated!.token, "base64url")).toHaveLength(32);

    const again = loadOrCreateToken(config.dataDir, "mcp");
    expect(again).toEqual({ token: first.generated!.token, created: false, path });
    expect(mcpTokens(config).generated?.created).toBe(false);

    const auth = createMcpAuth({ tokens: first.tokens, log: silentLogger });
    const ok = await auth.authenticate(`Bearer ${first.generated!.token}`);
    expect(ok.ok && [...ok.principal.scopes]).toEqual(["admin"]);
    expect((await auth.authenticate(`Bearer ${first.generated!.token}x`)).ok).toBe(false);
  });

  it("is not generated when MCP_TOKENS is set", () => {
    const config = loadConfig({
      DATA_DIR: tempDir(),
      MCP_TOKENS: JSON.stringify([{ name: "ci", token: WRITER, scopes: ["write"] }]),
    });
    expect(mcpTokens(config)).toEqual({ tokens: [{ name: "ci", token: WRITER, scopes: ["write"] }] });
  });

  it("is shown by `pitcrew token` and replaced by `pitcrew token --rotate`", async () => {
    const dataDir = join(tempDir(), "data");
    const shown = spawnPitcrew(["token"], { DATA_DIR: dataDir });
    expect((await shown.exited).code).toBe(0);
    const token = loadOrCreateToken(dataDir, "mcp").token;
    expect(shown.stdout()).toContain(token);
    expect(shown.stdout()).toContain(join(dataDir, "secrets", "mcp.token"));

    const rotated = spawnPitcrew(["token", "--rotate"], { DATA_DIR: dataDir });
    expect((await rotated.exited).code).toBe(0);
    const next = loadOrCreateToken(dataDir, "mcp").token;
    expect(next).not.toBe(token);
    expect(rotated.stdout()).toContain(next);
    expect(rotated.stdout()).toMatch(/restart/);
  });
});
