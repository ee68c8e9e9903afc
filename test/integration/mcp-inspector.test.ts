import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser } from "playwright-core";
import { CHROMIUM, launchBrowser, startConsoleApp, type ConsoleApp } from "../helpers/browser.ts";

// Real MCP clients against a live Pitcrew HTTP app: the MCP Inspector's CLI (a dev dependency,
// run on Node 22 as it requires), and a page in Chromium served from another origin whose script
// talks to /mcp with fetch, so the browser makes the CORS preflight itself.

const IN_CI = !!process.env.CI && process.env.CI !== "false" && process.env.CI !== "0";
const INSPECTOR = resolve("node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js");
// The Inspector needs Node >= 22.19: the one installed beside the conformance suite (kept out of
// the project's node_modules so npm scripts keep the system Node), or this Node when it is new enough.
const NODE22 = [resolve("test/conformance/node_modules/node/bin/node"), process.execPath].find(
  (p) => existsSync(p) && (p !== process.execPath || Number(process.versions.node.split(".")[0]) >= 22),
);

function available(what: string, ok: boolean, hint: string): boolean {
  if (ok) return true;
  if (IN_CI) throw new Error(`${what} is required in CI but missing (${hint})`);
  process.stderr.write(`\n!!!!!!!! SKIPPING ${what} TESTS: ${hint} !!!!!!!!\n\n`);
  return false;
}

const hasInspector = available(
  "MCP Inspector",
  existsSync(INSPECTOR) && NODE22 !== undefined,
  "npm ci, and npm ci --prefix test/conformance for its Node 22",
);
const hasChromium = available(
  "Chromium MCP client",
  existsSync(CHROMIUM),
  `${CHROMIUM} is missing (apt-get install chromium)`,
);

type Run = { code: number; stdout: string; stderr: string };

function inspector(args: string[], home: string): Promise<Run> {
  return new Promise((done) => {
    execFile(
      NODE22!,
      [INSPECTOR, "--cli", ...args, "--transport", "http", "--format", "json", "--quiet", "--connect-timeout", "10000"],
      // Its catalog, client config and secrets go to a temp home, not the user's.
      { env: { PATH: process.env.PATH, HOME: home, NO_COLOR: "1" }, timeout: 60_000 },
      (err, stdout, stderr) => done({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** A page that speaks MCP to `endpoint` with fetch, as a browser-based client does. */
const PAGE = `<!doctype html>
<meta charset="utf-8"><title>browser MCP client</title>
<script>
let id = 0;
async function rpc(endpoint, token, method, params, version) {
  const headers = { "content-type": "application/json", accept: "application/json, text/event-stream" };
  if (token) headers.authorization = "Bearer " + token;
  if (version) headers["mcp-protocol-version"] = version;
  const message = method.startsWith("notifications/") ? { jsonrpc: "2.0", method } : { jsonrpc: "2.0", id: ++id, method, params };
  const res = await fetch(endpoint, { method: "POST", headers, body: JSON.stringify(message) });
  const text = await res.text();
  return { status: res.status, challenge: res.headers.get("www-authenticate"), body: text ? JSON.parse(text) : null };
}
window.mcpSession = async (endpoint, token) => {
  try {
    const refused = await rpc(endpoint, null, "tools/list", {});
    // Where to get a token: the metadata the challenge names, read as an SDK client reads it.
    const metadataUrl = /resource_metadata="([^"]+)"/.exec(refused.challenge || "")[1];
    const metadata = await (await fetch(metadataUrl, { headers: { "mcp-protocol-version": "2025-06-18" } })).json();
    const init = await rpc(endpoint, token, "initialize", { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "page", version: "1" } });
    const version = init.body.result.protocolVersion;
    await rpc(endpoint, token, "notifications/initialized", undefined, version);
    const list = await rpc(endpoint, token, "tools/list", {}, version);
    const call = await rpc(endpoint, token, "tools/call", { name: "system_status", arguments: {} }, version);
    return {
      refused: { status: refused.status, challenge: refused.challenge },
      resource: metadata.resource,
      server: init.body.result.serverInfo.name,
      version,
      tools: list.body.result.tools.map((t) => t.name),
      status: call.body.result.structuredContent,
    };
  } catch (err) {
    return { error: String(err) };
  }
};
</script>`;

async function servePage(): Promise<{ origin: string; close(): Promise<void> }> {
  const server: Server = createServer((_req, res) =>
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(PAGE),
  );
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    origin: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe.skipIf(!hasInspector && !hasChromium)("real MCP clients against /mcp", () => {
  let app: ConsoleApp;
  let allowedPage: Awaited<ReturnType<typeof servePage>>;
  let foreignPage: Awaited<ReturnType<typeof servePage>>;
  let home: string;
  /** What /mcp answered, as `METHOD origin status`. */
  const seen: string[] = [];

  beforeAll(async () => {
    allowedPage = await servePage();
    foreignPage = await servePage();
    app = await startConsoleApp({ env: { HOST: "127.0.0.1", MCP_ALLOWED_ORIGINS: allowedPage.origin } });
    app.app.server.on("request", (req, res) => {
      if (req.url?.startsWith("/mcp"))
        res.on("finish", () => seen.push(`${req.method} ${req.headers.origin ?? "-"} ${res.statusCode}`));
    });
    home = mkdtempSync(join(tmpdir(), "pitcrew-inspector-"));
  });
  afterAll(async () => {
    await app?.close();
    await allowedPage?.close();
    await foreignPage?.close();
    if (home) rmSync(home, { recursive: true, force: true });
  });

  describe.skipIf(!hasInspector)("the MCP Inspector CLI", () => {
    it("lists the tools through a token", async () => {
      const run = await inspector(
        [`${app.url}/mcp`, "--method", "tools/list", "--header", `Authorization: Bearer ${app.tokens.admin}`],
        home,
      );
      expect(run.code, run.stderr).toBe(0);
      const names = (JSON.parse(run.stdout) as { result: { tools: { name: string }[] } }).result.tools.map(
        (t) => t.name,
      );
      expect(names).toEqual(expect.arrayContaining(["system_status", "list_incidents", "create_incident"]));
    });

    it("calls system_status through a token", async () => {
      const run = await inspector(
        [
          `${app.url}/mcp`,
          "--method",
          "tools/call",
          "--tool-name",
          "system_status",
          "--header",
          `Authorization: Bearer ${app.tokens.admin}`,
        ],
        home,
      );
      expect(run.code, run.stderr).toBe(0);
      const { result } = JSON.parse(run.stdout) as {
        result: { isError?: boolean; structuredContent: { mode: string } };
      };
      expect(result.isError).toBeFalsy();
      expect(result.structuredContent.mode).toBe("embedded");
    });

    it("calls through an allowed Origin, and is refused from a foreign one", async () => {
      const args = (origin: string) => [
        `${app.url}/mcp`,
        "--method",
        "tools/call",
        "--tool-name",
        "system_status",
        "--header",
        `Authorization: Bearer ${app.tokens.admin}`,
        "--header",
        `Origin: ${origin}`,
      ];
      const allowed = await inspector(args(allowedPage.origin), home);
      expect(allowed.code, allowed.stderr).toBe(0);
      expect(seen).toContain(`POST ${allowedPage.origin} 200`);
      const foreign = await inspector(args(foreignPage.origin), home);
      expect(foreign.code).not.toBe(0);
      expect(JSON.parse(foreign.stdout || foreign.stderr).error.message).toMatch(/mcp\.origin_not_allowed/);
      expect(seen).toContain(`POST ${foreignPage.origin} 403`);
    });

    it("fails without a token, having been challenged", async () => {
      const run = await inspector([`${app.url}/mcp`, "--method", "tools/list"], home);
      expect(run.code).not.toBe(0);
      expect(JSON.parse(run.stdout || run.stderr).error.code).toBe("auth_required");
      expect(seen).toContain("POST - 401");
    });
  });

  describe.skipIf(!hasChromium)("a browser page on another origin", () => {
    let browser: Browser;
    beforeAll(async () => {
      browser = await launchBrowser();
    });
    afterAll(async () => {
      await browser?.close();
    });

    async function session(pageOrigin: string) {
      const page = await browser.newPage();
      try {
        await page.goto(`${pageOrigin}/`);
        return (await page.evaluate(
          ([endpoint, token]) => (globalThis as any).mcpSession(endpoint, token),
          [`${app.url}/mcp`, app.tokens.admin],
        )) as any;
      } finally {
        await page.close();
      }
    }

    it("initializes, lists tools and calls one from an allowed origin, after a preflight", async () => {
      const r = await session(allowedPage.origin);
      expect(r.error).toBeUndefined();
      expect(r.server).toBe("pitcrew");
      expect(r.version).toBe("2025-06-18");
      expect(r.tools).toContain("system_status");
      expect(r.status.mode).toBe("embedded");
      // The 401 and its challenge are readable by the page (exposed), and name the metadata.
      expect(r.refused).toEqual({
        status: 401,
        challenge: `Bearer resource_metadata="${app.url}/.well-known/oauth-protected-resource/mcp"`,
      });
      expect(r.resource).toBe(`${app.url}/mcp`);
      expect(seen).toContain(`OPTIONS ${allowedPage.origin} 204`);
      expect(seen).toContain(`POST ${allowedPage.origin} 200`);
    });

    it("gets nothing from a foreign origin: the preflight is refused and fetch fails", async () => {
      const before = seen.length;
      const r = await session(foreignPage.origin);
      expect(r.error).toMatch(/Failed to fetch/);
      // Only the preflight reached /mcp: the browser sent no POST after its refusal.
      expect(seen.slice(before)).toEqual([`OPTIONS ${foreignPage.origin} 403`]);
    });
  });
});
