import type { Clock } from "../../src/shared/clock.ts";

/**
 * A clock that moves only when told to, for in-process code that takes a Clock: a test passes
 * ten minutes in a millisecond, and a timer fires at exactly its time, never early or late.
 */
export type FakeClock = Clock & {
  /**
   * Moves time on by `ms`, firing every timer due on the way in order, with `now()` at each one's
   * due time; between timers, the in-process work they started runs to its next wait.
   */
  advance(ms: number): Promise<void>;
  /** Lets in-process work run until it waits on a timer or on nothing (no time passes). */
  settle(): Promise<void>;
  /** Timers scheduled and not yet fired or cleared. */
  pending(): number;
};

export function createFakeClock(start = Date.now()): FakeClock {
  type Timer = { id: number; at: number; fn: () => void };
  let now = start;
  let nextId = 1;
  const timers = new Map<number, Timer>();

  // One turn of the real event loop: every promise job queued so far, and the ones they queue,
  // has run by the time a setImmediate callback does.
  const settle = () => new Promise<void>((r) => setImmediate(r));

  function due(until: number): Timer | undefined {
    let first: Timer | undefined;
    for (const t of timers.values())
      if (t.at <= until && (!first || t.at < first.at || (t.at === first.at && t.id < first.id))) first = t;
    return first;
  }

  return {
    now: () => now,
    setTimeout(fn, ms) {
      const id = nextId++;
      timers.set(id, { id, at: now + Math.max(0, ms), fn });
      return id;
    },
    clearTimeout(handle) {
      timers.delete(handle as number);
    },
    async advance(ms) {
      const until = now + ms;
      for (;;) {
        await settle();
        const t = due(until);
        if (!t) break;
        timers.delete(t.id);
        now = t.at;
        t.fn();
      }
      now = until;
      await settle();
    },
    settle,
    pending: () => timers.size,
  };
}
