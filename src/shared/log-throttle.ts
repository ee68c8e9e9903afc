// A warning that a stranger can trigger at will (a webhook hit with a wrong token) is worth one
// line a minute, not one per request: the first goes out, the rest are counted, and the next line
// after the interval says how many were left out.

export function createLogThrottle(intervalMs: number, now: () => number = Date.now) {
  let last = Number.NEGATIVE_INFINITY;
  let suppressed = 0;
  /** Calls `emit` with the number of lines suppressed since the last one, or counts this one. */
  return (emit: (suppressed: number) => void): void => {
    const t = now();
    if (t - last < intervalMs) {
      suppressed += 1;
      return;
    }
    last = t;
    const n = suppressed;
    suppressed = 0;
    emit(n);
  };
}
