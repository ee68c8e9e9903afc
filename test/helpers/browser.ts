import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { FastifyInstance } from "fastify";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { createMemoryQueue } from "../../src/bus/memory.ts";
import type { TaskQueue } from "../../src/bus/port.ts";
import { loadConfig, type Config } from "../../src/config/load.ts";
import { buildHttpApp } from "../../src/http/app.ts";
import { createMetrics } from "../../src/shared/metrics.ts";
import { createMcpAuth, mcpTokens } from "../../src/mcp/auth.ts";
import type { McpDeps } from "../../src/mcp/tool.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { loadSkills } from "../../src/skills/load.ts";
import { storeFactories, type TestStore } from "./store.ts";
import { mcpTestDeps } from "./mcp.ts";

// Browser tests of the web console: a real Pitcrew HTTP app on a loopback port, and Debian's
// Chromium driven by playwright-core (never a downloaded browser).
//
//   const app = await startConsoleApp();              // SQLite, tokens admin/reader/approver/writer
//   const browser = await launchBrowser();
//   const page = await newPage(browser);
//   await signIn(page, app, app.tokens.admin);
//   await page.goto(`${app.url}/status`);
//   await screenshot(page, "status");                  // docs/screenshots/status.png, with SCREENSHOTS=1

export const CHROMIUM = "/usr/bin/chromium";

export const TOKENS = {
  admin: "console-admin-token-0123456789",
  reader: "console-reader-token-0123456789",
  approver: "console-approver-token-0123456789",
  writer: "console-writer-token-0123456789",
} as const;

export type ConsoleApp = {
  url: string;
  app: FastifyInstance;
  config: Config;
  store: TestStore;
  /** The in-process queue of the deps (for a runner and control-plane loops in the test). */
  queue: TaskQueue;
  deps: McpDeps;
  tokens: typeof TOKENS;
  close(): Promise<void>;
};

export type ConsoleAppOptions = {
  /** A store to use (not closed by close()); a fresh SQLite store by default. */
  store?: TestStore;
  /** More environment for loadConfig (e.g. MCP_OIDC_ISSUER, CONSOLE_OIDC_CLIENT_ID, GITOPS_*). */
  env?: Record<string, string>;
  /** Replaces parts of the MCP deps (gitHost, approvals, analyze, skills, now…). */
  deps?: Partial<McpDeps>;
  liveIntervalMs?: number;
  liveHeartbeatMs?: number;
};

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolvePort(port));
    });
  });
}

/** The HTTP app with the console (and /mcp), listening on 127.0.0.1 with PUBLIC_URL set to it. */
export async function startConsoleApp(opts: ConsoleAppOptions = {}): Promise<ConsoleApp> {
  const own = opts.store ? undefined : await (await storeFactories()).find((f) => f.name === "sqlite")!.make();
  const store = (opts.store ?? own)!;
  const dataDir = mkdtempSync(join(tmpdir(), "pitcrew-console-"));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const config = loadConfig({
    DATA_DIR: dataDir,
    PORT: String(port),
    PUBLIC_URL: url,
    MCP_TOKENS: JSON.stringify([
      { name: "ops", token: TOKENS.admin, scopes: ["admin"] },
      { name: "viewer", token: TOKENS.reader, scopes: ["read"] },
      { name: "oncall", token: TOKENS.approver, scopes: ["approve"] },
      { name: "ci", token: TOKENS.writer, scopes: ["write"] },
    ]),
    ...opts.env,
  });
  const queue = createMemoryQueue({ log: silentLogger });
  const now = opts.deps?.now ?? Date.now;
  const skills = loadSkills("skills").skills;
  const deps = mcpTestDeps({ config, store, queue, skills, now }, opts.deps);
  const tokens = mcpTokens(config).tokens;
  const mcpAuth = createMcpAuth({ tokens, oidc: config.mcp.oidc, log: silentLogger });
  const app = await buildHttpApp({
    log: silentLogger,
    store,
    queue,
    metrics: createMetrics(),
    bodyLimit: 1_048_576,
    mcp: { deps, auth: mcpAuth },
    console: {
      deps,
      mcpAuth,
      tokens,
      liveIntervalMs: opts.liveIntervalMs ?? 100,
      liveHeartbeatMs: opts.liveHeartbeatMs,
      agentPath: "",
    },
  });
  await app.listen({ port, host: "127.0.0.1" });
  return {
    url,
    app,
    config,
    store,
    queue,
    deps,
    tokens: TOKENS,
    async close() {
      await app.close();
      await queue.close();
      await own?.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
}

/** A fresh context (no cookies) and page; `phone` gives a 390×844 touch viewport. */
export async function newPage(
  browser: Browser,
  opts: { phone?: boolean } = {},
): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext(
    opts.phone
      ? { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 }
      : { viewport: { width: 1280, height: 900 } },
  );
  return { context, page: await context.newPage() };
}

/** Signs in through the form, as a person would, and waits for the page it leads to. */
export async function signIn(page: Page, app: Pick<ConsoleApp, "url">, token: string, next = "/status"): Promise<void> {
  await page.goto(`${app.url}/login?next=${encodeURIComponent(next)}`);
  await page.getByLabel("Access token").fill(token);
  await Promise.all([
    page.waitForURL((u) => !u.pathname.startsWith("/login")),
    page.getByRole("button", { name: "Sign in" }).click(),
  ]);
}

/**
 * Writes docs/screenshots/<name>.png (the README's pictures) when SCREENSHOTS=1, so ordinary test
 * runs leave the tree alone: `SCREENSHOTS=1 npx vitest run test/integration/console-pages.test.ts`.
 */
export async function screenshot(
  page: Page,
  name: string,
  opts: { fullPage?: boolean } = {},
): Promise<string | undefined> {
  if (process.env.SCREENSHOTS !== "1") return undefined;
  const dir = resolve("docs/screenshots");
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.png`);
  await page.screenshot({ path, fullPage: opts.fullPage ?? true, animations: "disabled" });
  return path;
}
