import type { Logger } from "../shared/logger.ts";
import { errorMessage } from "../shared/errors.ts";

/**
 * Runs `shutdown` once on SIGTERM or SIGINT and exits 0 when it finishes. A second signal, or
 * a shutdown slower than `timeoutMs`, exits 1 at once.
 */
export function onShutdownSignal(log: Logger, timeoutMs: number, shutdown: () => Promise<void>): void {
  let shuttingDown = false;
  const handler = (signal: NodeJS.Signals) => {
    if (shuttingDown) {
      log.warn({ signal }, "second signal; exiting now");
      process.exit(1);
    }
    shuttingDown = true;
    log.info({ signal }, "shutting down");
    const timer = setTimeout(() => {
      log.error({ timeoutMs }, "shutdown took too long; exiting");
      process.exit(1);
    }, timeoutMs);
    timer.unref();
    shutdown()
      .then(() => {
        log.info("stopped");
        process.exit(0);
      })
      .catch((err) => {
        log.error({ err: { message: errorMessage(err) } }, "shutdown failed");
        process.exit(1);
      });
  };
  process.on("SIGTERM", handler);
  process.on("SIGINT", handler);
}
