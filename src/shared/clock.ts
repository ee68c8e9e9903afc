/**
 * Time as a dependency, for code that waits as well as reads the time: a test drives a fake one
 * instead of sleeping. Handles are opaque; only the clock that made one may clear it.
 */
export type Clock = {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
};

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};
