import { Client as ClientV2, StreamableHTTPClientTransport as TransportV2 } from "@modelcontextprotocol/client";
import { Client as ClientV1 } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport as TransportV1 } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hasScope } from "../../src/mcp/tool.ts";
import { allTools } from "../../src/mcp/tools/index.ts";
import { type ConsoleApp, startConsoleApp } from "../helpers/browser.ts";

// Both protocol eras on the one /mcp endpoint, through real clients over a real port: a 2025-era
// client (SDK 1.x, and SDK v2 in its default 'legacy' mode) does the initialize handshake and gets
// 2025-11-25; an SDK v2 client in 'auto' mode, or pinned to 2026-07-28, probes server/discover and
// speaks 2026-07-28 (no handshake, the version and capabilities in every request's _meta). Same
// tools, same scopes, same errors, JSON answers, the same auth and CORS.

const GOOD = "http://good.example";
type Mode = "legacy" | "auto" | { pin: string };

/** Every HTTP exchange a client made: what it sent and the content type it got back. */
type Exchange = { status: number; contentType: string; body: any; headers: Headers };

function recordingFetch(log: Exchange[]): typeof fetch {
  return async (input, init) => {
    const res = await fetch(input, init);
    const body = typeof init?.body === "string" ? JSON.parse(init.body) : undefined;
    log.push({
      status: res.status,
      contentType: res.headers.get("content-type") ?? "",
      body,
      headers: new Headers(init?.headers),
    });
    return res;
  };
}

describe("MCP protocol eras on one endpoint", () => {
  let app: ConsoleApp;
  const open: { close(): Promise<void> }[] = [];

  beforeAll(async () => {
    app = await startConsoleApp({ env: { MCP_ALLOWED_ORIGINS: GOOD } });
  });
  afterAll(async () => {
    await Promise.all(open.map((c) => c.close().catch(() => {})));
    await app?.close();
  });

  async function v2(mode: Mode, token: string, log: Exchange[] = []) {
    const client = new ClientV2({ name: "pitcrew-test", version: "2.0.0" }, { versionNegotiation: { mode } });
    await client.connect(
      new TransportV2(new URL(`${app.url}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
        fetch: recordingFetch(log),
      }),
    );
    open.push(client);
    return client;
  }

  const visibleTo = (scope: "admin" | "read") =>
    allTools
      .filter((t) => hasScope({ scopes: new Set([scope]) }, t.scope))
      .map((t) => t.name)
      .sort();

  it("serves a 2025-era client (SDK 1.x) and SDK v2 in legacy mode on 2025-11-25, through the initialize handshake", async () => {
    const old = new ClientV1({ name: "pitcrew-test", version: "1.0.0" });
    await old.connect(
      new TransportV1(new URL(`${app.url}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${app.tokens.admin}` } },
      }),
    );
    open.push(old);
    expect(old.getServerVersion()?.name).toBe("pitcrew");
    expect((await old.listTools()).tools.map((t) => t.name).sort()).toEqual(visibleTo("admin"));

    const log: Exchange[] = [];
    const legacy = await v2("legacy", app.tokens.admin, log);
    expect(legacy.getProtocolEra()).toBe("legacy");
    expect(legacy.getNegotiatedProtocolVersion()).toBe("2025-11-25");
    expect(log[0]!.body.method).toBe("initialize");
    const created = await legacy.callTool({ name: "create_incident", arguments: { title: "legacy era" } });
    const id = (created.structuredContent as any).incident.id;
    expect(
      (await old.callTool({ name: "get_incident", arguments: { incident_id: id } })).structuredContent,
    ).toMatchObject({ incident: { id, title: "legacy era" } });
    // Plain calls are one JSON body each, as before.
    expect(log.filter((e) => e.body?.method === "tools/call").map((e) => e.contentType)).toEqual([
      expect.stringMatching(/^application\/json/),
    ]);
  });

  for (const mode of ["auto", { pin: "2026-07-28" }] as const) {
    it(`serves SDK v2 in ${JSON.stringify(mode)} mode on 2026-07-28: server/discover, no handshake, the same tools and errors`, async () => {
      const log: Exchange[] = [];
      const admin = await v2(mode, app.tokens.admin, log);
      expect(admin.getProtocolEra()).toBe("modern");
      expect(admin.getNegotiatedProtocolVersion()).toBe("2026-07-28");
      expect(admin.getServerVersion()).toMatchObject({ name: "pitcrew", title: "Pitcrew" });
      expect(admin.getInstructions()).toMatch(/incident agent/);
      // No notifications can reach a stateless server's callers, so nothing claims to change.
      expect(admin.getServerCapabilities()).toMatchObject({
        tools: {},
        logging: {},
        completions: {},
        prompts: { listChanged: false },
        resources: { listChanged: false },
      });
      expect(admin.getServerCapabilities()?.tools?.listChanged).toBeUndefined();
      const methods = log.map((e) => e.body?.method);
      expect(methods).toContain("server/discover");
      expect(methods).not.toContain("initialize");

      const created = await admin.callTool({ name: "create_incident", arguments: { title: "modern era" } });
      expect(created.isError).toBeFalsy();
      const id = (created.structuredContent as any).incident.id as string;

      // A read-only token sees and calls only what its scope allows, as in the 2025 era.
      const reader = await v2(mode, app.tokens.reader);
      expect((await reader.listTools()).tools.map((t) => t.name).sort()).toEqual(visibleTo("read"));
      const got = await reader.callTool({ name: "get_incident", arguments: { incident_id: id } });
      expect(got.structuredContent).toMatchObject({ incident: { id, title: "modern era", source: "mcp" } });
      await expect(reader.callTool({ name: "create_incident", arguments: { title: "no" } })).rejects.toMatchObject({
        code: -32602,
        message: expect.stringContaining("needs the 'write' scope"),
      });
      await expect(admin.callTool({ name: "no_such_tool", arguments: {} })).rejects.toMatchObject({
        code: -32602,
        message: expect.stringContaining("unknown tool"),
      });
      await expect(
        admin.callTool({ name: "get_incident", arguments: { incident_id: id, extra: 1 } }),
      ).rejects.toMatchObject({ code: -32602, message: expect.stringContaining('unknown argument "extra"') });
      const missing = await admin.callTool({ name: "get_incident", arguments: { incident_id: "inc_NOPE" } });
      expect(missing.isError).toBe(true);
      expect(missing._meta?.["pitcrew/error"]).toMatchObject({ code: "incident.not_found" });

      // Resources, prompts and completions answer in this era too.
      const doc = await reader.readResource({ uri: `pitcrew://incidents/${id}` });
      expect(doc.contents.map((c) => c.mimeType)).toEqual(["text/markdown", "application/json"]);
      const prompt = await reader.getPrompt({ name: "triage_incident", arguments: { incident_id: id } });
      expect(prompt.messages[0]!.content).toMatchObject({
        type: "resource",
        resource: { uri: `pitcrew://incidents/${id}` },
      });
      const done = await reader.complete({
        ref: { type: "ref/resource", uri: "pitcrew://incidents/{id}" },
        argument: { name: "id", value: id.slice(0, 10) },
      });
      expect(done.completion.values).toContain(id);

      // Every answer was one JSON body: nothing in these calls asked for a stream.
      const calls = log.filter((e) => e.body?.method === "tools/call");
      expect(calls.length).toBeGreaterThan(0);
      for (const e of calls) expect(e.contentType).toMatch(/^application\/json/);
      // The 2026-07-28 requests name their method in a header, as this era's routing expects.
      expect(calls[0]!.headers.get("mcp-method")).toBe("tools/call");
    });
  }

  it("refuses a 2026-07-28 request without a valid token with 401 and the resource-metadata challenge", async () => {
    const log: Exchange[] = [];
    await v2("auto", app.tokens.reader, log);
    const discover = log.find((e) => e.body?.method === "server/discover")!;
    const headers = Object.fromEntries([...discover.headers].filter(([k]) => k !== "authorization"));
    for (const auth of [undefined, "Bearer not-a-token"]) {
      const res = await fetch(`${app.url}/mcp`, {
        method: "POST",
        headers: { ...headers, ...(auth ? { authorization: auth } : {}) },
        body: JSON.stringify(discover.body),
      });
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toMatch(/^Bearer resource_metadata="/);
    }
  });

  it("lets an allowed browser origin send the 2026-07-28 routing headers, and answers its calls with CORS headers", async () => {
    const pre = await fetch(`${app.url}/mcp`, {
      method: "OPTIONS",
      headers: {
        origin: GOOD,
        "access-control-request-method": "POST",
        "access-control-request-headers":
          "authorization,content-type,mcp-protocol-version,mcp-method,mcp-name,mcp-param-region",
      },
    });
    expect(pre.status).toBe(204);
    const allowed = pre.headers.get("access-control-allow-headers")!.split(/,\s*/);
    expect(allowed).toEqual(expect.arrayContaining(["mcp-method", "mcp-name", "mcp-param-region", "authorization"]));

    const log: Exchange[] = [];
    await v2("auto", app.tokens.reader, log);
    const discover = log.find((e) => e.body?.method === "server/discover")!;
    const res = await fetch(`${app.url}/mcp`, {
      method: "POST",
      headers: { ...Object.fromEntries(discover.headers), origin: GOOD },
      body: JSON.stringify(discover.body),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe(GOOD);
    expect(((await res.json()) as any).result.supportedVersions).toContain("2026-07-28");
    const evil = await fetch(`${app.url}/mcp`, {
      method: "POST",
      headers: { ...Object.fromEntries(discover.headers), origin: "http://evil.example" },
      body: JSON.stringify(discover.body),
    });
    expect(evil.status).toBe(403);
  });
});
