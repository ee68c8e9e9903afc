import { http, HttpResponse } from "msw";
import { Telegram } from "telegraf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMemoryQueue } from "../../src/bus/memory.ts";
import { createApprovalService } from "../../src/approvals/service.ts";
import { createTelegramChannel } from "../../src/approvals/telegram.ts";
import { createTelegramPoller } from "../../src/approvals/telegram-polling.ts";
import { registerTelegramWebhook } from "../../src/approvals/telegram-webhook.ts";
import { createTelegramRuntime } from "../../src/approvals/telegram-start.ts";
import { loadConfig } from "../../src/config/load.ts";
import { buildHttpApp } from "../../src/http/app.ts";
import { createMetrics } from "../../src/shared/metrics.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";
import { waitFor } from "../helpers/wait.ts";
import { strictMockServer } from "../helpers/msw.ts";
import { createTelegramMock, TELEGRAM_API_ROOT, type TelegramMock } from "../msw/telegram.ts";

// Long polling with two control planes on one database: only the lease holder calls getUpdates,
// the offset lives in the database so a replica that takes over continues where the other
// stopped, and an update handled twice (a take-over before the offset was saved) acts once. And
// webhook mode's registration, retried until Telegram accepts it.

const factories = await storeFactories();
const TOKEN = "987654321:AAH-polling-test-token-for-pitcrew";
const CHAT = "-1002222222222";
const ALICE = { id: 5151, username: "alice", first_name: "Alice" };
const LEASE_MS = 5_000;

const server = strictMockServer();
beforeAll(() => server.listen());
afterAll(() => server.close());

/** A Telegram client whose Bot API calls are counted by method (to tell the two replicas apart). */
function countingApi() {
  const api = new Telegram(TOKEN, { apiRoot: TELEGRAM_API_ROOT });
  const counts: Record<string, number> = {};
  const call = api.callApi.bind(api);
  api.callApi = ((method: string, payload: never, opts?: never) => {
    counts[method] = (counts[method] ?? 0) + 1;
    return call(method as never, payload, opts);
  }) as typeof api.callApi;
  return { api, counts };
}

for (const f of factories) {
  describe.skipIf(!f.available)(`telegram long polling on ${f.name}`, () => {
    let store: TestStore;
    let tg: TelegramMock;
    const clock = { now: Date.now() };
    const queue = createMemoryQueue({ log: silentLogger });

    function replica(owner: string, opts: { idleMs?: number } = {}) {
      const { api, counts } = countingApi();
      const approvals = createApprovalService({
        store,
        log: silentLogger,
        now: () => clock.now,
        skills: () => [],
        fixPool: "default",
        deleteMergedBranches: true,
        sweep: { stuckAfterMs: 600_000, maxRetries: 2 },
      });
      const channel = createTelegramChannel({
        store,
        log: silentLogger,
        now: () => clock.now,
        telegram: { token: TOKEN, defaultChat: CHAT, routes: [], approverIds: [ALICE.id] },
        api,
        approvals,
        queue,
        kick: () => {},
      });
      const poller = createTelegramPoller({
        store,
        log: silentLogger,
        now: () => clock.now,
        api,
        channel,
        token: TOKEN,
        owner,
        leaseMs: LEASE_MS,
        pollTimeoutSec: 0,
        idleMs: opts.idleMs ?? 10,
        retry: { baseMs: 10, maxMs: 50 },
      });
      return { poller, counts };
    }

    /** A `/pause <tag>` from an approver, queued for getUpdates: its effect is one system.paused event. */
    const pause = (tag: string) => tg.enqueueUpdate(tg.textMessage({ from: ALICE, chat: CHAT, text: `/pause ${tag}` }));
    const pausedWith = async (tag: string) =>
      (
        await store.db
          .selectFrom("events")
          .select("id")
          .where("type", "=", "system.paused")
          .where("reason", "=", tag)
          .execute()
      ).length;
    const savedOffset = async () =>
      JSON.parse(
        (
          await store.db
            .selectFrom("settings")
            .select("value")
            .where("key", "=", "telegram.offset.987654321")
            .executeTakeFirstOrThrow()
        ).value,
      ).offset as number;

    beforeAll(async () => {
      store = await f.make({ own: true });
      tg = createTelegramMock({ token: TOKEN, now: () => clock.now });
      server.resetHandlers(...tg.handlers);
    });
    afterAll(async () => {
      await queue.close();
      await store?.close();
    });

    it("polls from one replica at a time, and a replica that takes over continues from the saved offset", async () => {
      const a = replica("cp-a");
      const b = replica("cp-b");
      // A webhook left from an earlier https set-up: the poller deletes it before its first getUpdates.
      await new Telegram(TOKEN, { apiRoot: TELEGRAM_API_ROOT }).setWebhook("https://old.example.com/webhooks/telegram");
      const u1 = pause("p-one");
      expect(await a.poller.pollOnce()).toBe(1);
      expect(tg.webhook()).toBeNull();
      expect(tg.calls.findIndex((c) => c.method === "deleteWebhook")).toBeLessThan(
        tg.calls.findIndex((c) => c.method === "getUpdates"),
      );
      expect(await pausedWith("p-one")).toBe(1);
      expect(await savedOffset()).toBe(u1.update_id + 1);

      // B waits while A's lease runs.
      expect(await b.poller.pollOnce()).toBe(-1);
      expect(b.counts.getUpdates ?? 0).toBe(0);

      // A dies without a word; once its lease ran out, B takes over from the saved offset.
      const u2 = pause("p-two");
      clock.now += LEASE_MS + 1;
      expect(await b.poller.pollOnce()).toBe(1);
      expect(b.counts.getUpdates).toBe(1);
      expect(tg.calls.filter((c) => c.method === "getUpdates").at(-1)!.body.offset).toBe(u1.update_id + 1);
      expect(tg.calls.filter((c) => c.method === "getUpdates").at(-1)!.body.allowed_updates).toEqual([
        "callback_query",
        "message",
      ]);
      expect(await pausedWith("p-one")).toBe(1);
      expect(await pausedWith("p-two")).toBe(1);
      expect(await savedOffset()).toBe(u2.update_id + 1);
      expect(await a.poller.pollOnce()).toBe(-1);
    });

    it("acts once on an update handled before a take-over that found the offset not yet saved", async () => {
      const a = replica("cp-c");
      const b = replica("cp-d");
      clock.now += LEASE_MS + 1;
      const u = pause("p-three");
      expect(await a.poller.pollOnce()).toBe(1);
      // As if A died between handling the update and saving the offset.
      await store.db
        .updateTable("settings")
        .set({ value: JSON.stringify({ offset: u.update_id }) })
        .where("key", "=", "telegram.offset.987654321")
        .execute();
      clock.now += LEASE_MS + 1;
      expect(await b.poller.pollOnce()).toBe(1);
      expect(await pausedWith("p-three")).toBe(1);
      expect(
        tg.succeeded("sendMessage").filter((c) => String(c.body.text).startsWith("Automation paused")),
      ).toHaveLength(
        await store.db
          .selectFrom("events")
          .select("id")
          .where("type", "=", "system.paused")
          .execute()
          .then((r) => r.length),
      );
    });

    it("gives the lease up on stop, so another replica polls at once; recovers from a webhook set meanwhile", async () => {
      const a = replica("cp-e");
      const b = replica("cp-f");
      clock.now += LEASE_MS + 1;
      a.poller.start();
      await waitFor(() => a.poller.polling);
      // A webhook registered behind the poller's back: getUpdates answers 409 until it is deleted again.
      await new Telegram(TOKEN, { apiRoot: TELEGRAM_API_ROOT }).setWebhook(
        "https://elsewhere.example.com/webhooks/telegram",
      );
      pause("p-four");
      await waitFor(async () => (await pausedWith("p-four")) === 1);
      expect(tg.calls.some((c) => c.method === "getUpdates" && c.status === 409)).toBe(true);
      await a.poller.stop();

      pause("p-five");
      expect(await b.poller.pollOnce()).toBe(1);
      expect(await pausedWith("p-five")).toBe(1);
      expect(await pausedWith("p-four")).toBe(1);
    });

    it("skips an update whose answer Telegram refuses for good, so the updates after it still arrive", async () => {
      const a = replica("cp-g");
      clock.now += LEASE_MS + 1;
      // The bot was removed from the chat /help came from: its answer gets a 403.
      server.use(
        http.post(
          `${TELEGRAM_API_ROOT}/bot${TOKEN}/sendMessage`,
          () =>
            HttpResponse.json(
              { ok: false, error_code: 403, description: "Forbidden: bot was kicked from the group chat" },
              { status: 403 },
            ),
          { once: true },
        ),
      );
      const refused = tg.enqueueUpdate(tg.textMessage({ from: ALICE, chat: "-1003333333333", text: "/help" }));
      pause("p-after");
      expect(await a.poller.pollOnce()).toBe(2);
      expect(await pausedWith("p-after")).toBe(1);
      expect(await savedOffset()).toBeGreaterThan(refused.update_id + 1);
      expect(
        await store.db
          .selectFrom("telegram_updates")
          .select("update_id")
          .where("update_id", "=", refused.update_id)
          .execute(),
      ).toHaveLength(1);
    });

    it("registers the webhook with its secret and the update kinds it reads, retrying while Telegram fails", async () => {
      const before = tg.calls.length;
      tg.failNext(2, { status: 502 });
      const api = new Telegram(TOKEN, { apiRoot: TELEGRAM_API_ROOT });
      const reg = registerTelegramWebhook({
        api,
        log: silentLogger,
        url: "https://pitcrew.example.com/webhooks/telegram",
        secret: "webhook-secret-abcdef0123",
        retry: { baseMs: 5, maxMs: 20 },
      });
      expect(await reg.done).toBe(true);
      expect(tg.calls.slice(before).map((c) => [c.method, c.status])).toEqual([
        ["setWebhook", 502],
        ["setWebhook", 502],
        ["setWebhook", 200],
      ]);
      expect(tg.webhook()).toEqual({
        url: "https://pitcrew.example.com/webhooks/telegram",
        secret_token: "webhook-secret-abcdef0123",
        allowed_updates: ["callback_query", "message"],
      });
      await api.deleteWebhook();
    });

    it("runs from the configuration: a webhook at PUBLIC_URL over https, else long polling, through a self-hosted API root", async () => {
      const root = "https://tg.internal.example.com/botapi";
      // Another bot (its update ids start where the first bot's did).
      const token = "555555555:AAH-self-hosted-bot-api-for-pitcrew";
      const self = createTelegramMock({ token, apiRoot: root, now: () => clock.now });
      server.use(...self.handlers);
      const env = {
        TELEGRAM_BOT_TOKEN: token,
        TELEGRAM_CHAT_ID: CHAT,
        TELEGRAM_APPROVER_IDS: String(ALICE.id),
        TELEGRAM_API_ROOT: root,
      };
      const approvals = createApprovalService({
        store,
        log: silentLogger,
        now: () => clock.now,
        skills: () => [],
        fixPool: "default",
        deleteMergedBranches: true,
        sweep: { stuckAfterMs: 600_000, maxRetries: 2 },
      });
      const runtime = (extra: Record<string, string>) =>
        createTelegramRuntime({
          config: loadConfig({ ...env, ...extra }),
          store,
          log: silentLogger,
          now: () => clock.now,
          approvals,
          queue,
          kick: () => {},
        })!;

      const hook = runtime({
        PUBLIC_URL: "https://pitcrew.example.com",
        TELEGRAM_WEBHOOK_SECRET: "webhook-secret-abcdef0123",
      });
      hook.start();
      await waitFor(() => self.webhook());
      await hook.stop();
      expect(self.webhook()).toEqual({
        url: "https://pitcrew.example.com/webhooks/telegram",
        secret_token: "webhook-secret-abcdef0123",
        allowed_updates: ["callback_query", "message"],
      });
      const app = await buildHttpApp({
        log: silentLogger,
        store,
        queue,
        metrics: createMetrics(),
        bodyLimit: 1_048_576,
        telegram: hook.http,
      });
      const res = await app.inject({
        method: "POST",
        url: "/webhooks/telegram",
        headers: { "x-telegram-bot-api-secret-token": "webhook-secret-abcdef0123" },
        payload: self.textMessage({ from: ALICE, chat: CHAT, text: "/pause p-hook" }),
      });
      await app.close();
      expect(res.json()).toEqual({ ok: true, outcome: "handled" });
      expect(await pausedWith("p-hook")).toBe(1);

      const poll = runtime({ PUBLIC_URL: "http://pitcrew.internal:8080" });
      expect(poll.http).toBeUndefined();
      self.enqueueUpdate(self.textMessage({ from: ALICE, chat: CHAT, text: "/pause p-poll" }));
      poll.start();
      await waitFor(async () => (await pausedWith("p-poll")) === 1);
      await poll.stop();
      expect(self.webhook()).toBeNull();
      expect(self.calls.filter((c) => c.method === "getUpdates").length).toBeGreaterThan(0);
    });
  });
}
