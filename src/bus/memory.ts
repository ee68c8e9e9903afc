import { EventEmitter } from "node:events";
import { type Clock, systemClock } from "../shared/clock.ts";
import type { Logger } from "../shared/logger.ts";
import { unavailable } from "../shared/errors.ts";
import type { Heartbeat, TaskEvent } from "./jobs.ts";
import {
  defaultQueueSettings,
  type DeadLetter,
  type Delivery,
  type Handler,
  type QueueSettings,
  type Subscription,
  type TaskMark,
  type TaskQueue,
} from "./port.ts";

// The in-process adapter for embedded mode: the same delivery semantics as the JetStream
// adapter (explicit ack, ack deadline extended by working(), nak with delay, term, bounded
// deliveries, de-duplication by id), without the durability: after a restart the database
// re-queues what is still pending (see tasks/requeue.ts).

type Entry = { seq: number; subject: string; data: unknown; deliveries: number };

type Consumer = {
  concurrency: number;
  inFlight: number;
  handler: Handler;
  active: Set<Promise<void>>;
  stopped: boolean;
};

type Stream = ReturnType<typeof createStream>;

function createStream(
  name: string,
  settings: { ackWaitMs: number; maxDeliver: number },
  clock: Clock,
  onDead: (e: Entry) => void,
) {
  const ready: Entry[] = [];
  const delayed = new Set<unknown>();
  const consumers: Consumer[] = [];
  let seq = 0;
  let rr = 0;
  let closed = false;
  // Messages published and not yet acked, termed or dead: the depth, as a JetStream work queue counts it.
  let stored = 0;

  function requeue(entry: Entry, delayMs = 0) {
    if (closed) return;
    if (entry.deliveries >= settings.maxDeliver) {
      stored -= 1;
      onDead(entry);
      return;
    }
    if (delayMs <= 0) {
      ready.push(entry);
      dispatch();
      return;
    }
    const t = clock.setTimeout(() => {
      delayed.delete(t);
      ready.push(entry);
      dispatch();
    }, delayMs);
    delayed.add(t);
  }

  function deliver(consumer: Consumer, entry: Entry) {
    entry.deliveries += 1;
    let settled = false;
    let timer: unknown;
    const arm = () => {
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = clock.setTimeout(() => {
        if (settled) return;
        settled = true;
        requeue(entry);
      }, settings.ackWaitMs);
    };
    const settle = () => {
      if (settled) return false;
      settled = true;
      if (timer !== undefined) clock.clearTimeout(timer);
      return true;
    };
    const delivery: Delivery = {
      data: entry.data,
      subject: entry.subject,
      attempt: entry.deliveries,
      maxDeliver: settings.maxDeliver,
      async ack() {
        if (settle()) stored -= 1;
      },
      nak(delayMs) {
        if (settle()) requeue(entry, delayMs);
      },
      term() {
        if (settle()) stored -= 1;
      },
      working() {
        if (!settled) arm();
      },
    };
    arm();
    consumer.inFlight += 1;
    const run = (async () => {
      try {
        await consumer.handler(delivery);
      } catch {
        // An unsettled delivery whose handler threw is retried after a short pause.
        delivery.nak(250);
      } finally {
        consumer.inFlight -= 1;
        dispatch();
      }
    })();
    consumer.active.add(run);
    void run.then(() => consumer.active.delete(run));
  }

  function dispatch() {
    while (ready.length > 0 && !closed) {
      const free = consumers.filter((c) => !c.stopped && c.inFlight < c.concurrency);
      if (free.length === 0) return;
      const consumer = free[rr++ % free.length]!;
      deliver(consumer, ready.shift()!);
    }
  }

  return {
    name,
    publish(subject: string, data: unknown) {
      ready.push({ seq: ++seq, subject, data, deliveries: 0 });
      stored += 1;
      queueMicrotask(dispatch);
    },
    consume(concurrency: number, handler: Handler): Subscription {
      const consumer: Consumer = { concurrency, inFlight: 0, handler, active: new Set(), stopped: false };
      consumers.push(consumer);
      queueMicrotask(dispatch);
      return {
        async stop() {
          consumer.stopped = true;
          await Promise.allSettled([...consumer.active]);
          // A second stop() must not remove another consumer (indexOf -1 would take the last).
          const i = consumers.indexOf(consumer);
          if (i >= 0) consumers.splice(i, 1);
        },
      };
    },
    depth: () => stored,
    close() {
      closed = true;
      stored = 0;
      for (const t of delayed) clock.clearTimeout(t);
      delayed.clear();
      ready.length = 0;
    },
  };
}

export function createMemoryQueue(opts: { settings?: Partial<QueueSettings>; log: Logger; clock?: Clock }): TaskQueue {
  const settings = { ...defaultQueueSettings, ...opts.settings };
  // Ack deadlines, nak delays, the de-duplication window and marker ages all read this clock.
  const clock = opts.clock ?? systemClock;
  const p = settings.subjectPrefix;
  const seen = new Map<string, number>();
  const control = new EventEmitter();
  const deadHandlers = new Set<(d: DeadLetter) => Promise<void>>();
  const taskStreams = new Map<string, Stream>();
  // Task markers, kept in expiry order (a write re-inserts), like the KV bucket's max age.
  const marks = new Map<string, { mark: TaskMark; expiresAt: number }>();
  let closed = false;

  const onDeadTask = (pool: string) => (entry: Entry) => {
    const dead: DeadLetter = { pool, data: entry.data, deliveries: entry.deliveries };
    if (deadHandlers.size === 0)
      opts.log.error({ pool, subject: entry.subject }, "task exhausted its deliveries and nobody handles dead letters");
    for (const h of deadHandlers) {
      h(dead).catch((err) => opts.log.error({ err, pool }, "dead-letter handler failed"));
    }
  };
  const taskStream = (pool: string) => {
    let s = taskStreams.get(pool);
    if (!s) {
      s = createStream(`${settings.tasksStream}:${pool}`, settings, clock, onDeadTask(pool));
      taskStreams.set(pool, s);
    }
    return s;
  };
  // Events are never dropped for running out of deliveries: the ingester retries until it stores.
  const events = createStream(
    settings.eventsStream,
    { ackWaitMs: settings.ackWaitMs, maxDeliver: Number.MAX_SAFE_INTEGER },
    clock,
    () => {},
  );

  function checkOpen() {
    if (closed) throw unavailable("queue.closed", "the in-process queue is closed");
  }

  function isDuplicate(msgId: string): boolean {
    const now = clock.now();
    // Entries are kept in expiry order (re-inserted on set), so pruning stops at the first live one.
    for (const [id, exp] of seen) {
      if (exp >= now) break;
      seen.delete(id);
    }
    if (seen.has(msgId)) return true;
    seen.set(msgId, now + settings.duplicateWindowMs);
    return false;
  }

  function liveMark(taskId: string): TaskMark | null {
    const now = clock.now();
    for (const [id, m] of marks) {
      if (m.expiresAt > now) break;
      marks.delete(id);
    }
    return marks.get(taskId)?.mark ?? null;
  }

  const clone = (body: unknown) => JSON.parse(JSON.stringify(body)) as unknown;

  // close() stops every consumer and waits for its in-flight handlers, as the JetStream adapter does.
  const subs = new Set<Subscription>();
  function track(sub: Subscription): Subscription {
    const tracked: Subscription = {
      async stop() {
        await sub.stop();
        subs.delete(tracked);
      },
    };
    subs.add(tracked);
    return tracked;
  }

  return {
    kind: "memory",
    async publishTask(pool, msgId, body) {
      checkOpen();
      if (isDuplicate(`task:${msgId}`)) return { duplicate: true };
      taskStream(pool).publish(`${p}.tasks.${pool}`, clone(body));
      return { duplicate: false };
    },
    consumeTasks(pool, { concurrency }, handler) {
      return track(taskStream(pool).consume(concurrency, handler));
    },
    async publishTaskEvent(event: TaskEvent) {
      checkOpen();
      if (isDuplicate(`event:${event.id}`)) return;
      events.publish(`${p}.events.${event.taskId}`, clone(event));
    },
    async publishHeartbeat(hb: Heartbeat) {
      checkOpen();
      // Same id space as task events: JetStream de-duplicates per stream, and both share one.
      if (isDuplicate(`event:${hb.id}`)) return;
      events.publish(`${p}.runners.${hb.runnerId}.heartbeat`, clone(hb));
    },
    consumeEvents({ concurrency }, handler) {
      return track(events.consume(concurrency, handler));
    },
    onDeadLetter(handler) {
      deadHandlers.add(handler);
      return { stop: async () => void deadHandlers.delete(handler) };
    },
    async publishControl(taskId, action) {
      checkOpen();
      queueMicrotask(() => control.emit("control", taskId, action));
    },
    subscribeControl(handler) {
      const listener = (taskId: string, action: string) => handler(taskId, action);
      control.on("control", listener);
      return { stop: async () => void control.off("control", listener) };
    },
    async markTask(taskId, mark) {
      checkOpen();
      if (mark === "cancelled" && liveMark(taskId) === "done") return;
      marks.delete(taskId);
      marks.set(taskId, { mark, expiresAt: clock.now() + settings.eventsMaxAgeMs });
    },
    async taskMark(taskId) {
      checkOpen();
      return liveMark(taskId);
    },
    async depths() {
      return Object.fromEntries([...taskStreams].map(([pool, s]) => [pool, s.depth()]));
    },
    async health() {
      return closed ? { ok: false, reason: "in-process queue closed" } : { ok: true };
    },
    async close() {
      if (closed) return;
      // Handlers still running may publish their terminal event before they ack: stop first.
      await Promise.allSettled([...subs].map((x) => x.stop()));
      closed = true;
      for (const s of taskStreams.values()) s.close();
      events.close();
      control.removeAllListeners();
    },
  };
}
