import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser, Page } from "playwright-core";
import { appendEvent } from "../../src/events/repo.ts";
import { newIncidentRow } from "../../src/incidents/repo.ts";
import { newId } from "../../src/shared/ids.ts";
import {
  launchBrowser,
  newPage,
  screenshot,
  signIn,
  startConsoleApp,
  TOKENS,
  type ConsoleApp,
} from "../helpers/browser.ts";
import { fixHarness, scaleSkill, uid, type FixHarness } from "../helpers/fixes.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";

// The incidents and approvals of the web console in Debian's Chromium, against a real Pitcrew app
// whose fixes open pull requests in a real bare GitOps repository (createLocalGitHost): sign in,
// list → incident → diff → Approve (the merge happens, and another person's open page follows the
// timeline live), Reject with a reason, a reader who sees no buttons and whose forged POST is
// refused, markup from alerts and diffs shown as text, and the list's filters and pages.

const skill = scaleSkill();
// A fix whose change carries markup: the diff line must stay text.
const markupSkill = scaleSkill({
  name: "annotate-app",
  action: {
    patch: [
      {
        file: "apps/{{labels.app}}.yaml",
        path: "metadata.annotations.note",
        set: `<script>window.pwned = "diff"</script>`,
      },
    ],
  },
});

let store: TestStore;
let h: FixHarness;
let app: ConsoleApp;
let browser: Browser;

beforeAll(async () => {
  store = await (await storeFactories()).find((f) => f.name === "sqlite")!.make();
  h = await fixHarness(store, [skill, markupSkill]);
  app = await startConsoleApp({
    store,
    deps: { gitHost: h.host, approvals: h.approvals, now: () => h.clock.now, skills: () => [skill, markupSkill] },
    liveIntervalMs: 100,
  });
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
  await app?.close();
  await h?.close();
  await store?.close();
});

/** An incident whose fix opened its pull request and waits for approval; the clock moves on a little first. */
async function proposed(app_ = uid(), s = skill) {
  h.clock.now += 7 * 60_000;
  const fix = await h.fixing(s, app_);
  const run = await h.runTask(fix.taskId);
  expect(run.ok, JSON.stringify(run)).toBe(true);
  return { ...fix, approval: await h.pending(fix.id) };
}

/** An incident row as the intake would leave it, with a plan and a timeline entry (for the list). */
async function incident(over: {
  title: string;
  state: string;
  severity?: string;
  namespace?: string;
  service?: string;
  skill?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  at?: number;
}) {
  const t = over.at ?? (h.clock.now += 60_000);
  const row = newIncidentRow(
    {
      id: newId("inc", t),
      fingerprint: `fp-${uid()}`,
      dedupe_key: null,
      open_key: null,
      title: over.title,
      source: "alertmanager",
      severity: over.severity ?? "warning",
      namespace: over.namespace ?? "shop",
      service: over.service ?? null,
      alertname: "KubePodCrashLooping",
      labels: over.labels ?? {},
      annotations: over.annotations ?? {},
    },
    t,
  );
  const plan = over.skill
    ? JSON.stringify({ skill: over.skill, rationale: "rules", confidence: 1, planner: "rules" })
    : null;
  await store.db
    .insertInto("incidents")
    .values({ ...row, state: over.state, plan })
    .execute();
  await appendEvent(
    store.db,
    store.dialect,
    {
      type: "incident.detected",
      incidentId: row.id,
      actor: "alertmanager",
      channel: "alertmanager",
      reason: "fired",
      data: {},
      occurredAt: t,
    },
    t,
  );
  return row.id;
}

/** What the planner and AlertManager would have said about the checkout incident (for the README's picture). */
async function describeCheckout(id: string) {
  const at = h.clock.now - 4 * 60_000;
  await store.db
    .updateTable("incidents")
    .set({
      source: "alertmanager",
      opened_at: at,
      severity: "warning",
      labels: JSON.stringify({ alertname: "AppSlow", app: "checkout", namespace: "shop", severity: "warning" }),
      annotations: JSON.stringify({
        summary: "checkout p99 latency is 2.4 s (SLO 800 ms)",
        runbook_url: "https://runbooks.example.com/app-slow",
      }),
      plan: JSON.stringify({
        skill: "scale-app",
        params: {},
        risk: "medium",
        approval: "before_merge",
        planner: "claude",
        confidence: 0.86,
        rationale:
          "CPU throttling on both checkout pods since 09:02 while request rate doubled; no deploy in the last 6 h, so scaling out is safer than a rollback.",
      }),
      llm_calls: 1,
      llm_input_tokens: 3412,
      llm_output_tokens: 187,
    })
    .where("id", "=", id)
    .execute();
  await store.db
    .insertInto("alerts")
    .values({
      id: newId("alr", at),
      incident_id: id,
      fingerprint: "9f2c1e7a",
      status: "firing",
      alertname: "AppSlow",
      labels: JSON.stringify({ alertname: "AppSlow", app: "checkout", namespace: "shop", severity: "warning" }),
      annotations: JSON.stringify({ summary: "checkout p99 latency is 2.4 s (SLO 800 ms)" }),
      starts_at: at,
      ends_at: null,
      generator_url: "https://prometheus.example.com/graph?g0.expr=checkout",
      receiver: "pitcrew",
      group_key: null,
      received_at: at,
      dedupe: null,
      repeat_count: 2,
      last_received_at: null,
    })
    .execute();
}

// Page scripts as strings: the project's TypeScript has no DOM types.
const liveConnected = (page: Page) =>
  expect
    .poll(() => page.evaluate(`document.body.getAttribute("data-live-connected")`), { timeout: 10_000 })
    .toBe("true");
/** Marks the document, so a later check tells whether the page was reloaded (the mark would be gone). */
const markLoaded = (page: Page) => page.evaluate(`window.loadedOnce = 1`);
const stillLoaded = (page: Page) => page.evaluate(`window.loadedOnce`);

describe("incidents and approvals in the browser", () => {
  it("signs in, goes from the list to an incident and its diff, approves: the merge happens and an open page follows the timeline live", async () => {
    // A few incidents the way an on-call engineer would find them (and the README's pictures show).
    await incident({
      title: "payments: pods crash-looping after deploy",
      state: "resolved",
      severity: "critical",
      namespace: "payments",
      service: "payments-api",
      skill: "crashloop-after-deploy",
    });
    await incident({
      title: "search: ResourceQuota for CPU nearly used up",
      state: "escalated",
      severity: "warning",
      namespace: "search",
      service: "indexer",
      skill: "quota-raise",
    });
    const p = await proposed("checkout");
    await describeCheckout(p.id);

    const viewer = await newPage(browser);
    await signIn(viewer.page, app, TOKENS.reader, `/incidents/${p.id}`);
    await markLoaded(viewer.page);
    await liveConnected(viewer.page);
    expect(await viewer.page.getByRole("button", { name: /Approve/ }).count()).toBe(0);

    const { page, context } = await newPage(browser);
    await signIn(page, app, TOKENS.approver, "/");
    expect(new URL(page.url()).pathname).toBe("/incidents");
    const row = page.getByRole("row").filter({ hasText: "checkout is slow" });
    await expect
      .poll(() => row.textContent())
      .toMatch(/proposed[\s\S]*warning[\s\S]*shop \/ checkout[\s\S]*scale-app[\s\S]*#\d+ awaiting approval/);
    await screenshot(page, "incidents");

    await Promise.all([
      page.waitForURL(`**/incidents/${p.id}`),
      row.getByRole("link", { name: "checkout is slow" }).click(),
    ]);
    expect(await page.getByRole("heading", { level: 1 }).textContent()).toBe("checkout is slow");
    const diff = page.getByRole("region", { name: "apps/checkout.yaml" });
    expect(await diff.locator("del").allTextContents()).toEqual(["-  replicas: 2"]);
    expect(await diff.locator("ins").allTextContents()).toEqual(["+  replicas: 3"]);
    await screenshot(page, "incident");

    await page.getByLabel("Note (optional)").fill("one-line bump, matches the runbook");
    await Promise.all([
      page.waitForURL(`**/incidents/${p.id}`),
      page.getByRole("button", { name: `Approve and merge #${p.approval.pr_number}` }).click(),
    ]);
    await expect
      .poll(() => page.locator("#approvals").textContent())
      .toMatch(/approved by oncall via console[\s\S]*one-line bump, matches the runbook/);
    expect(await page.getByRole("button", { name: /Approve and merge/ }).count()).toBe(0);

    // The merge really happened in the GitOps repository, naming the person and the channel.
    expect(h.show("main", "apps/checkout.yaml")).toContain("replicas: 3");
    expect(h.git("log", "-1", "--format=%B", "main")).toMatch(/Approved-by: oncall\nApproved-via: console/);
    expect((await h.approvalsOf(p.id))[0]).toMatchObject({
      state: "approved",
      decided_by: "oncall",
      channel: "console",
      reason: "one-line bump, matches the runbook",
    });

    // The reader's page, never reloaded, shows the decision, the merge and the new state.
    const timeline = viewer.page.locator("#timeline");
    await expect
      .poll(() => timeline.textContent(), { timeout: 15_000 })
      .toMatch(/approval\.approved by console:oncall via console: one-line bump, matches the runbook/);
    await expect.poll(() => timeline.textContent(), { timeout: 15_000 }).toContain("pr.merged");
    await expect.poll(() => viewer.page.locator("#live-facts").textContent()).toContain("verifying");
    await expect.poll(() => viewer.page.locator("#change").textContent()).toContain("merged");
    expect(await stillLoaded(viewer.page)).toBe(1);
    await viewer.context.close();
    await context.close();
  });

  it("keeps a note being typed when a live update of its region comes back meanwhile", async () => {
    const p = await proposed();
    const { page, context } = await newPage(browser);
    await signIn(page, app, TOKENS.approver, `/incidents/${p.id}`);
    await liveConnected(page);
    const src = (await page.locator("#live-approvals").getAttribute("data-live"))!;
    // The region's next refresh is held until the note is being typed.
    let letGo!: () => void;
    const held = new Promise<void>((r) => (letGo = r));
    let asked = false;
    await page.route(
      (url) => url.pathname + url.search === src,
      async (route) => {
        asked = true;
        await held;
        await route.continue();
      },
    );
    // Something on the incident's timeline: the approvals region asks for its new content.
    await appendEvent(
      store.db,
      store.dialect,
      {
        type: "incident.note",
        incidentId: p.id,
        actor: "test",
        channel: "test",
        reason: "a change",
        occurredAt: Date.now(),
      },
      Date.now(),
    );
    await expect.poll(() => asked, { timeout: 10_000 }).toBe(true);
    const note = page.getByLabel("Note (optional)");
    await note.fill("half-typed note");
    letGo();
    // The answer came back and was set aside: the region says it is behind, and what is being typed
    // is still there. It is fetched again once they leave.
    await expect
      .poll(() => page.locator("#live-approvals").getAttribute("data-live-stale"), { timeout: 10_000 })
      .toBe("true");
    expect(await note.inputValue()).toBe("half-typed note");
    await page.getByRole("heading", { level: 1 }).click();
    await expect
      .poll(() => page.locator("#live-approvals").getAttribute("data-live-stale"), { timeout: 10_000 })
      .toBe(null);
    await context.close();
  });

  it("rejects with a reason, which the approval, the timeline and the closed pull request record", async () => {
    const p = await proposed();
    const { page, context } = await newPage(browser);
    await signIn(page, app, TOKENS.approver, `/incidents/${p.id}`);
    // The reason is required: an empty one is not sent.
    await page.getByRole("button", { name: "Reject" }).click();
    expect((await h.approvalsOf(p.id))[0]!.state).toBe("pending");

    await page.getByLabel("Reason for rejecting").fill("scaling hides the leak; roll back instead");
    await Promise.all([page.waitForURL(`**/incidents/${p.id}`), page.getByRole("button", { name: "Reject" }).click()]);
    await expect
      .poll(() => page.locator("#approvals").textContent())
      .toMatch(/rejected by oncall via console[\s\S]*scaling hides the leak; roll back instead/);
    expect(await page.locator("#timeline").textContent()).toMatch(
      /approval\.rejected by console:oncall via console: scaling hides the leak; roll back instead/,
    );
    expect((await h.approvalsOf(p.id))[0]).toMatchObject({
      state: "rejected",
      decided_by: "oncall",
      channel: "console",
      reason: "scaling hides the leak; roll back instead",
    });
    expect(h.pullRecord(p.approval.pr_number!).state).toBe("closed");
    expect(h.show("main", p.file)).toContain("replicas: 2");
    await context.close();
  });

  it("shows a reader the approval without buttons, and refuses a POST they forge from their own page", async () => {
    const p = await proposed();
    const { page, context } = await newPage(browser);
    await signIn(page, app, TOKENS.reader, `/incidents/${p.id}`);
    expect(await page.locator("#approvals").textContent()).toContain("deciding needs the approve scope");
    expect(await page.locator("#approvals form").count()).toBe(0);

    // The reader builds the form the approver would get, with their own valid CSRF token, and sends it.
    const csrf = await page.locator('form[action="/logout"] input[name="_csrf"]').inputValue();
    await Promise.all([
      page.waitForLoadState("load"),
      page.evaluate(`(() => {
        const f = document.createElement("form");
        f.method = "post";
        f.action = ${JSON.stringify(`/approvals/${p.approval.id}/approve`)};
        for (const [name, value] of Object.entries(${JSON.stringify({ _csrf: csrf, reason: "forged" })})) {
          const i = document.createElement("input");
          i.type = "hidden";
          i.name = name;
          i.value = value;
          f.append(i);
        }
        document.body.append(f);
        f.submit();
      })()`),
    ]);
    await expect.poll(() => page.getByRole("heading", { level: 1 }).textContent()).toBe("Not allowed");
    expect((await h.approvalsOf(p.id))[0]!.state).toBe("pending");
    expect((await h.events(p.id)).filter((e) => e.type === "approval.approved")).toEqual([]);
    expect(h.show("main", p.file)).toContain("replicas: 2");
    await context.close();
  });

  it("shows markup in annotations, labels, the title and a diff line as text, and runs none of it", async () => {
    const evil = `<script>window.pwned = "alert"</script><img src=x onerror="window.pwned = 'img'">`;
    const id = await incident({
      title: `Checkout ${evil}`,
      state: "escalated",
      labels: { team: evil },
      annotations: { description: `Look: ${evil}` },
    });
    const withDiff = await proposed(uid(), markupSkill);
    const { page, context } = await newPage(browser);
    await signIn(page, app, TOKENS.reader, `/incidents/${id}`);
    expect(await page.getByRole("heading", { level: 1 }).textContent()).toBe(`Checkout ${evil}`);
    expect(await page.locator("#h-annotations + dl").textContent()).toContain(`Look: ${evil}`);
    expect(await page.locator("#h-labels + dl").textContent()).toContain(evil);
    const ranNothing = async () => {
      expect(await page.locator("main script, main img").count()).toBe(0);
      expect(await page.evaluate(`typeof window.pwned`)).toBe("undefined");
    };
    await ranNothing();

    await page.goto(`${app.url}/incidents/${withDiff.id}`);
    expect(await page.locator("#change ins").allTextContents()).toContain(
      `+    note: <script>window.pwned = "diff"</script>`,
    );
    await ranNothing();
    await page.goto(`${app.url}/incidents`);
    expect(await page.getByRole("link", { name: `Checkout ${evil}` }).count()).toBe(1);
    await ranNothing();
    await context.close();
  });

  it("filters the list by state, severity, namespace and text, pages through it, and adds a new incident live", async () => {
    const ns = `team-${uid()}`;
    const base = h.clock.now;
    for (let i = 0; i < 53; i++) {
      await incident({
        title: i % 2 ? `api latency ${i}` : `disk pressure ${i}`,
        state: i % 3 ? "escalated" : "resolved",
        severity: i % 4 ? "warning" : "critical",
        namespace: ns,
        at: base + i * 1000,
      });
    }
    h.clock.now = base + 60_000;
    const { page, context } = await newPage(browser);
    await signIn(page, app, TOKENS.reader, "/incidents");
    const filters = page.getByRole("search", { name: "Filter incidents" });
    await filters.getByLabel("Namespace").fill(ns);
    await Promise.all([page.waitForURL(/namespace=/), filters.getByRole("button", { name: "Filter" }).click()]);
    const rows = page.locator("#incidents-live tbody tr");
    expect(await rows.count()).toBe(50);
    expect(await rows.first().textContent()).toContain("disk pressure 52");
    await Promise.all([page.waitForURL(/cursor=/), page.getByRole("link", { name: "Older incidents" }).click()]);
    expect(await rows.allTextContents()).toEqual([
      expect.stringContaining("disk pressure 2"),
      expect.stringContaining("api latency 1"),
      expect.stringContaining("disk pressure 0"),
    ]);
    expect(await filters.getByLabel("Namespace").inputValue()).toBe(ns);

    await filters.getByLabel("State").selectOption("resolved");
    await filters.getByLabel("Severity").fill("critical");
    await filters.getByLabel("Text").fill("DISK");
    await Promise.all([page.waitForURL(/q=DISK/), filters.getByRole("button", { name: "Filter" }).click()]);
    // i % 3 == 0 (resolved), i % 4 == 0 (critical), even (disk): 0, 12, 24, 36, 48.
    expect(await rows.allTextContents()).toEqual(
      [48, 36, 24, 12, 0].map((i) => expect.stringContaining(`disk pressure ${i}`)),
    );
    expect(new URL(page.url()).searchParams.get("cursor")).toBeNull();

    // A new incident that matches appears without a reload.
    await markLoaded(page);
    await liveConnected(page);
    await incident({ title: "disk pressure on node-7", state: "resolved", severity: "critical", namespace: ns });
    await expect.poll(() => rows.first().textContent(), { timeout: 15_000 }).toContain("disk pressure on node-7");
    expect(await rows.count()).toBe(6);
    expect(await stillLoaded(page)).toBe(1);
    await context.close();
  });

  it("lists pending approvals with their expiry and diff summary, linked to the incident", async () => {
    const p = await proposed();
    const { page, context } = await newPage(browser);
    await signIn(page, app, TOKENS.approver, "/approvals");
    const item = page.locator("li.approval").filter({ hasText: `${p.app} is slow` });
    expect(await item.textContent()).toMatch(
      /expires in 24 h 0 min[\s\S]*1 file changed, 1 line added, 1 line removed/,
    );
    await Promise.all([
      page.waitForURL(`**/incidents/${p.id}#approvals`),
      item.getByRole("link", { name: "Review the change and decide" }).click(),
    ]);
    expect(await page.getByRole("button", { name: `Approve and merge #${p.approval.pr_number}` }).count()).toBe(1);
    await context.close();
  });

  it("reads well on a phone: the incident page does not scroll sideways", async () => {
    const p = await proposed();
    const { page, context } = await newPage(browser, { phone: true });
    await signIn(page, app, TOKENS.approver, `/incidents/${p.id}`);
    expect(await page.evaluate(`document.documentElement.scrollWidth`)).toBeLessThanOrEqual(390);
    expect(await page.getByRole("button", { name: /Approve and merge/ }).isVisible()).toBe(true);
    await context.close();
  });
});
