// The JetStream adapter of the TaskQueue port. Over 400 lines on purpose: connection state
// (connected, streams ensured, consumers ensured) is shared by every method through one closure,
// and splitting it would pass that state around instead of keeping it in one place.
import { connect, type NatsConnection, type Subscription as NatsSub } from "@nats-io/transport-node";
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type StreamConfig,
} from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { backoffMs } from "../shared/backoff.ts";
import type { Logger } from "../shared/logger.ts";
import { errorMessage, unavailable, withTimeout } from "../shared/errors.ts";
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

export type JetStreamOptions = {
  servers: string[];
  token?: string;
  user?: string;
  password?: string;
  replicas?: number;
  /** Connection name shown by the server (`pitcrew-serve`, `pitcrew-runner-<id>`). */
  name: string;
  settings?: Partial<QueueSettings>;
  log: Logger;
  /** How long a publish waits for a connection and the server's ack. */
  publishTimeoutMs?: number;
};

const nanos = (ms: number) => ms * 1_000_000;

/** The KV bucket of task markers, named after the tasks stream (`PITCREW_TASKS_MARKS`). */
export const marksBucketName = (tasksStream: string) => `${tasksStream}_MARKS`;

const enc = new TextEncoder();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function createJetStreamQueue(opts: JetStreamOptions): TaskQueue & { ready(): Promise<void> } {
  const s: QueueSettings = { ...defaultQueueSettings, ...opts.settings };
  const p = s.subjectPrefix;
  const log = opts.log;
  const publishTimeoutMs = opts.publishTimeoutMs ?? 5000;
  const subs = new Set<Subscription>();
  let closed = false;
  let connected = false;
  let streamsError: string | undefined = "streams not yet ensured";
  let nc: NatsConnection | undefined;
  let js: JetStreamClient | undefined;
  let jsm: JetStreamManager | undefined;
  const ensuredConsumers = new Map<string, Promise<void>>();
  const marksBucket = marksBucketName(s.tasksStream);
  let marks: KV | undefined;
  let ensuring: Promise<void> | undefined;

  // Connect in the background and keep trying: the control plane serves /healthz (and reports
  // not-ready) while NATS is away, instead of refusing to start.
  const connection = (async () => {
    const conn = await connect({
      servers: opts.servers,
      name: opts.name,
      token: opts.token,
      user: opts.user,
      pass: opts.password,
      waitOnFirstConnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 1000,
      pingInterval: 5000,
      maxPingOut: 2,
    });
    nc = conn;
    connected = true;
    js = jetstream(conn);
    jsm = await jetstreamManager(conn, { checkAPI: false });
    watchStatus(conn);
    await ensureStreams().catch(() => {});
    return conn;
  })();
  connection.catch((err) => log.error({ err: { message: errorMessage(err) } }, "nats connection failed"));

  function watchStatus(conn: NatsConnection) {
    void (async () => {
      for await (const st of conn.status()) {
        if (st.type === "disconnect") {
          connected = false;
          log.warn({ server: st.server }, "nats disconnected");
        } else if (st.type === "reconnect") {
          connected = true;
          log.info({ server: st.server }, "nats reconnected");
          // The server may have lost its state (new volume): put streams and consumers back.
          ensuredConsumers.clear();
          await ensureStreams().catch(() => {});
        } else if (st.type === "close") {
          connected = false;
        }
      }
    })();
  }

  async function ready(): Promise<void> {
    if (closed) throw unavailable("queue.closed", "the queue is closed");
    await withTimeout(connection, publishTimeoutMs, "nats");
  }

  function streamConfigs(): Array<Partial<StreamConfig> & { name: string }> {
    const common = {
      storage: StorageType.File,
      num_replicas: opts.replicas ?? 1,
      duplicate_window: nanos(s.duplicateWindowMs),
    };
    return [
      {
        ...common,
        name: s.tasksStream,
        subjects: [`${p}.tasks.>`],
        retention: RetentionPolicy.Workqueue,
        discard: DiscardPolicy.Old,
      },
      {
        ...common,
        name: s.eventsStream,
        subjects: [`${p}.events.>`, `${p}.runners.>`],
        retention: RetentionPolicy.Limits,
        discard: DiscardPolicy.Old,
        max_age: nanos(s.eventsMaxAgeMs),
      },
    ];
  }

  /** Creates the streams, or updates them when their mutable settings differ. Idempotent; one run at a time. */
  function ensureStreams(): Promise<void> {
    ensuring ??= ensureStreamsNow().finally(() => (ensuring = undefined));
    return ensuring;
  }

  async function ensureStreamsNow(): Promise<void> {
    const m = jsm!;
    try {
      for (const cfg of streamConfigs()) {
        let info;
        try {
          info = await m.streams.info(cfg.name);
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
        if (!info) {
          try {
            await m.streams.add(cfg);
            log.info({ stream: cfg.name }, "stream created");
          } catch (err) {
            // Another process created it first.
            if (!/already in use|already exists/i.test(errorMessage(err))) throw err;
          }
          continue;
        }
        const c = info.config;
        if (c.retention !== cfg.retention) {
          throw new Error(
            `stream ${cfg.name} exists with retention ${c.retention}, expected ${cfg.retention}; delete it or use another name`,
          );
        }
        const drift =
          (cfg.max_age ?? 0) !== c.max_age ||
          cfg.duplicate_window !== c.duplicate_window ||
          (cfg.num_replicas ?? 1) !== c.num_replicas ||
          cfg.subjects!.some((subj) => !c.subjects?.includes(subj));
        if (drift) {
          const subjects = [...new Set([...(c.subjects ?? []), ...cfg.subjects!])];
          await m.streams.update(cfg.name, { ...c, ...cfg, subjects });
          log.info({ stream: cfg.name }, "stream updated");
        }
      }
      await ensureMarks();
      streamsError = undefined;
    } catch (err) {
      streamsError = errorMessage(err);
      log.error({ err: { message: streamsError } }, "could not ensure jetstream streams");
      throw err;
    }
  }

  /**
   * The markers bucket: one value per task, kept `eventsMaxAgeMs` after its last write (well past
   * the time a task's message can still be delivered), replicated like the streams. Kvm.create opens
   * an existing bucket as it is, so a changed age or replica count is applied here, as for streams.
   * Reads go to the stream leader (no direct get): a missing bucket then answers "not found" at once
   * instead of a timeout, and a read never sees a replica that lags behind a marker just written.
   */
  async function ensureMarks(): Promise<void> {
    const replicas = opts.replicas ?? 1;
    const kv = await new Kvm(js!).create(marksBucket, {
      history: 1,
      ttl: s.eventsMaxAgeMs,
      replicas,
      allow_direct: false,
    });
    const stream = `KV_${marksBucket}`;
    const c = (await jsm!.streams.info(stream)).config;
    if (c.max_age !== nanos(s.eventsMaxAgeMs) || c.num_replicas !== replicas) {
      await jsm!.streams.update(stream, { ...c, max_age: nanos(s.eventsMaxAgeMs), num_replicas: replicas });
      log.info({ bucket: marksBucket }, "markers bucket updated");
    }
    marks = kv;
  }

  /** Runs a marker operation; a bucket deleted under us is ensured again once (a put then finds no stream to answer). */
  async function withMarks<T>(what: string, op: (kv: KV) => Promise<T>): Promise<T> {
    await ready();
    try {
      if (!marks || streamsError) await ensureStreams();
      try {
        return await withTimeout(op(marks!), publishTimeoutMs, "nats");
      } catch (err) {
        if (!isNotFound(err) && !/no responders|jetstream is not enabled/i.test(errorMessage(err))) throw err;
        await ensureStreams();
        return await withTimeout(op(marks!), publishTimeoutMs, "nats");
      }
    } catch (err) {
      throw unavailable("queue.marker_failed", `${what} failed: ${errorMessage(err)}`, err);
    }
  }

  function ensureConsumer(stream: string, cfg: Partial<ConsumerConfig> & { durable_name: string }): Promise<void> {
    const key = `${stream}/${cfg.durable_name}`;
    let pending = ensuredConsumers.get(key);
    if (!pending) {
      pending = (async () => {
        await ready();
        if (streamsError) await ensureStreams();
        const m = jsm!;
        try {
          const info = await m.consumers.info(stream, cfg.durable_name);
          const c = info.config;
          if (
            c.ack_wait !== cfg.ack_wait ||
            c.max_deliver !== cfg.max_deliver ||
            c.max_ack_pending !== cfg.max_ack_pending
          ) {
            await m.consumers.update(stream, cfg.durable_name, {
              ack_wait: cfg.ack_wait,
              max_deliver: cfg.max_deliver,
              max_ack_pending: cfg.max_ack_pending,
            });
          }
        } catch (err) {
          if (!isNotFound(err)) throw err;
          await m.consumers.add(stream, cfg);
        }
      })();
      ensuredConsumers.set(key, pending);
      pending.catch(() => ensuredConsumers.delete(key));
    }
    return pending;
  }

  function toDelivery(m: JsMsg): Delivery {
    let data: unknown;
    try {
      data = m.json();
    } catch {
      data = undefined;
    }
    return {
      data,
      subject: m.subject,
      attempt: m.info.deliveryCount,
      maxDeliver: s.maxDeliver,
      async ack() {
        const ok = await m.ackAck({ timeout: publishTimeoutMs });
        if (!ok) throw unavailable("queue.ack_failed", "the server did not confirm the ack");
      },
      nak: (delayMs) => m.nak(delayMs),
      // NATS before 2.10 ignores "+TERM <reason>" (it only matches a bare +TERM), so the message
      // would come back after the ack wait; the reason goes to our log instead.
      term: (reason) => {
        if (reason) log.debug({ subject: m.subject, reason }, "message terminated");
        m.term();
      },
      working: () => m.working(),
    };
  }

  /** Pulls with at most `concurrency` messages in flight; survives disconnects. */
  function pullLoop(
    stream: string,
    durable: string,
    ensure: () => Promise<void>,
    concurrency: number,
    handler: Handler,
  ): Subscription {
    let stopping = false;
    let inFlight = 0;
    const active = new Set<Promise<void>>();
    let slotFreed: (() => void) | undefined;
    let current: { stop(): void } | undefined;
    // Looked up once (a consumer-info request), again only after a failure.
    let consumer: Awaited<ReturnType<JetStreamClient["consumers"]["get"]>> | undefined;

    const loop = (async () => {
      while (!stopping) {
        try {
          await ensure();
          if (inFlight >= concurrency) {
            await new Promise<void>((r) => (slotFreed = r));
            continue;
          }
          consumer ??= await js!.consumers.get(stream, durable);
          const batch = await consumer.fetch({ max_messages: concurrency - inFlight, expires: 2000 });
          current = batch;
          // stop() may have come while we were fetching: it could not stop this batch.
          if (stopping) batch.stop();
          for await (const m of batch) {
            // A stopped batch still yields what had already arrived; hand it back at once rather
            // than start a handler after stop() or leave it for the ack wait.
            if (stopping) {
              m.nak();
              continue;
            }
            inFlight += 1;
            const run = (async () => {
              const d = toDelivery(m);
              try {
                await handler(d);
              } catch (err) {
                log.warn({ err: { message: errorMessage(err) }, subject: m.subject }, "handler failed; redelivering");
                m.nak(backoffMs(d.attempt, { baseMs: 1000, maxMs: 30_000 }));
              } finally {
                inFlight -= 1;
                slotFreed?.();
                slotFreed = undefined;
              }
            })();
            active.add(run);
            void run.then(() => active.delete(run));
          }
        } catch (err) {
          if (stopping) break;
          consumer = undefined;
          // The consumer (or its stream) was deleted under us: ensure both again, not only on reconnect.
          if (isNotFound(err)) {
            ensuredConsumers.delete(`${stream}/${durable}`);
            streamsError ??= errorMessage(err);
          }
          log.debug({ err: { message: errorMessage(err) }, durable }, "pull failed; retrying");
          await sleep(500);
        }
      }
    })();

    const sub: Subscription = {
      async stop() {
        stopping = true;
        current?.stop();
        slotFreed?.();
        await loop;
        await Promise.allSettled([...active]);
        subs.delete(sub);
      },
    };
    subs.add(sub);
    return sub;
  }

  async function publish(subject: string, msgId: string, body: unknown) {
    await ready();
    try {
      return await js!.publish(subject, enc.encode(JSON.stringify(body)), { msgID: msgId, timeout: publishTimeoutMs });
    } catch (err) {
      throw unavailable("queue.publish_failed", `publish to ${subject} failed: ${errorMessage(err)}`, err);
    }
  }

  return {
    kind: "jetstream",
    ready,
    async publishTask(pool, msgId, body) {
      const ack = await publish(`${p}.tasks.${pool}`, msgId, body);
      return { duplicate: ack.duplicate };
    },
    consumeTasks(pool, { concurrency }, handler) {
      const durable = `runners-${pool}`;
      const ensure = () =>
        ensureConsumer(s.tasksStream, {
          durable_name: durable,
          filter_subject: `${p}.tasks.${pool}`,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          ack_wait: nanos(s.ackWaitMs),
          max_deliver: s.maxDeliver,
          max_ack_pending: 10_000,
        });
      return pullLoop(s.tasksStream, durable, ensure, concurrency, handler);
    },
    async publishTaskEvent(event: TaskEvent) {
      await publish(`${p}.events.${event.taskId}`, event.id, event);
    },
    async publishHeartbeat(hb: Heartbeat) {
      await publish(`${p}.runners.${hb.runnerId}.heartbeat`, hb.id, hb);
    },
    consumeEvents({ concurrency }, handler) {
      const durable = "ingester";
      const ensure = () =>
        ensureConsumer(s.eventsStream, {
          durable_name: durable,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          ack_wait: nanos(s.ackWaitMs),
          max_deliver: -1,
          max_ack_pending: 10_000,
        });
      return pullLoop(s.eventsStream, durable, ensure, concurrency, handler);
    },
    onDeadLetter(handler) {
      // The server announces a message that used all its deliveries; fetch it by sequence, hand
      // it over, and delete it (a work queue would otherwise keep it forever). The queue group
      // makes one control-plane replica handle each announcement.
      let sub: NatsSub | undefined;
      let stopped = false;
      const started = (async () => {
        await connection;
        if (stopped) return;
        sub = nc!.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${s.tasksStream}.*`, {
          queue: "pitcrew-dead-letters",
        });
        for await (const m of sub) {
          try {
            const adv = m.json<{ stream_seq: number; deliveries: number; consumer: string }>();
            const stored = await jsm!.streams.getMessage(s.tasksStream, { seq: adv.stream_seq });
            if (!stored) continue;
            const pool = stored.subject.slice(`${p}.tasks.`.length);
            const dead: DeadLetter = { pool, data: stored.json(), deliveries: adv.deliveries };
            await handler(dead);
            await jsm!.streams.deleteMessage(s.tasksStream, adv.stream_seq).catch(() => false);
          } catch (err) {
            log.error({ err: { message: errorMessage(err) } }, "dead-letter handling failed");
          }
        }
      })();
      started.catch(() => {});
      const result: Subscription = {
        async stop() {
          stopped = true;
          sub?.unsubscribe();
          subs.delete(result);
        },
      };
      subs.add(result);
      return result;
    },
    async publishControl(taskId, action) {
      await ready();
      nc!.publish(`${p}.control.${taskId}.${action}`);
      await withTimeout(nc!.flush(), publishTimeoutMs, "nats");
    },
    subscribeControl(handler) {
      let sub: NatsSub | undefined;
      let stopped = false;
      void (async () => {
        await connection;
        if (stopped) return;
        sub = nc!.subscribe(`${p}.control.*.*`);
        for await (const m of sub) {
          const [, , taskId, action] = m.subject.split(".");
          if (taskId && action) handler(taskId, action);
        }
      })().catch(() => {});
      const result: Subscription = {
        async stop() {
          stopped = true;
          sub?.unsubscribe();
          subs.delete(result);
        },
      };
      subs.add(result);
      return result;
    },
    markTask(taskId, mark) {
      return withMarks(`marking task ${taskId} ${mark}`, async (kv) => {
        if (mark === "done") {
          await kv.put(taskId, mark);
          return;
        }
        // create() writes only where no value is: a task already marked done stays done.
        try {
          await kv.create(taskId, mark);
        } catch (err) {
          const existing = await kv.get(taskId);
          if (existing?.operation !== "PUT") throw err;
        }
      });
    },
    taskMark(taskId) {
      return withMarks(`reading the marker of task ${taskId}`, async (kv) => {
        const e = await kv.get(taskId);
        if (e?.operation !== "PUT") return null;
        const v = e.string();
        return v === "cancelled" || v === "done" ? (v as TaskMark) : null;
      });
    },
    async depths() {
      await ready();
      // A work queue keeps a message until it is acked: the stream's count per subject is the depth.
      const prefix = `${p}.tasks.`;
      const info = await withTimeout(
        jsm!.streams.info(s.tasksStream, { subjects_filter: `${prefix}>` }),
        publishTimeoutMs,
        "nats",
      );
      const out: Record<string, number> = {};
      for (const [subject, n] of Object.entries(info.state.subjects ?? {})) out[subject.slice(prefix.length)] = n;
      return out;
    },
    async health() {
      if (closed) return { ok: false, reason: "nats: closed" };
      if (!nc) return { ok: false, reason: "nats: not connected yet" };
      if (!connected) return { ok: false, reason: "nats: disconnected" };
      try {
        await withTimeout(nc.rtt(), 1500, "nats");
      } catch {
        return { ok: false, reason: "nats: no answer to ping" };
      }
      if (streamsError) {
        await ensureStreams().catch(() => {});
        if (streamsError) return { ok: false, reason: `nats: ${streamsError}` };
      }
      return { ok: true };
    },
    async close() {
      if (closed) return;
      await Promise.allSettled([...subs].map((x) => x.stop()));
      closed = true;
      if (nc) {
        await withTimeout(nc.drain(), 5000, "nats").catch(() => nc?.close());
      } else {
        // Still waiting for a first connection: closing is all there is to do.
        connection.then((c) => c.close()).catch(() => {});
      }
    },
  };
}

function isNotFound(err: unknown): boolean {
  const e = err as { code?: number; api_error?: { err_code?: number }; name?: string; message?: string };
  return (
    e?.name === "StreamNotFoundError" ||
    e?.name === "ConsumerNotFoundError" ||
    e?.code === 404 ||
    /not found/i.test(e?.message ?? "")
  );
}
