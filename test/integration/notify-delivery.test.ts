import { randomBytes } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { getIncident } from "../../src/incidents/repo.ts";
import { applyTransition, closeAsResolved } from "../../src/incidents/service.ts";
import type { IncidentEvent } from "../../src/incidents/lifecycle.ts";
import { createDeliverer, type DelivererSettings } from "../../src/notify/deliverer.ts";
import { createNotices } from "../../src/notify/service.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { createTelegramMock, TELEGRAM_API_ROOT, type TelegramCall } from "../msw/telegram.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";
import { openIncident } from "../helpers/incidents.ts";
import { waitFor } from "../helpers/wait.ts";
import { strictMockServer } from "../helpers/msw.ts";

// Durable Telegram deliveries against the Bot API fake: outages that never block the lifecycle and
// lose nothing, Telegram's rate limits and its 429s, and one sender among several control planes.
// Time is a fake clock the deliverer and the fake share, so rates are asserted on the times the
// Bot API saw, never on how fast this machine is.

const factories = await storeFactories();
const TOKEN = "123456789:AAHnotifyTESTtokenABCDEFGHIJKLMNOPQ";
const GROUP = "-1001234567890";
const uid = () => randomBytes(4).toString("hex");
const server = strictMockServer();

type Clock = { now: number };

function config(routes: Array<{ label: string; value: string; chat: string }> = [], defaultChat = GROUP) {
  return {
    telegram: {
      token: TOKEN,
      defaultChat,
      routes,
      approverIds: [],
      apiRoot: TELEGRAM_API_ROOT,
      mode: "polling" as const,
    },
    notify: { minSeverity: "warning" as const },
  };
}

/** Most calls in any window of `ms` (calls sorted by time). */
function maxInWindow(calls: TelegramCall[], ms: number): number {
  const t = calls.map((c) => c.at).sort((a, b) => a - b);
  let best = 0;
  for (let a = 0, b = 0; b < t.length; b++) {
    while (t[b]! - t[a]! >= ms) a++;
    best = Math.max(best, b - a + 1);
  }
  return best;
}

for (const f of factories) {
  describe.skipIf(!f.available)(`Telegram deliveries on ${f.name}`, () => {
    let store: TestStore;
    const clock: Clock = { now: Date.parse("2026-11-20T08:00:00Z") };
    let mock: ReturnType<typeof createTelegramMock>;

    beforeAll(async () => {
      // A private database: a deliverer serves every row of its database.
      store = await f.make({ own: true });
      server.listen();
    });
    afterEach(async () => {
      server.resetHandlers();
      // Each test starts with nothing pending and the lease free.
      await store.db.deleteFrom("deliveries").execute();
      await store.db.deleteFrom("settings").where("key", "=", "notify.deliverer").execute();
    });
    afterAll(async () => {
      server.close();
      await store?.close();
    });

    function fake(opts: { now?: () => number } = {}) {
      mock = createTelegramMock({ token: TOKEN, now: opts.now ?? (() => clock.now) });
      server.use(...mock.handlers);
      return mock;
    }

    function deliverer(
      cfg = config(),
      owner = `cp-${uid()}`,
      settings: Partial<DelivererSettings> = {},
      now = () => clock.now,
    ) {
      return createNotices(cfg, { store, log: silentLogger, now, owner, settings });
    }

    /** An incident as the intake opens one (test/helpers/incidents.ts). */
    const open = (labels: Record<string, string> = {}, severity = "critical") =>
      openIncident(store, {
        now: clock.now,
        key: uid(),
        severity,
        namespace: labels.namespace ?? "shop",
        labels,
        annotations: {},
      });

    async function move(id: string, event: IncidentEvent, reason: string) {
      await store.db
        .transaction()
        .execute(async (trx) =>
          applyTransition(
            trx,
            store.dialect,
            (await getIncident(trx, id))!,
            event,
            { actor: "pitcrew:test", channel: "engine", reason },
            clock.now,
          ),
        );
    }

    async function resolve(id: string) {
      await store.db
        .transaction()
        .execute(async (trx) =>
          closeAsResolved(
            trx,
            store.dialect,
            (await getIncident(trx, id))!,
            "alert.resolved",
            { actor: "alertmanager", channel: "alertmanager", reason: "alert resolved" },
            clock.now,
          ),
        );
    }

    /** Runs delivery passes, jumping the clock to each next due time, until nothing is pending. */
    async function drain(d: ReturnType<typeof deliverer>, maxMs = 3_600_000) {
      const end = clock.now + maxMs;
      for (;;) {
        const r = await d.runOnce();
        if (r.more) continue;
        if (r.nextAt === null) return;
        if (r.nextAt > end) throw new Error(`still pending after ${maxMs} ms`);
        clock.now = Math.max(clock.now, r.nextAt);
      }
    }

    const pending = async () =>
      Number(
        (
          await store.db
            .selectFrom("deliveries")
            .select((eb) => eb.fn.countAll().as("n"))
            .where("state", "=", "pending")
            .executeTakeFirstOrThrow()
        ).n,
      );
    const cardsOf = (id: string) => mock.succeeded("sendMessage").filter((c) => String(c.body.text).includes(id));

    it("keeps the lifecycle going while the Bot API is down, then delivers every notice exactly once", async () => {
      for (const failure of [{ status: 502 as const }, { network: true as const }]) {
        fake();
        const d = deliverer();
        mock.fail(failure);
        const ids: string[] = [];
        // 20 incidents open and move while Telegram answers nothing but failures.
        for (let i = 0; i < 20; i++) {
          ids.push(await open());
          await d.runOnce();
          clock.now += 5000;
        }
        for (const [i, id] of ids.entries()) {
          await move(id, "analysis.started", "analysing");
          if (i % 2) await move(id, "escalate", `no skill for ${id}`);
          else await resolve(id);
          await d.runOnce();
          clock.now += 5000;
        }
        for (const [i, id] of ids.entries())
          expect((await getIncident(store.db, id))!.state).toBe(i % 2 ? "escalated" : "resolved");
        const failed = mock.calls.filter((c) => !c.ok);
        expect(failed.length).toBeGreaterThan(0);
        // The outage costs one probe per backoff step, not one failed call per notice per pass.
        expect(failed.length).toBeLessThan(20);
        expect(mock.succeeded()).toHaveLength(0);
        expect(await pending()).toBe(20);

        mock.fail(null);
        await drain(d);
        expect(await pending()).toBe(0);
        expect(mock.succeeded("sendMessage")).toHaveLength(20);
        for (const [i, id] of ids.entries()) {
          const cards = cardsOf(id);
          expect(cards).toHaveLength(1);
          // One message, saying how it ended.
          expect(mock.message(GROUP, (cards[0]!.result as { message_id: number }).message_id)!.text).toContain(
            i % 2 ? "Escalated to a person" : "Resolved in",
          );
        }
        expect(await store.db.selectFrom("deliveries").select("id").where("state", "=", "dead").execute()).toHaveLength(
          0,
        );
      }
    });

    it("waits the retry_after of a 429 before sending to that chat again", async () => {
      fake();
      const d = deliverer();
      mock.failNext(1, { retryAfter: 7 });
      const id = await open();
      await drain(d);
      const sends = mock.calls.filter((c) => c.method === "sendMessage");
      expect(sends.map((c) => c.status)).toEqual([429, 200]);
      expect(sends[1]!.at - sends[0]!.at).toBeGreaterThanOrEqual(7000);
      expect(cardsOf(id)).toHaveLength(1);
      const row = await store.db.selectFrom("deliveries").selectAll().where("ref", "=", id).executeTakeFirstOrThrow();
      // A 429 is Telegram's pacing, not a failure: no attempt counted.
      expect(row).toMatchObject({ state: "sent", attempts: 0, target: GROUP });
    });

    it("coalesces a burst of changes into one message, and sends again when the incident changed while its message was in flight", async () => {
      fake();
      const d = deliverer();
      const id = await open();
      // Opened, then escalated (a card change) and analysed again (not one): two requests, one pending row.
      for (const step of ["analysis.started", "escalate", "analysis.started"] as const)
        await move(id, step, `step ${step}`);
      expect(
        await store.db.selectFrom("deliveries").select(["state", "requests"]).where("ref", "=", id).execute(),
      ).toEqual([{ state: "pending", requests: 2 }]);
      // While Telegram is answering the first send, the incident escalates (a commit of its own).
      mock.onRequest(async (call) => {
        mock.onRequest(null);
        if (call.method === "sendMessage") await move(id, "escalate", "the analysis found nothing to do");
      });
      await drain(d);
      const [card] = cardsOf(id);
      expect(mock.succeeded("sendMessage")).toHaveLength(1);
      expect(mock.succeeded("editMessageText")).toHaveLength(1);
      expect(mock.message(GROUP, (card!.result as { message_id: number }).message_id)!.text).toContain(
        "Escalated to a person — the analysis found nothing to do",
      );
      expect(await pending()).toBe(0);
    });

    it("gives a notice up when Telegram refuses it for good, with a notice.dead event, and the incident moves on", async () => {
      fake();
      const d = deliverer();
      mock.fail({ errorCode: 400, description: "Bad Request: chat not found" });
      const id = await open();
      await drain(d);
      expect(mock.calls.map((c) => c.status)).toEqual([400]);
      const row = await store.db.selectFrom("deliveries").selectAll().where("ref", "=", id).executeTakeFirstOrThrow();
      expect(row).toMatchObject({ state: "dead", pending_key: null, last_error: "400 Bad Request: chat not found" });
      const dead = await store.db
        .selectFrom("events")
        .selectAll()
        .where("incident_id", "=", id)
        .where("type", "=", "notice.dead")
        .execute();
      expect(dead).toHaveLength(1);
      expect(dead[0]!.reason).toBe("telegram incident.card not delivered: 400 Bad Request: chat not found");
      // The next change asks again, in a new row.
      mock.fail(null);
      await move(id, "escalate", "nobody could be told");
      await drain(d);
      expect(cardsOf(id)).toHaveLength(1);
    });

    it("sends a new card when the old one was deleted from the chat", async () => {
      fake();
      const d = deliverer();
      const id = await open();
      await drain(d);
      const first = cardsOf(id)[0]!.result as { message_id: number };
      mock.failNext(1, { errorCode: 400, description: "Bad Request: message to edit not found" });
      await move(id, "escalate", "no skill matches");
      await drain(d);
      const cards = cardsOf(id);
      expect(cards).toHaveLength(2);
      const second = cards[1]!.result as { message_id: number };
      expect(second.message_id).not.toBe(first.message_id);
      expect(
        await store.db
          .selectFrom("notice_messages")
          .select("message_id")
          .where("incident_id", "=", id)
          .executeTakeFirstOrThrow(),
      ).toEqual({ message_id: String(second.message_id) });
      expect(mock.message(GROUP, second.message_id)!.text).toContain("Escalated to a person");
    });

    it("sends a storm of 200 incidents to one group within 20 messages a minute and one a second", async () => {
      fake();
      const d = deliverer();
      const ids: string[] = [];
      for (let i = 0; i < 200; i++) ids.push(await open());
      const start = clock.now;
      await drain(d);
      const sends = mock.succeeded("sendMessage");
      expect(sends).toHaveLength(200);
      expect(new Set(sends.map((c) => String(c.body.chat_id)))).toEqual(new Set([GROUP]));
      expect(maxInWindow(mock.calls, 60_000)).toBeLessThanOrEqual(20);
      expect(maxInWindow(mock.calls, 1000)).toBeLessThanOrEqual(1);
      for (const id of ids) expect(cardsOf(id)).toHaveLength(1);
      // And no slower than the limit: 200 messages at 20 a minute take just under 10 minutes.
      expect(clock.now - start).toBeLessThan(10 * 60_000 + 5000);
    });

    it("sends a storm spread over 100 private chats within 30 messages a second", async () => {
      fake();
      const routes = Array.from({ length: 100 }, (_, i) => ({ label: "team", value: `t${i}`, chat: String(5000 + i) }));
      const d = deliverer(config(routes));
      for (let i = 0; i < 200; i++) await open({ team: `t${i % 100}` });
      await drain(d);
      const sends = mock.succeeded("sendMessage");
      expect(sends).toHaveLength(200);
      expect(new Set(sends.map((c) => String(c.body.chat_id))).size).toBe(100);
      expect(maxInWindow(mock.calls, 1000)).toBeLessThanOrEqual(30);
      expect(maxInWindow(mock.calls, 1000)).toBeGreaterThan(20);
      for (const chat of new Set(sends.map((c) => String(c.body.chat_id))))
        expect(
          maxInWindow(
            sends.filter((c) => String(c.body.chat_id) === chat),
            1000,
          ),
        ).toBe(1);
    });

    it("two control planes on one database send each notice once; a stopped one's lease passes to the other", async () => {
      // Real time here: both loops run as serve runs them, woken by the commits.
      fake({ now: () => Date.now() });
      const routes = Array.from({ length: 30 }, (_, i) => ({ label: "team", value: `t${i}`, chat: String(7000 + i) }));
      const a = deliverer(config(routes), "cp-a", { pollMs: 200, leaseMs: 1500 }, () => Date.now());
      const b = deliverer(config(routes), "cp-b", { pollMs: 200, leaseMs: 1500 }, () => Date.now());
      a.start();
      b.start();
      try {
        const ids: string[] = [];
        for (let i = 0; i < 30; i++) ids.push(await open({ team: `t${i}` }));
        await waitFor(async () => (await pending()) === 0 && mock.succeeded("sendMessage").length >= 30, 20_000);
        for (const id of ids) expect(cardsOf(id)).toHaveLength(1);
        expect(mock.succeeded("sendMessage")).toHaveLength(30);

        // The holder stops (its lease is released); the other sends what comes next.
        const holder = (
          await store.db
            .selectFrom("settings")
            .select("updated_by")
            .where("key", "=", "notify.deliverer")
            .executeTakeFirstOrThrow()
        ).updated_by;
        await (holder === "cp-a" ? a : b).stop();
        const later = await open({ team: "t3" });
        await waitFor(async () => cardsOf(later).length === 1, 10_000);
        const now = (
          await store.db
            .selectFrom("settings")
            .select("updated_by")
            .where("key", "=", "notify.deliverer")
            .executeTakeFirstOrThrow()
        ).updated_by;
        expect(now).toBe(holder === "cp-a" ? "cp-b" : "cp-a");
      } finally {
        await a.stop();
        await b.stop();
      }
    });

    it("a crashed sender's lease expires and another replica takes over", async () => {
      fake();
      const crashed = createDeliverer({
        store,
        log: silentLogger,
        now: () => clock.now,
        owner: "cp-crashed",
        senders: {},
        settings: { leaseMs: 30_000 },
      });
      expect((await crashed.runOnce()).leader).toBe(true);
      const d = deliverer(config(), "cp-survivor");
      const id = await open();
      expect((await d.runOnce()).leader).toBe(false);
      expect(cardsOf(id)).toHaveLength(0);
      clock.now += 30_000;
      expect((await d.runOnce()).leader).toBe(true);
      expect(cardsOf(id)).toHaveLength(1);
    });
  });
}
