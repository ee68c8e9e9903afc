import type { TaskQueue } from "../../src/bus/port.ts";
import { createOutboxRelay } from "../../src/bus/outbox.ts";
import { createEventIngester } from "../../src/events/ingester.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import type { Store } from "../../src/store/db.ts";
import { handleDeadLetters } from "../../src/tasks/dead-letter.ts";
import { createTaskService } from "../../src/tasks/service.ts";
import { createRunner, type RunnerOptions } from "../../runner/worker.ts";
import { noopExecutor } from "../../runner/executors/noop.ts";

const executors = { noop: noopExecutor };

/** The control plane's background loops (relay, ingester, dead letters) on a given store and queue. */
export function startControlPlane(store: Store, queue: TaskQueue) {
  const relay = createOutboxRelay({ store, queue, log: silentLogger }, { intervalMs: 20, batch: 100, retentionMs: 86_400_000 });
  const tasks = createTaskService({ store, log: silentLogger, now: Date.now, onEnqueued: () => relay.kick() });
  const ingester = createEventIngester({ store, queue, log: silentLogger, now: Date.now });
  const ingesting = ingester.start(8);
  const dead = handleDeadLetters({ queue, tasks, log: silentLogger });
  relay.start();
  return {
    tasks,
    ingester,
    async stop() {
      await relay.stop();
      await ingesting.stop();
      await dead.stop();
    },
  };
}

export function startRunner(queue: TaskQueue, opts: Partial<RunnerOptions> & { id: string }) {
  const runner = createRunner(
    { queue, log: silentLogger, executors },
    { pool: "default", concurrency: 2, heartbeatMs: 200, ackWaitMs: 2000, version: "test", drainTimeoutMs: 2000, ...opts },
  );
  runner.start();
  return runner;
}
