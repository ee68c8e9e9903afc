import { type Clock, systemClock } from "./clock.ts";

// Background work that competes with callers who are waiting (the alert intake during a storm)
// takes turns with them instead of racing them: while `busy()` says the callers need the process,
// the paced work runs one piece at a time and rests after each piece for as long as the piece took
// times (1 − share) / share, so it has about `share` of the time and the callers the rest. It never
// stops: a storm that lasts an hour is analysed at that share meanwhile, and at full speed once it
// ends. When nothing is busy, work runs at once, as many pieces at a time as are given.

export type PacerOptions = {
  /** Whether the callers the pacer protects are busy now. */
  busy: () => boolean;
  /** The share of the time paced work gets while they are (0 < share ≤ 1). */
  share: number;
  /** How often a resting pacer asks `busy()` again, so a storm's end releases the work at once. */
  recheckMs?: number;
  clock?: Clock;
};

export type Pacer = {
  /** Runs `work` when its turn comes; resolves or rejects as `work` does. */
  run<T>(work: () => Promise<T>): Promise<T>;
  /** Pieces of work waiting for their turn. */
  readonly waiting: number;
};

export function createPacer(opts: PacerOptions): Pacer {
  const clock = opts.clock ?? systemClock;
  const recheckMs = opts.recheckMs ?? 100;
  const rest = (1 - opts.share) / opts.share;
  const queue: Array<() => Promise<void>> = [];
  let draining = false;
  let nextAt = 0;

  const sleep = (ms: number) => new Promise<void>((r) => clock.setTimeout(r, ms));

  async function drain(): Promise<void> {
    draining = true;
    try {
      while (queue.length > 0) {
        if (!opts.busy()) {
          // The storm is over: everything waiting goes at once.
          nextAt = 0;
          for (const start of queue.splice(0)) void start();
          return;
        }
        const wait = nextAt - clock.now();
        if (wait > 0) {
          await sleep(Math.min(wait, recheckMs));
          continue;
        }
        const started = clock.now();
        await queue.shift()!();
        nextAt = clock.now() + (clock.now() - started) * rest;
      }
    } finally {
      draining = false;
    }
  }

  return {
    run<T>(work: () => Promise<T>): Promise<T> {
      if (queue.length === 0 && !draining && !opts.busy()) return work();
      return new Promise<T>((resolve, reject) => {
        queue.push(() => work().then(resolve, reject));
        if (!draining) void drain();
      });
    },
    get waiting() {
      return queue.length;
    },
  };
}

/**
 * Counts events in a sliding window (two buckets of `windowMs`, the older one weighted by how much
 * of it is still inside the window): the alert intake's payloads per second, cheaply.
 */
export function createRateMeter(windowMs: number, clock: Clock = systemClock) {
  let bucketStart = clock.now();
  let current = 0;
  let previous = 0;
  function roll(now: number): void {
    const elapsed = now - bucketStart;
    if (elapsed < windowMs) return;
    previous = elapsed < 2 * windowMs ? current : 0;
    current = 0;
    bucketStart = now - (elapsed % windowMs);
  }
  return {
    mark(n = 1): void {
      roll(clock.now());
      current += n;
    },
    /** Events in the last `windowMs`, estimated. */
    count(): number {
      const now = clock.now();
      roll(now);
      const inside = 1 - (now - bucketStart) / windowMs;
      return current + previous * inside;
    },
  };
}
