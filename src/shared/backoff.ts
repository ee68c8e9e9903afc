/**
 * The one retry delay formula: `baseMs` doubled per attempt (attempt 1 → baseMs), capped at `maxMs`.
 * Every redelivery, re-publish and retry loop uses it with its own base and cap.
 */
export function backoffMs(attempt: number, opts: { baseMs: number; maxMs: number }): number {
  const exp = Math.min(Math.max(0, attempt - 1), 30);
  return Math.min(opts.maxMs, opts.baseMs * 2 ** exp);
}
