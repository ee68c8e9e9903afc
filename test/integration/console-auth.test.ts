import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser } from "playwright-core";
import { getPause, setPause } from "../../src/system/settings.ts";
import { newIncidentRow } from "../../src/incidents/repo.ts";
import { newId } from "../../src/shared/ids.ts";
import { sha256, SESSION_COOKIE } from "../../src/console/sessions.ts";
import { launchBrowser, newPage, signIn, startConsoleApp, TOKENS, type ConsoleApp } from "../helpers/browser.ts";
import { newTag } from "../helpers/alerts.ts";
import { storeFactories } from "../helpers/store.ts";
import { up } from "../../migrations/0011_console.ts";

// Signing in and out of the web console, bearer requests, CSRF and same-site checks, scopes, and
// pause/resume from the Status page — in Debian's Chromium against a real Pitcrew app.

let app: ConsoleApp;
let browser: Browser;

beforeAll(async () => {
  app = await startConsoleApp();
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
  await app?.close();
});

const sessions = () => app.store.db.selectFrom("console_sessions").selectAll().execute();
const systemEvents = () =>
  app.store.db
    .selectFrom("events")
    .selectAll()
    .where("type", "in", ["system.paused", "system.resumed"])
    .orderBy("seq")
    .execute();

/** Signs in a fresh browser context; returns its page, session cookie value and CSRF token. */
async function session(token: string) {
  const { context, page } = await newPage(browser);
  await signIn(page, app, token);
  const cookie = (await context.cookies()).find((c) => c.name === SESSION_COOKIE)!;
  const csrf = await page.locator('form[action="/logout"] input[name="_csrf"]').inputValue();
  return { context, page, cookie, csrf };
}

/** A form POST as a script (or another site) would send it, with the session cookie. */
async function post(path: string, form: Record<string, string>, headers: Record<string, string>) {
  const res = await fetch(`${app.url}${path}`, {
    method: "POST",
    redirect: "manual",
    headers: { "content-type": "application/x-www-form-urlencoded", accept: "text/html", ...headers },
    body: new URLSearchParams(form),
  });
  return { status: res.status, text: await res.text(), location: res.headers.get("location") };
}

describe("signing in", () => {
  it("sends a visitor to the sign-in form, refuses a wrong token, and signs in with a named token onto the page asked for", async () => {
    const { context, page } = await newPage(browser);
    await page.goto(`${app.url}/tasks?state=failed`);
    expect(new URL(page.url()).pathname).toBe("/login");
    expect(new URL(page.url()).searchParams.get("next")).toBe("/tasks?state=failed");

    await page.getByLabel("Access token").fill("not-a-token-of-this-installation");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect.poll(() => page.getByRole("alert").textContent()).toContain("not recognised");
    expect(new URL(page.url()).pathname).toBe("/login");
    expect((await context.cookies()).find((c) => c.name === SESSION_COOKIE)).toBeUndefined();

    await page.getByLabel("Access token").fill(TOKENS.reader);
    await Promise.all([
      page.waitForURL(/\/tasks\?state=failed$/),
      page.getByRole("button", { name: "Sign in" }).click(),
    ]);
    await expect.poll(() => page.locator(".who-name").textContent()).toBe("viewer");
    expect(await page.locator('nav a[aria-current="page"]').textContent()).toBe("Tasks");

    const cookie = (await context.cookies()).find((c) => c.name === SESSION_COOKIE)!;
    expect(cookie.httpOnly).toBe(true);
    expect(cookie.sameSite).toBe("Strict");
    // Stored by its hash only; the token never.
    const row = (await sessions()).find((s) => s.id === sha256(cookie.value))!;
    expect(row).toMatchObject({ subject: "viewer", method: "token", via: "viewer", scopes: "read" });
    expect(JSON.stringify(await sessions())).not.toContain(cookie.value);
    expect(JSON.stringify(await sessions())).not.toContain(TOKENS.reader);
    await context.close();
  });

  it("signs out: the session row is gone and the old cookie no longer opens a page", async () => {
    const { context, page, cookie } = await session(TOKENS.admin);
    expect((await sessions()).some((s) => s.id === sha256(cookie.value))).toBe(true);
    await Promise.all([page.waitForURL(/\/login$/), page.getByRole("button", { name: "Sign out" }).click()]);
    expect((await sessions()).some((s) => s.id === sha256(cookie.value))).toBe(false);

    const res = await fetch(`${app.url}/status`, {
      redirect: "manual",
      headers: { accept: "text/html", cookie: `${SESSION_COOKIE}=${cookie.value}` },
    });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/login?next=%2Fstatus");
    await context.close();
  });

  it("ends a token session when its token is no longer configured", async () => {
    const { context, cookie } = await session(TOKENS.approver);
    const before = await fetch(`${app.url}/status`, {
      redirect: "manual",
      headers: { accept: "text/html", cookie: `${SESSION_COOKIE}=${cookie.value}` },
    });
    expect(before.status).toBe(200);
    // The same name with another token: a configuration change that revokes the old one.
    const oncall = app.config.mcp.tokens.find((t) => t.name === "oncall")!;
    const old = oncall.token;
    oncall.token = "rotated-token-0123456789abcdef";
    try {
      const after = await fetch(`${app.url}/status`, {
        redirect: "manual",
        headers: { accept: "text/html", cookie: `${SESSION_COOKIE}=${cookie.value}` },
      });
      expect(after.status).toBe(303);
    } finally {
      oncall.token = old;
    }
    await context.close();
  });

  it("reads pages with Authorization: Bearer and no cookie; a wrong bearer token gets 401", async () => {
    const ok = await fetch(`${app.url}/status`, {
      headers: { authorization: `Bearer ${TOKENS.reader}`, accept: "text/html" },
    });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain("<h1>Status</h1>");
    const bad = await fetch(`${app.url}/status`, {
      redirect: "manual",
      headers: { authorization: "Bearer wrong-token-0123456789", accept: "text/html" },
    });
    expect(bad.status).toBe(401);
    expect(bad.headers.get("www-authenticate")).toContain("invalid_token");
  });
});

describe("CSRF and same-site checks", () => {
  it("refuses a pause POST without a CSRF token, with a wrong one, and from another site's Origin (403); automation keeps running", async () => {
    const { context, cookie, csrf } = await session(TOKENS.admin);
    const jar = { cookie: `${SESSION_COOKIE}=${cookie.value}` };
    const eventsBefore = (await systemEvents()).length;

    const none = await post("/status/pause", { reason: "forged" }, { ...jar, origin: app.url });
    const wrong = await post("/status/pause", { reason: "forged", _csrf: "x".repeat(43) }, { ...jar, origin: app.url });
    const crossSite = await post(
      "/status/pause",
      { reason: "forged", _csrf: csrf },
      { ...jar, origin: "https://evil.example" },
    );
    const fetchMeta = await post(
      "/status/pause",
      { reason: "forged", _csrf: csrf },
      { ...jar, "sec-fetch-site": "cross-site" },
    );
    expect([none.status, wrong.status, crossSite.status, fetchMeta.status]).toEqual([403, 403, 403, 403]);
    expect(none.text).toContain("did not come from this console");
    expect(crossSite.text).toContain("another site");
    expect((await getPause(app.store.db)).paused).toBe(false);
    expect((await systemEvents()).length).toBe(eventsBefore);

    // The same request with the session's token from this site is what works.
    const good = await post("/status/pause", { reason: "maintenance", _csrf: csrf }, { ...jar, origin: app.url });
    expect(good.status).toBe(303);
    expect((await getPause(app.store.db)).paused).toBe(true);
    await setPause(app.store, false, { actor: "test", channel: "test" }, Date.now());
    await context.close();
  });

  it("a form on another site posting to Pitcrew in the signed-in browser changes nothing", async () => {
    const { context, page, csrf } = await session(TOKENS.admin);
    // localhost and 127.0.0.1 are different sites: the SameSite=Strict cookie stays home.
    const evil: Server = createServer((_req, res) => {
      res.setHeader("content-type", "text/html");
      res.end(
        `<!doctype html><form method="post" action="${app.url}/status/pause"><input type="hidden" name="_csrf" value="${csrf}"><input type="hidden" name="reason" value="forged"><button>Win a prize</button></form>`,
      );
    });
    await new Promise<void>((r) => evil.listen(0, "127.0.0.1", r));
    try {
      await page.goto(`http://localhost:${(evil.address() as { port: number }).port}/`);
      const [response] = await Promise.all([
        page.waitForResponse((r) => r.url().endsWith("/status/pause")),
        page.getByRole("button", { name: "Win a prize" }).click(),
      ]);
      expect(response.status()).toBeGreaterThanOrEqual(400);
      expect((await getPause(app.store.db)).paused).toBe(false);
    } finally {
      await new Promise<void>((r) => evil.close(() => r()));
      await context.close();
    }
  });
});

describe("scopes on the Status page", () => {
  it("shows a read-only user no Pause control and refuses their forged pause POST, even with their own CSRF token", async () => {
    const { context, page, cookie, csrf } = await session(TOKENS.reader);
    await page.goto(`${app.url}/status`);
    await expect.poll(() => page.locator("#automation-state").textContent()).toContain("running");
    expect(await page.getByRole("button", { name: /pause automation/i }).count()).toBe(0);
    expect(await page.locator("form#pause-form").count()).toBe(0);

    const forged = await post(
      "/status/pause",
      { reason: "forged", _csrf: csrf },
      { cookie: `${SESSION_COOKIE}=${cookie.value}`, origin: app.url },
    );
    expect(forged.status).toBe(403);
    expect(forged.text).toContain("needs the &quot;admin&quot; scope");
    const bearer = await post("/status/pause", { reason: "forged" }, { authorization: `Bearer ${TOKENS.approver}` });
    expect(bearer.status).toBe(403);
    expect((await getPause(app.store.db)).paused).toBe(false);
    await context.close();
  });

  it("lets an admin pause and resume; both are recorded as the person, and resuming queues analysis for incidents that waited", async () => {
    const tag = newTag();
    const now = Date.now();
    const waiting = newIncidentRow(
      {
        id: newId("inc", now),
        fingerprint: `console-${tag}`,
        dedupe_key: null,
        open_key: `console-${tag}`,
        title: "waited while paused",
        source: "test",
        severity: "warning",
        namespace: `ns-${tag}`,
        service: null,
        alertname: "Test",
        labels: {},
        annotations: {},
      },
      now,
    );
    await app.store.db.insertInto("incidents").values(waiting).execute();

    const { context, page } = await session(TOKENS.admin);
    await page.goto(`${app.url}/status`);
    await page.getByLabel("Reason (recorded)").fill("database migration <tonight>");
    await Promise.all([page.waitForURL(/\/status$/), page.getByRole("button", { name: "Pause automation" }).click()]);
    await expect.poll(() => page.locator("#automation-state").textContent()).toContain("paused by console:ops");
    expect(await page.locator("#automation-state").textContent()).toContain("database migration <tonight>");
    expect(await getPause(app.store.db)).toMatchObject({
      paused: true,
      by: "console:ops",
      reason: "database migration <tonight>",
    });

    await Promise.all([page.waitForURL(/\/status$/), page.getByRole("button", { name: "Resume automation" }).click()]);
    await expect.poll(() => page.locator("#automation-state").textContent()).toContain("running");
    expect((await getPause(app.store.db)).paused).toBe(false);
    const [paused, resumed] = (await systemEvents()).slice(-2);
    expect(paused).toMatchObject({
      type: "system.paused",
      actor: "console:ops",
      channel: "console",
      reason: "database migration <tonight>",
    });
    expect(resumed).toMatchObject({ type: "system.resumed", actor: "console:ops", channel: "console" });
    const analysis = await app.store.db.selectFrom("tasks").selectAll().where("incident_id", "=", waiting.id).execute();
    expect(analysis.map((t) => [t.kind, t.created_by])).toEqual([["incident.analyze", "console:ops"]]);
    await context.close();
  });
});

describe("sessions on MySQL", () => {
  it("signs in and out with sessions in MySQL rows, and the console migration runs twice safely", async () => {
    const mysql = (await storeFactories()).find((f) => f.name === "mysql")!;
    if (!mysql.available) return;
    const store = await mysql.make({ own: true });
    const other = await startConsoleApp({ store });
    try {
      await up(store.db as never);
      const login = await fetch(`${other.url}/login`, {
        method: "POST",
        redirect: "manual",
        headers: { "content-type": "application/x-www-form-urlencoded", origin: other.url },
        body: new URLSearchParams({ token: TOKENS.approver, next: "/fleet" }),
      });
      expect(login.status).toBe(303);
      expect(login.headers.get("location")).toBe("/fleet");
      const value = new RegExp(`${SESSION_COOKIE}=([^;]+)`).exec(login.headers.get("set-cookie") ?? "")![1]!;
      const row = await store.db
        .selectFrom("console_sessions")
        .selectAll()
        .where("id", "=", sha256(value))
        .executeTakeFirstOrThrow();
      expect(row).toMatchObject({ subject: "oncall", scopes: "approve", method: "token" });

      const page = await fetch(`${other.url}/fleet`, {
        headers: { accept: "text/html", cookie: `${SESSION_COOKIE}=${value}` },
      });
      expect(page.status).toBe(200);
      const logout = await fetch(`${other.url}/logout`, {
        method: "POST",
        redirect: "manual",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          origin: other.url,
          cookie: `${SESSION_COOKIE}=${value}`,
        },
        body: new URLSearchParams({ _csrf: row.csrf }),
      });
      expect(logout.status).toBe(303);
      expect(
        await store.db.selectFrom("console_sessions").selectAll().where("id", "=", sha256(value)).execute(),
      ).toEqual([]);
    } finally {
      await other.close();
      await store.close();
    }
  });
});
