import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startConsoleApp, TOKENS, type ConsoleApp } from "../helpers/browser.ts";
import { openIncident } from "../helpers/incidents.ts";

// A plain 2025-era tools/call is answered by Pitcrew's tool handler directly (src/mcp/direct-call.ts),
// without an SDK server and transport. Its answer must be the one the SDK gives: each call here is
// sent plainly and again with an (empty) `_meta`, which sends it through the SDK, and the two
// answers are compared whole.

type Answer = { status: number; type: string | null; body: unknown };

async function post(base: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(`${base}/mcp`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      authorization: `Bearer ${TOKENS.reader}`,
      ...headers,
    },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, type: res.headers.get("content-type"), body: text ? JSON.parse(text) : undefined };
}

const call = (id: number | string, name: string, args?: Record<string, unknown>, meta?: Record<string, unknown>) => ({
  jsonrpc: "2.0",
  id,
  method: "tools/call",
  params: { name, ...(args !== undefined && { arguments: args }), ...(meta && { _meta: meta }) },
});

/** The answer to a call sent plainly, after checking the SDK gives the same one. */
async function sameBothWays(base: string, id: number | string, name: string, args?: Record<string, unknown>) {
  const direct = await post(base, call(id, name, args));
  const viaSdk = await post(base, call(id, name, args, {}));
  expect(direct).toEqual(viaSdk);
  return direct;
}

describe("MCP tools/call answered without the SDK's transport", () => {
  let app: ConsoleApp;
  let incidentId: string;

  beforeAll(async () => {
    app = await startConsoleApp();
    incidentId = await openIncident(app.store, { title: "checkout crash-loops" });
    await openIncident(app.store);
  });
  afterAll(async () => app?.close());

  it("answers get_incident and list_incidents as the SDK does", async () => {
    const got = await sameBothWays(app.url, 7, "get_incident", { incident_id: incidentId });
    expect(got.status).toBe(200);
    expect(got.type).toBe("application/json; charset=utf-8");
    expect(got.body).toMatchObject({
      jsonrpc: "2.0",
      id: 7,
      result: { structuredContent: { incident: { id: incidentId, title: "checkout crash-loops" } } },
    });
    const listed = await sameBothWays(app.url, "page-1", "list_incidents", { limit: 1 });
    expect(listed.body).toMatchObject({ id: "page-1", result: { structuredContent: { incidents: [{}] } } });
    expect((listed.body as any).result.structuredContent.next_cursor).toEqual(expect.any(String));
  });

  it("answers a tool's refusal as the SDK does: an isError result with its code", async () => {
    const missing = await sameBothWays(app.url, 8, "get_incident", { incident_id: "inc_missing" });
    expect(missing.body).toMatchObject({
      result: { isError: true, _meta: { "pitcrew/error": { code: "incident.not_found" } } },
    });
  });

  it("leaves unknown tools, tools outside the token's scopes and bad arguments to the SDK's errors", async () => {
    const unknown = await sameBothWays(app.url, 9, "no_such_tool", {});
    expect(unknown.body).toMatchObject({
      error: { code: -32602, data: { "pitcrew/error": { code: "tool.unknown" } } },
    });
    const scope = await sameBothWays(app.url, 10, "pause_automation", { reason: "test" });
    expect(scope.body).toMatchObject({
      error: { code: -32602, data: { "pitcrew/error": { code: "auth.missing_scope" } } },
    });
    const bad = await sameBothWays(app.url, 11, "list_incidents", { limit: 1000, colour: "red" });
    expect(bad.body).toMatchObject({
      error: { code: -32602, data: { "pitcrew/error": { code: "request.invalid_params" } } },
    });
    const noArgs = await sameBothWays(app.url, 12, "list_incidents");
    expect(noArgs.body).toMatchObject({ result: { structuredContent: { incidents: expect.any(Array) } } });
  });

  it("leaves requests the SDK's transport refuses to it: Accept without event streams, a modern header", async () => {
    const body = call(13, "list_incidents", {});
    const notAcceptable = await post(app.url, body, { accept: "application/json" });
    expect(notAcceptable.status).toBe(406);
    const modern = await post(app.url, body, { "mcp-protocol-version": "2026-07-28" });
    expect(modern.status).toBe(400);
    const unknownVersion = await post(app.url, body, { "mcp-protocol-version": "1999-01-01" });
    expect(unknownVersion.status).toBe(400);
    const known = await post(app.url, body, { "mcp-protocol-version": "2025-06-18" });
    expect(known.status).toBe(200);
  });
});
