import type { TaskQueue } from "../../src/bus/port.ts";
import { createOutboxRelay } from "../../src/bus/outbox.ts";
import { createEventIngester } from "../../src/events/ingester.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import type { Store } from "../../src/store/db.ts";
import { handleDeadLetters } from "../../src/tasks/dead-letter.ts";
import { createTaskService } from "../../src/tasks/service.ts";
import { createRunner, type RunnerOptions } from "../../runner/worker.ts";
import { noopExecutor } from "../../runner/executors/noop.ts";
import type { Executor } from "../../runner/executors/types.ts";

const executors = { noop: noopExecutor };

/**
 * The control plane's background loops (relay, ingester, dead letters) on a given store and queue.
 * `deadLetters: false` leaves the bus's max-deliveries advisory unheard, as a control plane that
 * was down or reconnecting when it went out.
 */
export function startControlPlane(
  store: Store,
  queue: TaskQueue,
  opts: { now?: () => number; deadLetters?: boolean } = {},
) {
  const now = opts.now ?? Date.now;
  const relay = createOutboxRelay(
    { store, queue, log: silentLogger },
    { intervalMs: 20, batch: 100, retentionMs: 86_400_000 },
  );
  const tasks = createTaskService({ store, log: silentLogger, now, onEnqueued: () => relay.kick() });
  const ingester = createEventIngester({ store, queue, log: silentLogger, now: Date.now });
  const ingesting = ingester.start(8);
  const dead = opts.deadLetters === false ? undefined : handleDeadLetters({ queue, tasks, log: silentLogger });
  relay.start();
  return {
    tasks,
    ingester,
    relay,
    async stop() {
      await relay.stop();
      await ingesting.stop();
      await dead?.stop();
    },
  };
}

export function startRunner(
  queue: TaskQueue,
  opts: Partial<RunnerOptions> & { id: string; executors?: Record<string, Executor> },
) {
  const { executors: own, ...rest } = opts;
  const runner = createRunner(
    { queue, log: silentLogger, executors: own ?? executors },
    {
      pool: "default",
      concurrency: 2,
      heartbeatMs: 200,
      ackWaitMs: 2000,
      version: "test",
      drainTimeoutMs: 2000,
      ...rest,
    },
  );
  runner.start();
  return runner;
}
