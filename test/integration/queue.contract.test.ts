import { randomBytes } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Heartbeat, TaskEvent, TaskMessage } from "../../src/bus/jobs.ts";
import type { DeadLetter, Delivery, QueueSettings, Subscription, TaskQueue } from "../../src/bus/port.ts";
import { createFakeClock, type FakeClock } from "../helpers/clock.ts";
import { queueFactories, streamMessages, untilConsumerIdle } from "../helpers/queues.ts";
import { NATS_URL } from "../helpers/services.ts";

// The TaskQueue contract: every adapter must pass the same suite, against the real thing (a
// real NATS JetStream server for the jetstream adapter). Each test has its own streams and
// subjects (uniqueSettings), so tests never see each other's messages.
//
// No test sleeps to show that something did not happen. The in-process queue runs on a fake
// clock: ten minutes pass in a moment, past every ack wait and nak delay. On JetStream, the
// server's own counts say when nothing is left to deliver (see `drained`).

type Queue = TaskQueue & { settings: QueueSettings };
type Seen = { data: unknown; subject: string; attempt: number; maxDeliver: number; at: number };

/** How a test lets time pass: fake for the in-process queue, real for JetStream (the server's timers). */
type Time = {
  now(): number;
  sleep(ms: number): Promise<void>;
  /** Until `fn` holds; fails once `limitMs` have passed. */
  waitFor(fn: () => boolean | Promise<boolean>, limitMs: number, what?: string): Promise<void>;
  /** Settles `p`, letting time pass meanwhile (a handler it waits for may be waiting on the clock). */
  run<T>(p: Promise<T>): Promise<T>;
};

const uid = () => randomBytes(6).toString("hex");
const realSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const realTime: Time = {
  now: () => performance.now(),
  sleep: realSleep,
  async waitFor(fn, limitMs, what = "condition") {
    const deadline = Date.now() + limitMs;
    for (;;) {
      if (await fn()) return;
      if (Date.now() > deadline) throw new Error(`timed out after ${limitMs} ms waiting for ${what}`);
      await realSleep(20);
    }
  },
  run: (p) => p,
};

/** Time on `clock()`, moved on in 10 ms steps while a test waits. */
function fakeTime(clock: () => FakeClock): Time {
  const step = 10;
  return {
    now: () => clock().now(),
    sleep: (ms) => new Promise<void>((r) => clock().setTimeout(r, ms)),
    async waitFor(fn, limitMs, what = "condition") {
      const c = clock();
      const start = c.now();
      for (;;) {
        await c.settle();
        if (await fn()) return;
        if (c.now() - start > limitMs) throw new Error(`not within ${limitMs} ms (fake clock) waiting for ${what}`);
        await c.advance(step);
      }
    },
    async run(p) {
      let done = false;
      const settled = p.finally(() => void (done = true));
      settled.catch(() => {});
      const c = clock();
      const start = c.now();
      for (;;) {
        await c.settle();
        if (done) return settled;
        if (c.now() - start > 600_000) throw new Error("still not settled after ten minutes (fake clock)");
        await c.advance(step);
      }
    },
  };
}

function task(pool: string, payload: Record<string, unknown> = {}): TaskMessage {
  return TaskMessage.parse({
    v: 1,
    taskId: `tsk_${uid()}`,
    kind: "test.echo",
    pool,
    incidentId: null,
    payload,
    createdAt: Date.now(),
  });
}

function progress(taskId: string, message: string): TaskEvent {
  return TaskEvent.parse({
    id: `evt_${uid()}`,
    taskId,
    runnerId: "rnr-1",
    attempt: 1,
    at: Date.now(),
    type: "task.progress",
    message,
    percent: 50,
  });
}

function heartbeat(runnerId: string): Heartbeat {
  return Heartbeat.parse({
    type: "runner.heartbeat",
    id: `evt_${uid()}`,
    runnerId,
    host: "test-host",
    version: "0.0.0-test",
    pool: "default",
    concurrency: 2,
    running: [`tsk_${uid()}`],
    totals: { succeeded: 3, failed: 1, cancelled: 0 },
    startedAt: Date.now() - 60_000,
    at: Date.now(),
  });
}

const taskId = (d: { data: unknown }) => (d.data as TaskMessage).taskId;

/** Consumes a pool, records every delivery (`at` on the test's time), then lets `act` settle it (ack by default). */
function record(
  t: Time,
  q: Queue,
  pool: string,
  concurrency: number,
  act: (d: Delivery) => Promise<void> | void = (d) => d.ack(),
) {
  const seen: Seen[] = [];
  const sub = q.consumeTasks(pool, { concurrency }, async (d) => {
    seen.push({ data: d.data, subject: d.subject, attempt: d.attempt, maxDeliver: d.maxDeliver, at: t.now() });
    await act(d);
  });
  return { seen, sub };
}

const factories = await queueFactories();

for (const f of factories) {
  describe.skipIf(!f.available)(f.name, () => {
    const opened: Queue[] = [];
    const subs: Subscription[] = [];
    let clock = createFakeClock();
    const t = f.name === "memory" ? fakeTime(() => clock) : realTime;
    // How much earlier than its nominal time a JetStream redelivery may reach us, measured from
    // when we received the first delivery: the server starts the ack wait when it sends, so the
    // first delivery's trip to us is taken off; a nak delay starts after our nak, so only the two
    // clocks' reading differs. The in-process queue's timers fire exactly on the fake clock.
    const early = f.name === "memory" ? { ackWait: 0, clock: 0 } : { ackWait: 100, clock: 5 };

    beforeEach(() => {
      clock = createFakeClock();
    });

    async function make(settings: Partial<QueueSettings> = {}): Promise<Queue> {
      const q = await f.make({ ackWaitMs: 1000, ...settings }, { clock });
      opened.push(q);
      return q;
    }
    const keep = <T extends Subscription>(s: T): T => (subs.push(s), s);
    const rec = (q: Queue, pool: string, concurrency: number, act?: (d: Delivery) => Promise<void> | void) =>
      record(t, q, pool, concurrency, act);

    /**
     * Returns once the bus can deliver nothing more on a pool's consumer (or the events consumer),
     * so what a handler has recorded by then is all it will ever get. In-process queue: the fake
     * clock runs ten minutes on, past every ack wait and nak delay in this suite, firing every
     * redelivery that was due. JetStream: the server holds nothing pending and nothing awaiting an
     * ack for the consumer; when `deliveries` is given, its count of deliveries made (redeliveries
     * included) must be exactly that.
     */
    async function drained(q: Queue, consumer: { pool: string } | "events", deliveries?: number) {
      if (q.kind === "memory") {
        await clock.advance(600_000);
        return;
      }
      const state =
        consumer === "events"
          ? await untilConsumerIdle(q.settings.eventsStream, "ingester")
          : await untilConsumerIdle(q.settings.tasksStream, `runners-${consumer.pool}`);
      if (deliveries !== undefined) expect(state.delivered).toBe(deliveries);
    }

    afterEach(async () => {
      await t.run(Promise.allSettled(subs.splice(0).map((s) => s.stop())));
      for (const q of opened.splice(0)) {
        await t.run(q.close()).catch(() => {});
        await f.cleanup(q);
      }
    });

    it("delivers a published task to a consumer of its pool once, with attempt 1 and its body intact, and never again after the ack", async () => {
      const q = await make({ ackWaitMs: 1000, maxDeliver: 3 });
      const body = task("alpha", { nested: { list: [1, "two", null], unicode: "héllo ✓" } });
      const { duplicate } = await q.publishTask("alpha", body.taskId, body);
      expect(duplicate).toBe(false);

      const { seen, sub } = rec(q, "alpha", 1);
      keep(sub);
      await t.waitFor(() => seen.length === 1, 5000, "first delivery");
      expect(seen[0]).toMatchObject({
        data: body,
        subject: `${q.settings.subjectPrefix}.tasks.alpha`,
        attempt: 1,
        maxDeliver: 3,
      });

      // An unacked task would come back after the ack wait.
      await drained(q, { pool: "alpha" }, 1);
      expect(seen).toHaveLength(1);
    });

    it("delivers a task published twice with the same message id once and reports the second publish as a duplicate", async () => {
      const q = await make();
      const first = task("dedup", { copy: 1 });
      const again = { ...first, payload: { copy: 2 } };
      expect(await q.publishTask("dedup", first.taskId, first)).toEqual({ duplicate: false });
      expect(await q.publishTask("dedup", first.taskId, again)).toEqual({ duplicate: true });
      // A marker published after the duplicate: once it arrives, a duplicate (queued before it) would have too.
      const marker = task("dedup");
      expect(await q.publishTask("dedup", marker.taskId, marker)).toEqual({ duplicate: false });

      const { seen, sub } = rec(q, "dedup", 1);
      keep(sub);
      await t.waitFor(() => seen.some((d) => taskId(d) === marker.taskId), 5000, "marker");
      const copies = seen.filter((d) => taskId(d) === first.taskId);
      expect(copies).toHaveLength(1);
      expect(copies[0]!.data).toEqual(first);
    });

    it("redelivers a nak'ed task at once with attempt 2", async () => {
      // An ack wait longer than the test may run: whatever comes back came back because of the nak.
      const q = await make({ ackWaitMs: 120_000 });
      const body = task("nak");
      await q.publishTask("nak", body.taskId, body);
      const { seen, sub } = rec(q, "nak", 1, (d) => (d.attempt === 1 ? d.nak() : d.ack()));
      keep(sub);
      await t.waitFor(() => seen.length === 2, 10_000, "redelivery");
      expect(seen.map((d) => d.attempt)).toEqual([1, 2]);
      expect(seen[1]!.data).toEqual(body);
      expect(seen[1]!.at - seen[0]!.at).toBeLessThan(q.settings.ackWaitMs);
      await drained(q, { pool: "nak" }, 2);
      expect(seen).toHaveLength(2);
    });

    it("does not redeliver a task nak'ed with a delay before the delay has passed", async () => {
      const q = await make({ ackWaitMs: 120_000 });
      const body = task("nakdelay");
      await q.publishTask("nakdelay", body.taskId, body);
      const delay = 500;
      const { seen, sub } = rec(q, "nakdelay", 1, (d) => (d.attempt === 1 ? d.nak(delay) : d.ack()));
      keep(sub);
      await t.waitFor(() => seen.length === 2, 10_000, "delayed redelivery");
      // `at` is taken before the nak is sent: the delay cannot have started earlier.
      const gap = seen[1]!.at - seen[0]!.at;
      expect(gap).toBeGreaterThanOrEqual(delay - early.clock);
      // Not the ack wait's doing: that is longer than the test may run.
      expect(gap).toBeLessThan(q.settings.ackWaitMs);
      expect(seen[1]).toMatchObject({ attempt: 2, data: body });
      await drained(q, { pool: "nakdelay" }, 2);
      expect(seen).toHaveLength(2);
    });

    it("redelivers a task that was neither acked nor nak'ed after the ack wait", async () => {
      const q = await make({ ackWaitMs: 1000 });
      const body = task("abandon");
      await q.publishTask("abandon", body.taskId, body);
      // Attempt 1 returns without settling, as a crashed runner would.
      const { seen, sub } = rec(q, "abandon", 1, (d) => (d.attempt === 1 ? undefined : d.ack()));
      keep(sub);
      await t.waitFor(() => seen.length === 2, 10_000, "redelivery after the ack wait");
      expect(seen.map((d) => d.attempt)).toEqual([1, 2]);
      expect(seen[1]!.data).toEqual(body);
      expect(seen[1]!.at - seen[0]!.at).toBeGreaterThanOrEqual(q.settings.ackWaitMs - early.ackWait);
      await drained(q, { pool: "abandon" }, 2);
      expect(seen).toHaveLength(2);
    });

    it("keeps a task whose handler calls working() from being redelivered for longer than the ack wait", async () => {
      const q = await make({ ackWaitMs: 1000 });
      const body = task("working");
      await q.publishTask("working", body.taskId, body);
      let done = false;
      // Concurrency 2, so a premature redelivery would show up while attempt 1 still runs.
      const { seen, sub } = rec(q, "working", 2, async (d) => {
        if (d.attempt > 1) return d.ack();
        // 1.5 ack waits in all, never more than 0.3 of one without a sign of life.
        for (let i = 0; i < 5; i++) {
          await t.sleep(300);
          d.working();
        }
        await d.ack();
        done = true;
      });
      keep(sub);
      await t.waitFor(() => done, 10_000, "the long handler");
      await drained(q, { pool: "working" }, 1);
      expect(seen.map((d) => d.attempt)).toEqual([1]);
    });

    it("never redelivers a term'ed task", async () => {
      const q = await make({ ackWaitMs: 1000, maxDeliver: 5 });
      const body = task("term");
      await q.publishTask("term", body.taskId, body);
      const dead: DeadLetter[] = [];
      keep(q.onDeadLetter(async (x) => void dead.push(x)));
      const { seen, sub } = rec(q, "term", 1, (d) => d.term("bad body"));
      keep(sub);
      await t.waitFor(() => seen.length === 1, 5000, "first delivery");
      // A message the bus did not take as terminated would be back after the ack wait.
      await drained(q, { pool: "term" }, 1);
      if (q.kind === "jetstream") {
        // A work queue drops a terminated message.
        expect(await streamMessages(q.settings.tasksStream)).toBe(0);
      }
      expect(seen).toHaveLength(1);
      expect(dead).toEqual([]);
    });

    it("never delivers a term'ed event again", async () => {
      const q = await make({ ackWaitMs: 1000 });
      const got: Array<{ data: unknown; attempt: number }> = [];
      keep(
        q.consumeEvents({ concurrency: 1 }, async (d) => {
          got.push({ data: d.data, attempt: d.attempt });
          d.term("invalid event");
        }),
      );
      const ev = progress(`tsk_${uid()}`, "unparseable downstream");
      await q.publishTaskEvent(ev);
      await t.waitFor(() => got.length >= 1, 5000, "the event");
      // Events have unlimited deliveries: only a working term keeps this from coming back forever.
      await drained(q, "events", 1);
      expect(got).toEqual([{ data: ev, attempt: 1 }]);
    });

    it("hands a task that used every delivery to the dead-letter handler exactly once, with its body, pool and deliveries", async () => {
      const q = await make({ ackWaitMs: 1000, maxDeliver: 2 });
      const body = task("doomed", { why: "always fails" });
      const dead: DeadLetter[] = [];
      keep(q.onDeadLetter(async (x) => void dead.push(x)));
      const { seen, sub } = rec(q, "doomed", 1, (d) => d.nak());
      keep(sub);
      await q.publishTask("doomed", body.taskId, body);

      await t.waitFor(() => dead.length > 0, 10_000, "dead letter");
      expect(dead[0]).toEqual({ pool: "doomed", data: body, deliveries: 2 });
      expect(seen.map((d) => d.attempt)).toEqual([1, 2]);
      if (q.kind === "jetstream") {
        // A work queue keeps an exhausted message forever unless the adapter deletes it.
        await t.waitFor(
          async () => (await streamMessages(q.settings.tasksStream)) === 0,
          5000,
          "the tasks stream to be empty",
        );
      }
      await drained(q, { pool: "doomed" }, 2);
      expect(dead).toHaveLength(1);
      expect(seen).toHaveLength(2);
    });

    it("never runs more handlers at once than the consumer's concurrency, and completes every task", async () => {
      const q = await make({ ackWaitMs: 5000 });
      const bodies = Array.from({ length: 6 }, (_, i) => task("slow", { i }));
      for (const b of bodies) await q.publishTask("slow", b.taskId, b);
      let running = 0;
      let peak = 0;
      const completed: string[] = [];
      keep(
        q.consumeTasks("slow", { concurrency: 2 }, async (d) => {
          running += 1;
          peak = Math.max(peak, running);
          // Every task is queued already: a third handler would start while these two work.
          await t.sleep(100);
          running -= 1;
          await d.ack();
          completed.push(taskId(d));
        }),
      );
      await t.waitFor(() => completed.length === 6, 10_000, "all six tasks");
      expect(peak).toBe(2);
      expect([...completed].sort()).toEqual(bodies.map((b) => b.taskId).sort());
    });

    it("shares the work of one pool between two consumers, each task going to exactly one of them", async () => {
      const q = await make({ ackWaitMs: 5000 });
      const handled = { a: [] as string[], b: [] as string[] };
      const handler = (who: "a" | "b") => async (d: Delivery) => {
        handled[who].push(taskId(d));
        await t.sleep(30);
        await d.ack();
      };
      keep(q.consumeTasks("shared", { concurrency: 2 }, handler("a")));
      keep(q.consumeTasks("shared", { concurrency: 2 }, handler("b")));
      const bodies = Array.from({ length: 20 }, (_, i) => task("shared", { i }));
      for (const b of bodies) await q.publishTask("shared", b.taskId, b);

      await t.waitFor(() => handled.a.length + handled.b.length >= 20, 10_000, "all twenty tasks");
      await drained(q, { pool: "shared" }, 20);
      const all = [...handled.a, ...handled.b];
      expect(all).toHaveLength(20);
      expect(new Set(all).size).toBe(20);
      expect([...all].sort()).toEqual(bodies.map((b) => b.taskId).sort());
      expect(handled.a.length).toBeGreaterThan(0);
      expect(handled.b.length).toBeGreaterThan(0);
    });

    it("keeps the pool's other consumers working when one consumer is stopped twice", async () => {
      const q = await make();
      const first = rec(q, "twice", 1);
      const second = rec(q, "twice", 1);
      keep(second.sub);
      await first.sub.stop();
      await first.sub.stop();
      const bodies = Array.from({ length: 3 }, (_, i) => task("twice", { i }));
      for (const b of bodies) await q.publishTask("twice", b.taskId, b);
      await t.waitFor(() => second.seen.length === 3, 5000, "the remaining consumer to get all three");
      await drained(q, { pool: "twice" }, 3);
      expect(first.seen).toEqual([]);
    });

    it("does not deliver a task for one pool to a consumer of another pool", async () => {
      const q = await make();
      const forA = task("a");
      const forB = task("b");
      await q.publishTask("a", forA.taskId, forA);
      await q.publishTask("b", forB.taskId, forB);

      const b = rec(q, "b", 2);
      keep(b.sub);
      await t.waitFor(() => b.seen.length >= 1, 5000, "pool b's task");
      await drained(q, { pool: "b" }, 1);
      expect(b.seen.map(taskId)).toEqual([forB.taskId]);

      // The pool-a task was there all along, waiting for its own consumer.
      const a = rec(q, "a", 1);
      keep(a.sub);
      await t.waitFor(() => a.seen.length >= 1, 5000, "pool a's task");
      expect(a.seen.map(taskId)).toEqual([forA.taskId]);
      expect(a.seen[0]!.subject).toBe(`${q.settings.subjectPrefix}.tasks.a`);
    });

    it("delivers task events and heartbeats to the events consumer with their subjects and bodies", async () => {
      const q = await make();
      const got: Array<{ subject: string; data: unknown; attempt: number }> = [];
      keep(
        q.consumeEvents({ concurrency: 4 }, async (d) => {
          got.push({ subject: d.subject, data: d.data, attempt: d.attempt });
          await d.ack();
        }),
      );
      const ev = progress(`tsk_${uid()}`, "cloning the repo");
      const hb = heartbeat(`rnr-${uid()}`);
      await q.publishTaskEvent(ev);
      await q.publishHeartbeat(hb);

      await t.waitFor(() => got.length >= 2, 5000, "event and heartbeat");
      const p = q.settings.subjectPrefix;
      expect(got.find((g) => g.subject === `${p}.events.${ev.taskId}`)).toMatchObject({ data: ev, attempt: 1 });
      expect(got.find((g) => g.subject === `${p}.runners.${hb.runnerId}.heartbeat`)).toMatchObject({
        data: hb,
        attempt: 1,
      });
      await drained(q, "events", 2);
      expect(got).toHaveLength(2);
    });

    it("delivers a nak'ed event again", async () => {
      const q = await make({ ackWaitMs: 3000 });
      const got: Array<{ data: unknown; attempt: number }> = [];
      keep(
        q.consumeEvents({ concurrency: 1 }, async (d) => {
          got.push({ data: d.data, attempt: d.attempt });
          if (d.attempt === 1) d.nak();
          else await d.ack();
        }),
      );
      const ev = progress(`tsk_${uid()}`, "store was down");
      await q.publishTaskEvent(ev);
      await t.waitFor(() => got.length >= 2, 5000, "redelivered event");
      expect(got).toEqual([
        { data: ev, attempt: 1 },
        { data: ev, attempt: 2 },
      ]);
    });

    it("delivers a task event published twice with the same id once", async () => {
      const q = await make();
      const got: unknown[] = [];
      keep(
        q.consumeEvents({ concurrency: 1 }, async (d) => {
          got.push(d.data);
          await d.ack();
        }),
      );
      const ev = progress(`tsk_${uid()}`, "once");
      const marker = progress(ev.taskId, "marker");
      await q.publishTaskEvent(ev);
      await q.publishTaskEvent(ev);
      await q.publishTaskEvent(marker);
      await t.waitFor(() => got.some((g) => (g as TaskEvent).id === marker.id), 5000, "marker event");
      expect(got.filter((g) => (g as TaskEvent).id === ev.id)).toHaveLength(1);
    });

    it("delivers a heartbeat published twice with the same id once", async () => {
      const q = await make();
      const got: unknown[] = [];
      keep(
        q.consumeEvents({ concurrency: 1 }, async (d) => {
          got.push(d.data);
          await d.ack();
        }),
      );
      const hb = heartbeat(`rnr-${uid()}`);
      const marker = heartbeat(hb.runnerId);
      await q.publishHeartbeat(hb);
      await q.publishHeartbeat({ ...hb, at: hb.at + 1 });
      await q.publishHeartbeat(marker);
      await t.waitFor(() => got.some((g) => (g as Heartbeat).id === marker.id), 5000, "marker heartbeat");
      expect(got.filter((g) => (g as Heartbeat).id === hb.id)).toEqual([hb]);
    });

    it("passes a cancel published for a task to every control subscriber, and not to a stopped one", async () => {
      const q = await make();
      const first: Array<[string, string]> = [];
      const second: Array<[string, string]> = [];
      const s1 = keep(q.subscribeControl((id, action) => void first.push([id, action])));
      keep(q.subscribeControl((id, action) => void second.push([id, action])));
      // A round trip to the server, so both subscriptions are in place before we publish.
      expect(await q.health()).toEqual({ ok: true });

      const t1 = `tsk_${uid()}`;
      await q.publishControl(t1, "cancel");
      await t.waitFor(() => first.length === 1 && second.length === 1, 5000, "cancel on both subscribers");
      expect(first).toEqual([[t1, "cancel"]]);
      expect(second).toEqual([[t1, "cancel"]]);

      await s1.stop();
      const [t2, t3] = [`tsk_${uid()}`, `tsk_${uid()}`];
      await q.publishControl(t2, "cancel");
      // Notices arrive in the order they were sent: once the one after it has reached the live
      // subscriber, t2 would long have reached the stopped one, had it still been listening.
      await q.publishControl(t3, "cancel");
      await t.waitFor(() => second.length === 3, 5000, "the next two cancels");
      expect(second.slice(1)).toEqual([
        [t2, "cancel"],
        [t3, "cancel"],
      ]);
      expect(first).toHaveLength(1);
    });

    it("remembers a task's marker, lets done replace cancelled but never the reverse, and answers null for a task never marked", async () => {
      const q = await make();
      const [cancelledFirst, doneFirst, never] = [`tsk_${uid()}`, `tsk_${uid()}`, `tsk_${uid()}`];
      expect(await q.taskMark(cancelledFirst)).toBeNull();
      await q.markTask(cancelledFirst, "cancelled");
      await q.markTask(cancelledFirst, "cancelled");
      expect(await q.taskMark(cancelledFirst)).toBe("cancelled");
      // A cancelled task's runner stores task.cancelled, then marks it done.
      await q.markTask(cancelledFirst, "done");
      expect(await q.taskMark(cancelledFirst)).toBe("done");
      // A cancel that arrives after the task finished must not make a redelivery report it cancelled.
      await q.markTask(doneFirst, "done");
      await q.markTask(doneFirst, "cancelled");
      expect(await q.taskMark(doneFirst)).toBe("done");
      expect(await q.taskMark(never)).toBeNull();
      if (q.kind === "jetstream") {
        // Markers live on the bus: another process (a runner) connected to it reads them.
        const other = await f.make(q.settings);
        try {
          expect(await other.taskMark(cancelledFirst)).toBe("done");
          expect(await other.taskMark(never)).toBeNull();
        } finally {
          await other.close();
        }
      }
    });

    it("forgets a marker once eventsMaxAgeMs has passed since it was set", async () => {
      const q = await make({ eventsMaxAgeMs: 500, duplicateWindowMs: 400 });
      const id = `tsk_${uid()}`;
      // Taken before the write: the bus cannot have started the marker's age earlier.
      const set = t.now();
      await q.markTask(id, "cancelled");
      expect(await q.taskMark(id)).toBe("cancelled");
      await t.waitFor(async () => (await q.taskMark(id)) === null, 10_000, "the marker to expire");
      expect(t.now() - set).toBeGreaterThanOrEqual(q.settings.eventsMaxAgeMs - early.clock);
    });

    it("reports healthy while open, unhealthy after close, and rejects publishing after close", async () => {
      const q = await make();
      expect(await q.health()).toEqual({ ok: true });
      await q.close();
      const h = await q.health();
      expect(h.ok).toBe(false);
      const body = task("closed");
      await expect(q.publishTask("closed", body.taskId, body)).rejects.toThrow();
      await expect(q.publishTaskEvent(progress(body.taskId, "late"))).rejects.toThrow();
      await expect(q.publishHeartbeat(heartbeat("rnr-late"))).rejects.toThrow();
      await expect(q.publishControl(body.taskId, "cancel")).rejects.toThrow();
      await expect(q.markTask(body.taskId, "done")).rejects.toThrow();
      await expect(q.taskMark(body.taskId)).rejects.toThrow();
    });

    it("waits in close() for in-flight handlers, which can still publish their terminal event and ack", async () => {
      const q = await make({ ackWaitMs: 5000 });
      const body = task("closing");
      await q.publishTask("closing", body.taskId, body);
      let started = false;
      let outcome: string | undefined;
      keep(
        q.consumeTasks("closing", { concurrency: 1 }, async (d) => {
          started = true;
          // Still working when close() is called.
          await t.sleep(200);
          try {
            await q.publishTaskEvent(
              TaskEvent.parse({
                id: `evt_${uid()}`,
                taskId: taskId(d),
                runnerId: "rnr-1",
                attempt: d.attempt,
                at: Date.now(),
                type: "task.succeeded",
                result: null,
              }),
            );
            await d.ack();
            outcome = "acked";
          } catch (err) {
            outcome = `failed: ${(err as Error).message}`;
          }
        }),
      );
      await t.waitFor(() => started, 5000, "the handler");
      await t.run(q.close());
      expect(outcome).toBe("acked");
      expect((await q.health()).ok).toBe(false);
    });

    it("waits in stop() for in-flight handlers to finish, starts no new ones, and leaves the rest queued", async () => {
      // An ack wait longer than the test may run: the rest come back because stop() left them, not by timing out.
      const q = await make({ ackWaitMs: 120_000 });
      const bodies = Array.from({ length: 3 }, (_, i) => task("stopping", { i }));
      for (const b of bodies) await q.publishTask("stopping", b.taskId, b);
      const started: string[] = [];
      const finished: string[] = [];
      const sub = q.consumeTasks("stopping", { concurrency: 1 }, async (d) => {
        started.push(taskId(d));
        await t.sleep(200);
        await d.ack();
        finished.push(taskId(d));
      });
      await t.waitFor(() => started.length === 1, 5000, "first handler");
      await t.run(sub.stop());
      expect(finished).toEqual(started);
      expect(started).toHaveLength(1);

      // The other two are still queued for the next consumer.
      const next = rec(q, "stopping", 2);
      keep(next.sub);
      await t.waitFor(() => next.seen.length === 2, 10_000, "the remaining tasks");
      // Nothing is left that the stopped consumer could still start.
      await drained(q, { pool: "stopping" });
      expect(started).toHaveLength(1);
      expect([...started, ...next.seen.map(taskId)].sort()).toEqual(bodies.map((b) => b.taskId).sort());
    });
  });
}

describe.skipIf(!factories.find((f) => f.name === "jetstream")!.available)("jetstream recovery", () => {
  it("creates the markers bucket again when it was deleted under it, and keeps marking", async () => {
    const f = factories.find((x) => x.name === "jetstream")!;
    const q = await f.make();
    try {
      const before = `tsk_${uid()}`;
      await q.markTask(before, "done");
      const { connect } = await import("@nats-io/transport-node");
      const { jetstreamManager } = await import("@nats-io/jetstream");
      const nc = await connect({ servers: [NATS_URL] });
      await (await jetstreamManager(nc)).streams.delete(`KV_${q.settings.tasksStream}_MARKS`);
      await nc.close();
      const after = `tsk_${uid()}`;
      await q.markTask(after, "cancelled");
      expect(await q.taskMark(after)).toBe("cancelled");
      // What the deleted bucket held is gone with it.
      expect(await q.taskMark(before)).toBeNull();
    } finally {
      await q.close();
      await f.cleanup(q);
    }
  });

  it("keeps consuming after its durable consumer is deleted under it, without a reconnect", async () => {
    const f = factories.find((x) => x.name === "jetstream")!;
    const q = await f.make({ ackWaitMs: 1000 });
    const pool = `p${uid()}`;
    const { seen, sub } = record(realTime, q, pool, 1);
    try {
      await q.publishTask(pool, "first", task(pool));
      await realTime.waitFor(() => seen.length === 1, 5000, "the first delivery");
      const { connect } = await import("@nats-io/transport-node");
      const { jetstreamManager } = await import("@nats-io/jetstream");
      const nc = await connect({ servers: [NATS_URL] });
      await (await jetstreamManager(nc)).consumers.delete(q.settings.tasksStream, `runners-${pool}`);
      await nc.close();
      await q.publishTask(pool, "second", task(pool));
      await realTime.waitFor(() => seen.length === 2, 10_000, "a delivery after the consumer was recreated");
    } finally {
      await sub.stop();
      await q.close();
      await f.cleanup(q);
    }
  });
});
