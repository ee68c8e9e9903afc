import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { newId } from "../shared/ids.ts";
import { errorMessage } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import type { Store } from "../store/db.ts";
import type { Executor } from "../store/sql.ts";
import { noteOutbox } from "../store/commit-hooks.ts";
import type { OutboxRow } from "../store/schema.ts";
import { backoffMs } from "../shared/backoff.ts";
import type { Metrics } from "../shared/metrics.ts";
import type { TaskMark, TaskQueue } from "./port.ts";

// Producers never publish directly. They add an outbox row in the same transaction as the rows
// that make the work real; the relay publishes committed rows with Nats-Msg-Id = msg_id and marks
// them sent. Rows are leased before publishing, so two relays do not take the same rows; a relay
// killed between publish and mark leaves the row to be published again, and the bus drops the
// repeat by its id. Either way each message is queued once.
//
// Topics: "task" queues a task message on its pool. "control" sets a task's marker on the bus
// (markTask) and, for a cancel, then tells listening runners at once (publishControl): the marker
// is what a runner that was not listening reads before it starts the task. Both are safe to repeat.

export type OutboxMessage =
  | { topic: "task"; pool: string; msgId: string; body: unknown }
  | { topic: "control"; taskId: string; mark: TaskMark };

export async function addToOutbox(db: Executor, msg: OutboxMessage, now: number): Promise<string> {
  const id = newId("obx", now);
  const [msgId, payload] =
    msg.topic === "task"
      ? [msg.msgId, { pool: msg.pool, body: msg.body }]
      : [`${msg.taskId}.${msg.mark}`, { taskId: msg.taskId, mark: msg.mark }];
  await db
    .insertInto("outbox")
    .values({
      id,
      topic: msg.topic,
      msg_id: msgId,
      payload: JSON.stringify(payload),
      attempts: 0,
      last_error: null,
      available_at: now,
      lease_owner: null,
      lease_until: null,
      created_at: now,
      sent_at: null,
    })
    .execute();
  await noteOutbox(db);
  return id;
}

/** How often a relay measures its lag (pitcrew_outbox_lag_seconds), at most. */
const LAG_EVERY_MS = 2000;

export type OutboxRelayOptions = {
  intervalMs: number;
  batch: number;
  retentionMs: number;
  /** How long a claimed row stays reserved for this relay. */
  leaseMs?: number;
  /** Publishes in flight at once within a batch. */
  parallel?: number;
  owner?: string;
};

export type OutboxRelay = {
  start(): void;
  /** Finishes the batch in progress, then stops. */
  stop(): Promise<void>;
  /** Publishes one batch; returns how many rows were sent. */
  runOnce(): Promise<number>;
  /** Asks for a batch now instead of at the next interval. */
  kick(): void;
};

export function createOutboxRelay(
  deps: {
    store: Store;
    queue: TaskQueue;
    log: Logger;
    now?: () => number;
    metrics?: Pick<Metrics, "outboxLag" | "outboxBatch">;
  },
  opts: OutboxRelayOptions,
): OutboxRelay {
  const { store, queue } = deps;
  const db = store.db;
  const log = deps.log.child({ component: "outbox-relay" });
  const now = deps.now ?? Date.now;
  const owner = opts.owner ?? `${hostname().slice(0, 40)}-${process.pid}-${randomBytes(4).toString("hex")}`;
  const leaseMs = opts.leaseMs ?? 30_000;
  const parallel = opts.parallel ?? 32;
  let running = false;
  let loop: Promise<void> | undefined;
  let wake: (() => void) | undefined;
  let kicked = false;
  let unsubscribe: (() => void) | undefined;
  let lastPrune = 0;
  let lagAt = Number.NEGATIVE_INFINITY;

  async function claim(): Promise<OutboxRow[]> {
    const t = now();
    const candidates = await db
      .selectFrom("outbox")
      .select("id")
      .where("sent_at", "is", null)
      .where("available_at", "<=", t)
      .where((eb) => eb.or([eb("lease_until", "is", null), eb("lease_until", "<", t)]))
      .orderBy("id")
      .limit(opts.batch)
      .execute();
    if (candidates.length === 0) return [];
    const ids = candidates.map((c) => c.id);
    const leaseUntil = t + leaseMs;
    await db
      .updateTable("outbox")
      .set({ lease_owner: owner, lease_until: leaseUntil })
      .where("id", "in", ids)
      .where("sent_at", "is", null)
      .where((eb) => eb.or([eb("lease_until", "is", null), eb("lease_until", "<", t)]))
      .execute();
    return db
      .selectFrom("outbox")
      .selectAll()
      .where("id", "in", ids)
      .where("lease_owner", "=", owner)
      .where("lease_until", "=", leaseUntil)
      .where("sent_at", "is", null)
      .orderBy("id")
      .execute();
  }

  async function publishRow(row: OutboxRow): Promise<void> {
    if (row.topic === "control") {
      const { taskId, mark } = JSON.parse(row.payload) as { taskId: string; mark: TaskMark };
      await queue.markTask(taskId, mark);
      if (mark === "cancelled") await queue.publishControl(taskId, "cancel");
      return;
    }
    if (row.topic !== "task") throw new Error(`unknown outbox topic ${row.topic}`);
    const { pool, body } = JSON.parse(row.payload) as { pool: string; body: unknown };
    await queue.publishTask(pool, row.msg_id, body);
  }

  async function runOnce(): Promise<number> {
    const rows = await claim();
    if (rows.length === 0) return 0;
    const sent: string[] = [];
    const failed: Array<{ row: OutboxRow; error: string }> = [];
    let halted = false;
    for (let i = 0; i < rows.length && !halted; i += parallel) {
      const chunk = rows.slice(i, i + parallel);
      const results = await Promise.allSettled(chunk.map(publishRow));
      results.forEach((r, j) => {
        if (r.status === "fulfilled") sent.push(chunk[j]!.id);
        else failed.push({ row: chunk[j]!, error: errorMessage(r.reason) });
      });
      // The bus is away: stop here and release the rest of the batch untouched.
      if (failed.length > 0) halted = true;
    }
    const t = now();
    if (sent.length > 0) {
      await db
        .updateTable("outbox")
        .set({ sent_at: t, lease_owner: null, lease_until: null, last_error: null })
        .where("id", "in", sent)
        .execute();
    }
    for (const f of failed) {
      const attempts = f.row.attempts + 1;
      await db
        .updateTable("outbox")
        .set({
          attempts,
          last_error: f.error.slice(0, 2000),
          available_at: t + backoffMs(attempts, { baseMs: 250, maxMs: 5000 }),
          lease_owner: null,
          lease_until: null,
        })
        .where("id", "=", f.row.id)
        .where("lease_owner", "=", owner)
        .execute();
    }
    const untouched = rows
      .filter((r) => !sent.includes(r.id) && !failed.some((f) => f.row.id === r.id))
      .map((r) => r.id);
    if (untouched.length > 0) {
      await db
        .updateTable("outbox")
        .set({ lease_owner: null, lease_until: null })
        .where("id", "in", untouched)
        .where("lease_owner", "=", owner)
        .execute();
    }
    if (failed.length > 0)
      log.warn(
        { failed: failed.length, sent: sent.length, error: failed[0]!.error },
        "outbox publish failed; will retry",
      );
    deps.metrics?.outboxBatch.observe(sent.length);
    return sent.length;
  }

  async function prune() {
    const t = now();
    if (t - lastPrune < 60_000) return;
    lastPrune = t;
    await db
      .deleteFrom("outbox")
      .where("sent_at", "<", t - opts.retentionMs)
      .execute();
  }

  /**
   * The age of the oldest row not yet published (0 when none): how far the bus is behind the
   * database. One query every LAG_EVERY_MS at most: a pass can come every few milliseconds.
   */
  async function measureLag(): Promise<void> {
    if (!deps.metrics || now() - lagAt < LAG_EVERY_MS) return;
    lagAt = now();
    const r = await db
      .selectFrom("outbox")
      .select((eb) => eb.fn.min("created_at").as("oldest"))
      .where("sent_at", "is", null)
      .executeTakeFirst();
    const oldest = r?.oldest === null || r?.oldest === undefined ? null : Number(r.oldest);
    deps.metrics.outboxLag.set(oldest === null ? 0 : Math.max(0, now() - oldest) / 1000);
  }

  async function run() {
    let idleDelay = opts.intervalMs;
    while (running) {
      let sent = 0;
      try {
        sent = await runOnce();
        await measureLag();
        await prune();
        idleDelay = opts.intervalMs;
      } catch (err) {
        log.warn({ err: { message: errorMessage(err) } }, "outbox relay cycle failed");
        idleDelay = Math.min(5000, idleDelay * 2);
      }
      // A full batch means there is probably more: go again at once.
      if (sent >= opts.batch || kicked) {
        kicked = false;
        continue;
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, idleDelay);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      wake = undefined;
    }
  }

  function kick(): void {
    kicked = true;
    wake?.();
  }

  return {
    start() {
      if (running) return;
      running = true;
      // Whatever committed an outbox row, it goes out now rather than at the next poll.
      unsubscribe = store.onOutboxCommitted(kick);
      loop = run();
    },
    async stop() {
      running = false;
      unsubscribe?.();
      wake?.();
      await loop;
    },
    runOnce,
    kick,
  };
}
