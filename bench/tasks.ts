// Task throughput: no-op tasks end to end — created (task row + outbox row in one transaction),
// relayed to the queue, run by a runner, its events ingested and the task stored as succeeded —
// with every loop running at once, as in a control plane, on the product's default settings (a
// runner with 32 slots). SQLite + in-process queue, and MariaDB + JetStream when they answer.
// Baseline: raw JetStream publish + consume + ack of as many messages.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { createJetStreamQueue } from "../src/bus/jetstream.ts";
import { createMemoryQueue } from "../src/bus/memory.ts";
import { createOutboxRelay } from "../src/bus/outbox.ts";
import type { TaskQueue } from "../src/bus/port.ts";
import { loadConfig } from "../src/config/load.ts";
import { createEventIngester } from "../src/events/ingester.ts";
import { silentLogger } from "../src/shared/logger.ts";
import { migrateToLatest, openStore, type Store } from "../src/store/db.ts";
import { createTaskService } from "../src/tasks/service.ts";
import { noopExecutor } from "../runner/executors/noop.ts";
import { createRunner } from "../runner/worker.ts";
import { NATS_URL } from "../test/helpers/services.ts";
import { rawThroughput } from "./jetstream-raw.ts";
import { benchDatabase, benchPrefix, onCleanup, type Options, progress, round, sleep } from "./lib.ts";

const log = silentLogger;

async function endToEnd(store: Store, queue: TaskQueue, n: number) {
  await migrateToLatest(store);
  const { outbox } = loadConfig({});
  const pool = `bench${randomBytes(3).toString("hex")}`;
  const relay = createOutboxRelay({ store, queue, log }, outbox);
  const tasks = createTaskService({ store, log, now: Date.now, onEnqueued: () => relay.kick() });
  const ingesting = createEventIngester({ store, queue, log, now: Date.now }).start();
  const runner = createRunner(
    { queue, log, executors: { noop: noopExecutor } },
    {
      id: `bench-${pool}`,
      pool,
      concurrency: 32,
      heartbeatMs: 60_000,
      ackWaitMs: 30_000,
      version: "bench",
      drainTimeoutMs: 1000,
    },
  );
  relay.start();
  runner.start();
  try {
    const t0 = performance.now();
    const ids: string[] = [];
    const inFlight = new Set<Promise<unknown>>();
    for (let i = 0; i < n; i++) {
      const p = tasks
        .create({ kind: "noop", pool, payload: { i }, createdBy: "bench", channel: "bench" })
        .then((r) => ids.push(r.task.id))
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
      if (inFlight.size >= 32) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    const createdMs = performance.now() - t0;
    const deadline = Date.now() + 120_000;
    for (;;) {
      const { done } = await store.db
        .selectFrom("tasks")
        .select((eb) => eb.fn.countAll<number>().as("done"))
        .where("pool", "=", pool)
        .where("state", "=", "succeeded")
        .executeTakeFirstOrThrow();
      if (Number(done) >= n) break;
      if (Date.now() > deadline) throw new Error(`${n - Number(done)} of ${n} tasks not succeeded after 120 s`);
      await sleep(10);
    }
    const totalMs = performance.now() - t0;
    return { tasks: n, per_s: Math.round(n / (totalMs / 1000)), created_per_s: Math.round(n / (createdMs / 1000)) };
  } finally {
    await runner.stop();
    await ingesting.stop();
    await relay.stop();
  }
}

export async function benchTasks(opts: Options, services: { distributed: boolean; nats: boolean }) {
  const n = opts.quick ? 50 : 3000;
  const out: Record<string, unknown> = { runner_slots: 32 };
  if (services.nats) {
    progress("tasks baseline: raw JetStream publish + consume + ack");
    out.baseline_jetstream = await rawThroughput(n);
  }
  const base = (out.baseline_jetstream as { per_s: number } | undefined)?.per_s;

  progress("tasks on SQLite + in-process queue");
  const dir = mkdtempSync(join(tmpdir(), "pitcrew-bench-tasks-"));
  onCleanup(async () => rmSync(dir, { recursive: true, force: true }));
  {
    const store = openStore({ dialect: "sqlite", file: join(dir, "bench.db") });
    const queue = createMemoryQueue({ log });
    const r = await endToEnd(store, queue, n);
    await queue.close();
    await store.close();
    out.embedded = { ...r, ratio_to_jetstream: base ? round(r.per_s / base, 3) : null };
  }
  if (services.distributed) {
    progress("tasks on MariaDB + JetStream");
    const store = openStore({ dialect: "mysql", url: await benchDatabase(), poolSize: 10 });
    const prefix = benchPrefix();
    const settings = {
      subjectPrefix: prefix,
      tasksStream: `${prefix.toUpperCase()}_TASKS`,
      eventsStream: `${prefix.toUpperCase()}_EVENTS`,
    };
    const queue = createJetStreamQueue({ servers: [NATS_URL], name: "bench", settings, log });
    await queue.ready();
    try {
      const r = await endToEnd(store, queue, n);
      out.distributed = { ...r, ratio_to_jetstream: round(r.per_s / base!, 3) };
    } finally {
      await queue.close();
      await store.close();
    }
  } else out.distributed = { skipped: "MYSQL_URL or NATS_URL does not answer" };
  return out;
}
