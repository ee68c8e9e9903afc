import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser, Page } from "playwright-core";
import { recordHeartbeat } from "../../src/fleet/repo.ts";
import { newIncidentRow } from "../../src/incidents/repo.ts";
import { appendEvent } from "../../src/events/repo.ts";
import { newId } from "../../src/shared/ids.ts";
import { CSP } from "../../src/console/security.ts";
import {
  launchBrowser,
  newPage,
  screenshot,
  signIn,
  startConsoleApp,
  TOKENS,
  type ConsoleApp,
} from "../helpers/browser.ts";
import { newTag } from "../helpers/alerts.ts";

// The Fleet, Skills, Status and Tasks pages as a browser shows them: their content from the same
// queries as the MCP tools, the security headers, no CSP violation, the weight of a first page,
// keyboard access and labels, and a phone-sized screen.

let app: ConsoleApp;
let browser: Browser;
const tag = newTag();

beforeAll(async () => {
  app = await startConsoleApp({
    env: { AUTO_APPROVE_MAX_RISK: "low", GITOPS_REPO: "/srv/gitops/platform.git", HEARTBEAT_INTERVAL: "5s" },
  });
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
  await app?.close();
});

/** Collects what the browser refused under the Content-Security-Policy. */
function watchCsp(page: Page): string[] {
  const refused: string[] = [];
  page.on("console", (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) refused.push(m.text());
  });
  return refused;
}

describe("console pages", () => {
  it("Fleet lists runners with their pool, running tasks and which are stale", async () => {
    const now = Date.now();
    const beat = (id: string, at: number, running: string[]) =>
      recordHeartbeat(app.store.db, app.store.dialect, {
        type: "runner.heartbeat",
        id: newId("evt"),
        runnerId: id,
        host: `host-${tag}`,
        version: "9.9.9",
        pool: "default",
        concurrency: 4,
        running,
        totals: { succeeded: 0, failed: 0, cancelled: 0 },
        startedAt: at - 60_000,
        at,
      });
    await beat(`live-${tag}`, now, ["tsk_01RUNNINGTASK"]);
    await beat(`gone-${tag}`, now - 60_000, []);

    const { page, context } = await newPage(browser);
    await signIn(page, app, TOKENS.reader, "/fleet");
    const row = (id: string) => page.locator("tr", { has: page.locator(`code:text-is("${id}")`) });
    expect(await row(`live-${tag}`).locator(".state").textContent()).toBe("live");
    expect(await row(`live-${tag}`).textContent()).toContain("1/4");
    expect(await row(`live-${tag}`).locator('a[href="/tasks/tsk_01RUNNINGTASK"]').count()).toBe(1);
    expect(await row(`gone-${tag}`).locator(".state").textContent()).toBe("stale");
    expect(await page.locator("#fleet-summary").textContent()).toContain("1 stale");
    await screenshot(page, "fleet");
    await context.close();
  });

  it("Skills shows each skill's match, risk, the approval the policy requires, and its last runs", async () => {
    const now = Date.now();
    const inc = newIncidentRow(
      {
        id: newId("inc", now),
        fingerprint: `sk-${tag}`,
        dedupe_key: null,
        open_key: `sk-${tag}`,
        title: "api crash-looping",
        source: "test",
        severity: "critical",
        namespace: "shop",
        service: "api",
        alertname: "KubePodCrashLooping",
        labels: {},
        annotations: {},
      },
      now,
    );
    await app.store.db
      .insertInto("incidents")
      .values({ ...inc, state: "proposed" })
      .execute();
    await appendEvent(
      app.store.db,
      app.store.dialect,
      {
        type: "incident.planned",
        incidentId: inc.id,
        actor: "pitcrew:analysis",
        channel: "engine",
        data: { skill: "crashloop-after-deploy", params: {} },
        occurredAt: now,
      },
      now,
    );

    const { page, context } = await newPage(browser);
    await signIn(page, app, TOKENS.reader, "/skills");
    const card = page.locator("#skill-crashloop-after-deploy");
    expect(await card.locator("h2").textContent()).toBe("crashloop-after-deploy");
    const text = (await card.textContent())!;
    expect(text).toContain("KubePodCrashLooping");
    expect(text).toContain("severity=~critical|warning");
    expect(await card.locator(".risk").textContent()).toBe("medium");
    expect(text).toContain("before_merge (medium risk is above AUTO_APPROVE_MAX_RISK (low))");
    expect(await card.locator(`a[href="/incidents/${inc.id}"]`).count()).toBe(1);
    expect(await card.locator(`a[href="/incidents/${inc.id}"] + .state`).textContent()).toBe("proposed");
    // A skill within the auto-approve risk needs no one.
    const lowRisk = app.deps.skills().find((s) => s.risk === "low" || s.risk === "read")!;
    expect(await page.locator(`#skill-${lowRisk.name}`).textContent()).toContain("none needed");
    await screenshot(page, "skills");
    await context.close();
  });

  it("Status shows the mode, store, queue, pause switch and the configuration that matters", async () => {
    const { page, context } = await newPage(browser);
    await signIn(page, app, TOKENS.admin, "/status");
    const text = (await page.locator("main").textContent())!;
    expect(text).toMatch(/Modeembedded/);
    expect(text).toMatch(/Storesqlite ok/);
    expect(text).toMatch(/Queuememory ok/);
    expect(text).toContain("local repository /srv/gitops/platform.git, branch main");
    expect(text).toContain("AUTO_APPROVE_MAX_RISK=low");
    expect(await page.locator("#automation-state").textContent()).toContain("running");
    expect(await page.getByRole("button", { name: "Pause automation" }).count()).toBe(1);
    // Agent CLIs: every AGENT_COMMANDS entry, and whether the in-process runners can start it.
    const agents = page.locator("table", { has: page.locator("caption", { hasText: "Agent CLIs" }) });
    expect(await agents.locator("tbody tr").count()).toBe(Object.keys(app.config.agents.commands).length);
    expect(await agents.locator("tbody tr", { hasText: "claude-code" }).textContent()).toContain("not found");
    await screenshot(page, "status");
    await context.close();
  });
});

describe("console pages as a browser loads them", () => {
  const pages = ["/tasks", "/fleet", "/skills", "/status"];

  it("answers with a strict CSP, nosniff, a referrer policy and no caching; assets are long-cached", async () => {
    const res = await fetch(`${app.url}/status`, {
      headers: { authorization: `Bearer ${TOKENS.reader}`, accept: "text/html" },
    });
    expect(res.headers.get("content-security-policy")).toBe(CSP);
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("referrer-policy")).toBe("same-origin");
    expect(res.headers.get("cache-control")).toBe("no-store");
    const html = await res.text();
    expect(html).not.toMatch(/<script>|<style|style="|https?:\/\/(?!127\.0\.0\.1)/);
    const css = /href="(\/assets\/console\.[0-9a-f]+\.css)"/.exec(html)![1]!;
    const asset = await fetch(`${app.url}${css}`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get("cache-control")).toContain("immutable");
    expect(asset.headers.get("content-type")).toContain("text/css");
    const login = await fetch(`${app.url}/login`);
    expect(login.headers.get("content-security-policy")).toBe(CSP);
    expect(login.headers.get("cache-control")).toBe("no-store");
  });

  it("loads every page with nothing refused by the CSP, nothing from another origin, and a first page under 200 KB", async () => {
    const { page, context } = await newPage(browser);
    const refused = watchCsp(page);
    await signIn(page, app, TOKENS.admin, "/tasks");
    for (const path of pages) {
      const loaded: { url: string; bytes: number }[] = [];
      const onResponse = async (r: import("playwright-core").Response) =>
        loaded.push({ url: r.url(), bytes: (await r.body().catch(() => Buffer.alloc(0))).length });
      page.on("response", onResponse);
      await page.goto(`${app.url}${path}`, { waitUntil: "networkidle" });
      page.off("response", onResponse);
      expect(
        loaded.every((l) => l.url.startsWith(app.url)),
        path,
      ).toBe(true);
      expect(
        loaded.reduce((n, l) => n + l.bytes, 0),
        path,
      ).toBeLessThan(200 * 1024);
    }
    expect(refused).toEqual([]);
    await context.close();
  });

  it("can be used from the keyboard: a skip link first, every field labelled, the current page marked", async () => {
    const { page, context } = await newPage(browser);
    await signIn(page, app, TOKENS.admin, "/status");
    await page.keyboard.press("Tab");
    expect(await page.evaluate("document.activeElement.textContent")).toBe("Skip to content");
    await page.keyboard.press("Enter");
    expect(await page.evaluate("document.activeElement.id")).toBe("main");
    for (const path of [...pages, "/login"]) {
      await page.goto(`${app.url}${path}`);
      // (A string: the test's own TypeScript has no DOM types.)
      const unlabelled =
        await page.evaluate(`Array.from(document.querySelectorAll("input:not([type=hidden]), select, textarea"))
        .filter((el) => el.labels.length === 0 && !el.getAttribute("aria-label")).map((el) => el.outerHTML)`);
      expect(unlabelled, path).toEqual([]);
    }
    await page.goto(`${app.url}/fleet`);
    expect(await page.locator('nav a[aria-current="page"]').textContent()).toBe("Fleet");
    await context.close();
  });

  it("fits a phone's screen without sideways scrolling", async () => {
    const { page, context } = await newPage(browser, { phone: true });
    await signIn(page, app, TOKENS.admin, "/status");
    for (const path of pages) {
      await page.goto(`${app.url}${path}`);
      const overflow = (await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")) as number;
      expect(overflow, path).toBeLessThanOrEqual(0);
    }
    await page.goto(`${app.url}/status`);
    await screenshot(page, "status-phone", { fullPage: false });
    await context.close();
  });
});
