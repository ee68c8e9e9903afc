import { Cron } from "croner";
import { invalid } from "../shared/errors.ts";

// When a schedule fires: pure functions of (expression, time zone, instant), computed by croner in
// the schedule's IANA time zone, so daylight-saving changes are handled: a time that does not exist
// on the day clocks go forward (02:30 in Berlin on the last Sunday of March) fires once, at the
// first instant after the gap; a time that exists twice when they go back fires once. Expressions:
// 5 fields, 6 with seconds first, or @yearly/@monthly/@weekly/@daily/@hourly.

function cron(expr: string, timezone: string): Cron {
  try {
    return new Cron(expr, { timezone, paused: true });
  } catch (err) {
    throw invalid("schedule.bad_cron", `cron ${JSON.stringify(expr)}: ${(err as Error).message}`);
  }
}

/** Throws schedule.bad_cron / schedule.bad_timezone; returns nothing when both are usable. */
export function checkCron(expr: string, timezone: string): void {
  checkTimezone(timezone);
  if (nextRunAt(expr, timezone, Date.UTC(2000, 0, 1)) === null)
    throw invalid("schedule.bad_cron", `cron ${JSON.stringify(expr)} never fires`);
}

export function checkTimezone(timezone: string): void {
  try {
    new Intl.DateTimeFormat("en", { timeZone: timezone });
  } catch {
    throw invalid(
      "schedule.bad_timezone",
      `timezone ${JSON.stringify(timezone)} is not an IANA time zone (e.g. UTC, Europe/Berlin)`,
    );
  }
}

/** The first fire time strictly after `after` (epoch ms), or null when there is none. */
export function nextRunAt(expr: string, timezone: string, after: number): number | null {
  const next = cron(expr, timezone).nextRun(new Date(after));
  return next ? next.getTime() : null;
}

/**
 * The fire times in (`after`, `until`]: how many (up to `limit`, then `capped`) and the last one.
 * What a control plane that was down missed.
 */
export function runsBetween(
  expr: string,
  timezone: string,
  after: number,
  until: number,
  limit = 10_000,
): { count: number; last: number | null; capped: boolean } {
  const c = cron(expr, timezone);
  let count = 0;
  let last: number | null = null;
  let at = new Date(after);
  for (;;) {
    const next = c.nextRun(at);
    if (!next || next.getTime() > until) return { count, last, capped: false };
    count += 1;
    last = next.getTime();
    if (count >= limit) return { count, last, capped: true };
    at = next;
  }
}

/**
 * The last fire time at or before `at`, or null when there is none since `notBefore`. Searches
 * windows that grow tenfold back from `at`, so it is quick for any frequency (an every-second
 * schedule missed for a week is not walked second by second).
 */
export function lastRunAtOrBefore(expr: string, timezone: string, at: number, notBefore: number): number | null {
  const c = cron(expr, timezone);
  for (let w = 1000; ; w *= 10) {
    const from = Math.max(notBefore, at - w);
    let next = c.nextRun(new Date(from - 1));
    if (next && next.getTime() <= at) {
      let last = next.getTime();
      while ((next = c.nextRun(next)) && next.getTime() <= at) last = next.getTime();
      return last;
    }
    if (from <= notBefore) return null;
  }
}

/**
 * A deterministic delay in [0, jitterMs) for one run, the same on every replica (a hash of the
 * schedule and the run's time), so runs spread out without any replica firing early.
 */
export function jitterFor(schedule: string, scheduledFor: number, jitterMs: number): number {
  if (jitterMs <= 0) return 0;
  let h = 2166136261;
  for (const ch of `${schedule}@${scheduledFor}`) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
  return h % jitterMs;
}
