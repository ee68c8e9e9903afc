import type { Config } from "../config/load.ts";
import { createEventIngester } from "../events/ingester.ts";
import { buildHttpApp } from "../http/app.ts";
import { errorMessage, isAppError } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import { VERSION } from "../shared/version.ts";
import { describeDbError, migrateToLatest, type Store } from "../store/db.ts";
import { handleDeadLetters } from "../tasks/dead-letter.ts";
import { requeuePendingTasks } from "../tasks/requeue.ts";
import { createRunner } from "../../runner/worker.ts";
import { executors } from "../../runner/executors/index.ts";
import { createDeps } from "./deps.ts";
import { onShutdownSignal } from "./signals.ts";

/** Migrates with retries: in a fresh `docker compose up` the database may still be starting. */
export async function migrateWithRetry(store: Store, log: Logger, attempts = 30): Promise<string[]> {
  for (let i = 1; ; i++) {
    try {
      return await migrateToLatest(store);
    } catch (err) {
      const code = (err as { code?: string }).code ?? (err as { cause?: { code?: string } }).cause?.code;
      const transient = code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "ETIMEDOUT" || code === "PROTOCOL_CONNECTION_LOST";
      if (!transient || i >= attempts) throw err;
      log.warn({ attempt: i, error: describeDbError(err) }, "database not reachable yet; retrying");
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}

export async function serve(config: Config, log: Logger): Promise<void> {
  const { deps, relay } = createDeps(config, log);
  const { store, queue } = deps;
  const embedded = queue.kind === "memory";

  const applied = await migrateWithRetry(store, log);
  if (applied.length > 0) log.info({ migrations: applied }, "migrations applied");

  if (embedded) {
    const requeued = await requeuePendingTasks(store, queue);
    if (requeued > 0) log.info({ requeued }, "re-queued tasks left pending by the last run");
  }

  const ingester = createEventIngester({ store, queue, log, now: deps.now }).start();
  const deadLetters = handleDeadLetters({ queue, tasks: deps.tasks, log });
  relay.start();

  const runner = embedded
    ? createRunner(
        { queue, log: log.child({ component: "runner" }), executors },
        {
          id: `embedded-${config.runner.id}`,
          pool: config.runner.pool,
          concurrency: config.runner.concurrency,
          heartbeatMs: config.runner.heartbeatMs,
          ackWaitMs: config.task.ackWaitMs,
          version: VERSION,
          drainTimeoutMs: Math.max(100, config.shutdownTimeoutMs - 2000),
        },
      )
    : undefined;
  runner?.start();

  const app = await buildHttpApp({ log, store, queue, metrics: deps.metrics, bodyLimit: config.bodyLimit });
  await app.listen({ port: config.port, host: config.host });

  const mode = embedded
    ? `embedded (SQLite ${config.database.dialect === "sqlite" ? config.database.file : "?"}, in-process queue, ${config.runner.concurrency} in-process runners)`
    : `distributed (${store.dialect === "mysql" ? "MySQL" : "SQLite"} store, NATS JetStream queue at ${config.nats!.servers.length} server(s))`;
  process.stdout.write(
    [
      "",
      `  Pitcrew ${VERSION} is up — ${mode}`,
      `  Listening on ${config.host}:${config.port}   public URL ${config.publicUrl}`,
      `  Liveness   ${config.publicUrl}/healthz`,
      `  Readiness  ${config.publicUrl}/readyz`,
      `  Metrics    ${config.publicUrl}/metrics`,
      "",
      "",
    ].join("\n"),
  );

  onShutdownSignal(log, config.shutdownTimeoutMs, async () => {
    // Order: stop taking requests, let running work finish and report, stop the loops that
    // move data, then close connections.
    await app.close();
    await runner?.stop();
    await relay.stop();
    await deadLetters.stop();
    await ingester.stop();
    await queue.close();
    await store.close();
  });
}

export function describeStartupError(err: unknown): string {
  if (isAppError(err)) return err.message;
  const code = (err as { code?: string }).code;
  if (code === "EADDRINUSE") return `port already in use (${errorMessage(err)})`;
  return describeDbError(err) || errorMessage(err);
}
