import { errorMessage } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import type { Metrics } from "../shared/metrics.ts";
import type { TaskQueue } from "./port.ts";

/** How often the queue depth is read: often enough for a 15–30 s scrape, one bus request each time. */
export const QUEUE_DEPTH_INTERVAL_MS = 15_000;

/**
 * Reads the queue's depth per pool on a timer and sets the gauge (a scrape reads the last value,
 * it never asks the bus). A pool seen once, or named in `pools`, stays in the gauge at 0 when it
 * empties, so a graph shows it drain instead of vanish.
 */
export function createQueueDepthReader(
  deps: { queue: TaskQueue; log: Logger; metrics: Pick<Metrics, "queueDepth"> },
  opts: { pools: string[]; intervalMs?: number },
) {
  const log = deps.log.child({ component: "queue-depth" });
  const known = new Set(opts.pools);
  let timer: NodeJS.Timeout | undefined;

  async function tick(): Promise<Record<string, number>> {
    const depths = await deps.queue.depths();
    for (const pool of Object.keys(depths)) known.add(pool);
    for (const pool of known) deps.metrics.queueDepth.set({ pool }, depths[pool] ?? 0);
    return depths;
  }

  return {
    tick,
    start(): void {
      const run = () =>
        void tick().catch((err) => log.debug({ err: { message: errorMessage(err) } }, "queue depth not read"));
      run();
      timer = setInterval(run, opts.intervalMs ?? QUEUE_DEPTH_INTERVAL_MS);
      timer.unref();
    },
    stop(): void {
      clearInterval(timer);
    },
  };
}
