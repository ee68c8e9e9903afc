import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser } from "playwright-core";
import { LOGIN_COOKIE, SESSION_COOKIE, sha256 } from "../../src/console/sessions.ts";
import { launchBrowser, newPage, startConsoleApp, type ConsoleApp } from "../helpers/browser.ts";
import { startOidcProvider } from "../helpers/oidc-provider.ts";

// Sign-in with SSO against a real OpenID Connect provider on loopback: discovery, the authorization
// code flow with PKCE (the provider checks the S256 verifier), a client secret, ID tokens signed
// with jose and verified against the provider's JWKS, and scopes from the MCP scope claim.

const CLIENT_ID = "pitcrew-console";
const CLIENT_SECRET = "console-client-secret-0123456789";
const AUDIENCE = "pitcrew-mcp";

let provider: Awaited<ReturnType<typeof startOidcProvider>>;
let app: ConsoleApp;
let browser: Browser;

beforeAll(async () => {
  provider = await startOidcProvider({
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    accessAudience: AUDIENCE,
    scopeClaim: "pitcrew_scopes",
  });
  app = await startConsoleApp({
    env: {
      MCP_OIDC_ISSUER: provider.issuer,
      MCP_OIDC_AUDIENCE: AUDIENCE,
      MCP_OIDC_SCOPE_CLAIM: "pitcrew_scopes",
      CONSOLE_OIDC_CLIENT_ID: CLIENT_ID,
      CONSOLE_OIDC_CLIENT_SECRET: CLIENT_SECRET,
    },
  });
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
  await app?.close();
  await provider?.close();
});

const sessionOf = (value: string) =>
  app.store.db.selectFrom("console_sessions").selectAll().where("id", "=", sha256(value)).executeTakeFirst();

/** Starts a sign-in as a browser would and stops at the provider's redirect back: the callback URL and the binding cookie. */
async function startSignIn(): Promise<{ callback: string; cookie: string }> {
  const start = await fetch(`${app.url}/auth/login?next=%2Fstatus`, { redirect: "manual" });
  expect(start.status).toBe(303);
  const cookie = /pitcrew_login=([^;]+)/.exec(start.headers.get("set-cookie") ?? "")![1]!;
  const authorize = await fetch(start.headers.get("location")!, { redirect: "manual" });
  expect(authorize.status).toBe(302);
  return { callback: authorize.headers.get("location")!, cookie };
}

const callback = (url: string, cookie?: string) =>
  fetch(url, {
    redirect: "manual",
    headers: { accept: "text/html", ...(cookie ? { cookie: `${LOGIN_COOKIE}=${cookie}` } : {}) },
  });

describe("sign-in with SSO", () => {
  it("signs in through the provider with PKCE and a client secret, as the person the ID token names, with the scopes of the claim", async () => {
    provider.setUser({
      sub: "u-100",
      email: "alice@example.com",
      scope: ["pitcrew:read", "pitcrew:approve", "unrelated"],
    });
    const { context, page } = await newPage(browser);
    await page.goto(`${app.url}/fleet`);
    expect(new URL(page.url()).pathname).toBe("/login");
    await page.getByRole("link", { name: "Sign in with SSO" }).click();
    await page.waitForURL(`${app.url}/fleet`);
    await expect.poll(() => page.locator(".who-name").textContent()).toBe("alice@example.com");
    expect(await page.locator("h1").textContent()).toBe("Fleet");
    expect(provider.refusals).toEqual([]);

    const cookie = (await context.cookies()).find((c) => c.name === SESSION_COOKIE)!;
    expect(await sessionOf(cookie.value)).toMatchObject({
      subject: "alice@example.com",
      method: "oidc",
      via: "oidc:u-100",
      scopes: "approve read",
    });
    // The sign-in under way was used once and is gone.
    expect(await app.store.db.selectFrom("console_logins").selectAll().execute()).toEqual([]);

    // Approve but not admin: the Status page offers no Pause.
    await page.goto(`${app.url}/status`);
    expect(await page.locator("#automation-state").textContent()).toContain("running");
    expect(await page.getByRole("button", { name: /pause automation/i }).count()).toBe(0);
    await context.close();
  });

  it("takes scopes from the access token too when /mcp itself accepts it", async () => {
    // The ID token has no scope claim; the access token (audience MCP_OIDC_AUDIENCE) carries admin.
    provider.setUser({ sub: "u-200", email: "bob@example.com", scope: "admin", scopeIn: "access" });
    const { callback: url, cookie } = await startSignIn();
    const res = await callback(url, cookie);
    expect(res.status).toBe(200);
    const value = /pitcrew_session=([^;]+)/.exec(res.headers.get("set-cookie") ?? "")![1]!;
    expect((await sessionOf(value))?.scopes).toBe("admin");
  });

  it("refuses an account whose token names no Pitcrew scope, and signs no one in", async () => {
    provider.setUser({ sub: "u-300", email: "mallory@example.com", scope: ["openid", "profile"] });
    const before = (await app.store.db.selectFrom("console_sessions").select("id").execute()).length;
    const { context, page } = await newPage(browser);
    await page.goto(`${app.url}/login`);
    await page.getByRole("link", { name: "Sign in with SSO" }).click();
    await expect.poll(() => page.locator("h1").textContent()).toBe("Not allowed");
    expect(await page.getByRole("alert").textContent()).toContain("mallory@example.com has no Pitcrew scope");
    expect((await context.cookies()).find((c) => c.name === SESSION_COOKIE)).toBeUndefined();
    expect((await app.store.db.selectFrom("console_sessions").select("id").execute()).length).toBe(before);
    await context.close();
  });

  it("refuses a callback replayed, one without the browser's sign-in cookie, and a code mixed with another sign-in's state (the provider's PKCE check)", async () => {
    provider.setUser({ sub: "u-400", email: "carol@example.com", scope: "read" });

    // Another browser (no binding cookie) cannot finish someone's sign-in.
    const stolen = await startSignIn();
    expect((await callback(stolen.callback)).status).toBe(400);
    // …and the attempt used it up: the rightful browser has to start again.
    expect((await callback(stolen.callback, stolen.cookie)).status).toBe(400);

    // Used once: a replay of a good callback is refused.
    const good = await startSignIn();
    expect((await callback(good.callback, good.cookie)).status).toBe(200);
    const replay = await callback(good.callback, good.cookie);
    expect(replay.status).toBe(400);
    expect(await replay.text()).toContain("sign in again");

    // The code of sign-in A with the state (and so the PKCE verifier) of sign-in B.
    const a = await startSignIn();
    const b = await startSignIn();
    const mixed = new URL(b.callback);
    mixed.searchParams.set("code", new URL(a.callback).searchParams.get("code")!);
    const res = await callback(mixed.toString(), b.cookie);
    expect(res.status).toBe(403);
    expect(provider.refusals).toContain("PKCE verifier does not match the challenge");
    expect(res.headers.get("set-cookie") ?? "").not.toContain(`${SESSION_COOKIE}=`);
  });

  it("refuses an ID token whose nonce belongs to another sign-in", async () => {
    provider.setUser({ sub: "u-500", email: "dave@example.com", scope: "admin", nonce: "a-nonce-from-elsewhere" });
    const { callback: url, cookie } = await startSignIn();
    const res = await callback(url, cookie);
    expect(res.status).toBe(403);
    expect(await res.text()).toContain("does not belong to this sign-in");
    expect(res.headers.get("set-cookie") ?? "").not.toContain(`${SESSION_COOKIE}=`);
  });
});
