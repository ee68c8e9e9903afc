import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser } from "playwright-core";
import { silentLogger } from "../../src/shared/logger.ts";
import { newId } from "../../src/shared/ids.ts";
import { createLiveHub, type LiveMessage } from "../../src/console/live.ts";
import type { Executor } from "../../runner/executors/types.ts";
import {
  launchBrowser,
  newPage,
  screenshot,
  signIn,
  startConsoleApp,
  TOKENS,
  type ConsoleApp,
} from "../helpers/browser.ts";
import { startControlPlane, startRunner } from "../helpers/control-plane.ts";
import { storeFactories } from "../helpers/store.ts";
import { waitFor } from "../helpers/wait.ts";

// Live updates: a task page follows its runner's progress, log and end without a reload (events
// reach the page through /live); the poller behind /live finds events committed out of seq order;
// open streams end when the server closes.

describe("a task page in the browser", () => {
  let app: ConsoleApp;
  let browser: Browser;
  let cp: ReturnType<typeof startControlPlane>;
  let runner: ReturnType<typeof startRunner>;
  let release: () => void = () => {};

  // A task kind whose executor reports progress, waits for the test, then logs and finishes.
  const gated: Executor = async (_task, ctx) => {
    await ctx.progress("cloning <b>gitops</b> repository", 40);
    await new Promise<void>((r) => (release = r));
    await ctx.log("stdout", `<img src=x onerror="document.title='owned'"> patched deployment.yaml`);
    return { changed: 1 };
  };

  beforeAll(async () => {
    app = await startConsoleApp({ liveIntervalMs: 100 });
    cp = startControlPlane(app.store, app.queue);
    runner = startRunner(app.queue, { id: `console-live-${newId("tsk").slice(-6)}`, executors: { gated } });
    browser = await launchBrowser();
  });
  afterAll(async () => {
    release();
    await browser?.close();
    await runner?.stop();
    await cp?.stop();
    await app?.close();
  });

  it("shows progress, log lines (as text) and the final state as the runner reports them, without reloading", async () => {
    const { page, context } = await newPage(browser);
    await signIn(page, app, TOKENS.reader);
    const { task } = await app.deps.tasks.create({
      kind: "gated",
      payload: { note: "<script>alert(1)</script>" },
      createdBy: "test",
      channel: "test",
    });
    cp.relay.kick();

    await page.goto(`${app.url}/tasks/${task.id}`);
    await page.evaluate("window.loadedOnce = 1");
    await page.locator('body[data-live-connected="true"]').waitFor();

    await expect
      .poll(() => page.locator("#task-progress").textContent(), { timeout: 15_000 })
      .toContain("cloning <b>gitops</b> repository");
    expect(await page.locator("#task-progress progress").getAttribute("value")).toBe("40");
    expect(await page.locator("#task-state").textContent()).toContain("running");

    release();
    await expect.poll(() => page.locator("#task-state").textContent(), { timeout: 15_000 }).toContain("succeeded");
    expect(await page.locator("#task-log").textContent()).toContain(
      `<img src=x onerror="document.title='owned'"> patched deployment.yaml`,
    );
    expect(await page.locator("#task-log img").count()).toBe(0);
    expect(await page.title()).not.toBe("owned");
    // The payload's markup is text too.
    expect(await page.locator("pre.json").textContent()).toContain("<script>alert(1)</script>");
    // Still the same document: the region was replaced, the page never reloaded.
    expect(await page.evaluate("window.loadedOnce")).toBe(1);
    await screenshot(page, "task");
    await context.close();
  });

  it("adds a new task to the Tasks list while it is open", async () => {
    const { page, context } = await newPage(browser);
    await signIn(page, app, TOKENS.reader, "/tasks");
    await page.locator('body[data-live-connected="true"]').waitFor();
    const { task } = await app.deps.tasks.create({ kind: "noop", payload: {}, createdBy: "test", channel: "test" });
    await expect.poll(() => page.locator(`a[href="/tasks/${task.id}"]`).count(), { timeout: 10_000 }).toBe(1);
    await context.close();
  });
});

describe("the /live poller", () => {
  it.each(["sqlite", "mysql"] as const)("reports an event committed after a later seq (%s)", async (name) => {
    const factory = (await storeFactories()).find((f) => f.name === name)!;
    if (!factory.available) return;
    const store = await factory.make({ own: true });
    const hub = createLiveHub({ store, log: silentLogger, intervalMs: 30 });
    const got: LiveMessage[] = [];
    const unsubscribe = hub.subscribe(
      (m) => got.push(m),
      () => {},
    );
    try {
      const insert = (seq: number, taskId: string) =>
        store.db
          .insertInto("events")
          .values({
            seq,
            id: newId("evt"),
            type: "task.progress",
            task_id: taskId,
            incident_id: null,
            actor: "test",
            channel: "test",
            reason: null,
            data: "{}",
            occurred_at: Date.now(),
            recorded_at: Date.now(),
          })
          .execute();
      // The tail starts from the newest seq at its first poll: one warm-up event after another
      // until one is reported, and the tail is running.
      let seq = 0;
      await waitFor(async () => {
        await insert(++seq, "tsk_warmup");
        return got.some((m) => m.topics.includes("task:tsk_warmup"));
      });
      await insert(seq + 1, "tsk_first");
      await waitFor(() => got.some((m) => m.topics.includes("task:tsk_first")));
      // Then seq+3 commits before seq+2, as two concurrent transactions can.
      await insert(seq + 3, "tsk_later");
      await waitFor(() => got.some((m) => m.topics.includes("task:tsk_later")));
      await insert(seq + 2, "tsk_late");
      await waitFor(() => got.some((m) => m.topics.includes("task:tsk_late")));
      expect(got.flatMap((m) => m.topics)).toEqual(
        expect.arrayContaining(["tasks", "task:tsk_first", "task:tsk_later", "task:tsk_late"]),
      );
    } finally {
      unsubscribe();
      hub.close();
      await store.close();
    }
  });
});

describe("the /live stream", () => {
  it("needs a signed-in reader, sends a hello and keep-alive comments, and ends when the server closes", async () => {
    const app = await startConsoleApp({ liveHeartbeatMs: 200 });
    const anonymous = await fetch(`${app.url}/live`, { headers: { accept: "text/event-stream" } });
    expect(anonymous.status).toBe(401);
    await anonymous.body?.cancel();

    const res = await fetch(`${app.url}/live`, {
      headers: { accept: "text/event-stream", authorization: `Bearer ${TOKENS.reader}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    expect(res.headers.get("content-security-policy")).toContain("default-src 'none'");
    const reader = res.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    expect(first).toContain("event: hello");
    let more = "";
    while (!more.includes(": ping")) more += new TextDecoder().decode((await reader.read()).value);

    // Closing does not wait for the open stream (it never ends by itself), and the stream ends.
    await app.close();
    let done = false;
    while (!done) done = (await reader.read()).done;
    expect(done).toBe(true);
  });
});
