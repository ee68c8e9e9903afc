// `npm run bench`: throughput of the queue path, printed as JSON. Uses SQLite in a temp file and
// the in-process queue always; MySQL and JetStream too when MYSQL_URL / NATS_URL answer.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { createJetStreamQueue } from "../src/bus/jetstream.ts";
import { createMemoryQueue } from "../src/bus/memory.ts";
import { createOutboxRelay } from "../src/bus/outbox.ts";
import type { TaskQueue } from "../src/bus/port.ts";
import { createEventIngester } from "../src/events/ingester.ts";
import { silentLogger } from "../src/shared/logger.ts";
import { migrateToLatest, openStore, type Store } from "../src/store/db.ts";
import { createTaskService } from "../src/tasks/service.ts";
import { createRunner } from "../runner/worker.ts";
import { noopExecutor } from "../runner/executors/noop.ts";

const executors = { noop: noopExecutor };
import { hasMysql, hasNats, MYSQL_URL, NATS_URL } from "../test/helpers/services.ts";
import { deleteStreams } from "../test/helpers/queues.ts";

const N = Number(process.env.BENCH_TASKS ?? 2000);

async function waitUntil(check: () => Promise<boolean>) {
  while (!(await check())) await new Promise((r) => setTimeout(r, 20));
}

async function run(storeName: string, store: Store, queueName: string, queue: TaskQueue) {
  await migrateToLatest(store);
  const pool = `bench${randomBytes(3).toString("hex")}`;
  const tasks = createTaskService({ store, log: silentLogger, now: Date.now });

  let t0 = performance.now();
  const ids: string[] = [];
  for (let i = 0; i < N; i++)
    ids.push(
      (await tasks.create({ kind: "noop", pool, payload: { i }, createdBy: "bench", channel: "bench" })).task.id,
    );
  const enqueueMs = performance.now() - t0;

  const relay = createOutboxRelay(
    { store, queue, log: silentLogger },
    { intervalMs: 5, batch: 500, retentionMs: 86_400_000 },
  );
  t0 = performance.now();
  while ((await relay.runOnce()) > 0);
  const relayMs = performance.now() - t0;

  const ingester = createEventIngester({ store, queue, log: silentLogger, now: Date.now }).start(16);
  const runner = createRunner(
    { queue, log: silentLogger, executors },
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
  t0 = performance.now();
  runner.start();
  const first = ids[0]!;
  const last = ids[ids.length - 1]!;
  await waitUntil(async () => {
    const r = await store.db
      .selectFrom("tasks")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("id", ">=", first)
      .where("id", "<=", last)
      .where("state", "=", "succeeded")
      .executeTakeFirstOrThrow();
    return Number(r.n) >= N;
  });
  const executeMs = performance.now() - t0;
  await runner.stop();
  await ingester.stop();

  return {
    store: storeName,
    queue: queueName,
    tasks: N,
    enqueue_per_s: Math.round((N / enqueueMs) * 1000),
    relay_per_s: Math.round((N / relayMs) * 1000),
    run_and_ingest_per_s: Math.round((N / executeMs) * 1000),
  };
}

const results: unknown[] = [];
const dir = mkdtempSync(join(tmpdir(), "pitcrew-bench-"));
{
  const store = openStore({ dialect: "sqlite", file: join(dir, "bench.db") });
  const queue = createMemoryQueue({ log: silentLogger });
  results.push(await run("sqlite", store, "memory", queue));
  await queue.close();
  await store.close();
}
if ((await hasMysql()) && (await hasNats())) {
  const store = openStore({ dialect: "mysql", url: MYSQL_URL, poolSize: 20 });
  const prefix = `bench${randomBytes(3).toString("hex")}`;
  const settings = {
    subjectPrefix: prefix,
    tasksStream: `${prefix.toUpperCase()}_TASKS`,
    eventsStream: `${prefix.toUpperCase()}_EVENTS`,
  };
  const queue = createJetStreamQueue({ servers: [NATS_URL], name: "bench", settings, log: silentLogger });
  await queue.ready();
  results.push(await run("mysql", store, "jetstream", queue));
  await queue.close();
  await deleteStreams(settings);
  await store.close();
}
rmSync(dir, { recursive: true, force: true });
process.stdout.write(`${JSON.stringify({ benchmark: "queue-path", node: process.version, results }, null, 2)}\n`);
