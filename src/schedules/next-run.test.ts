import { describe, expect, it } from "vitest";
import { checkCron, jitterFor, lastRunAtOrBefore, nextRunAt, runsBetween } from "./next-run.ts";

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
/** The next `n` fire times after `from`. */
function fires(expr: string, tz: string, from: string, n: number): string[] {
  const out: string[] = [];
  let t = at(from);
  for (let i = 0; i < n; i++) {
    const next = nextRunAt(expr, tz, t);
    if (next === null) break;
    out.push(iso(next)!);
    t = next;
  }
  return out;
}

describe("nextRunAt across daylight-saving changes", () => {
  it("Europe/Berlin: a daily 02:30 fires once on the spring-forward day (03:30 CEST) and once on the fall-back day", () => {
    expect(fires("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", 3)).toEqual([
      "2026-03-29T01:30:00.000Z",
      "2026-03-30T00:30:00.000Z",
      "2026-03-31T00:30:00.000Z",
    ]);
    const autumn = fires("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 3);
    expect(autumn).toHaveLength(3);
    // One of the two 02:30s of 25 October (00:30Z in CEST, 01:30Z in CET), then 02:30 CET.
    expect(["2026-10-25T00:30:00.000Z", "2026-10-25T01:30:00.000Z"]).toContain(autumn[0]);
    expect(autumn.slice(1)).toEqual(["2026-10-26T01:30:00.000Z", "2026-10-27T01:30:00.000Z"]);
  });

  it("Europe/Berlin: 09:00 stays 09:00 local, an hour apart in UTC before and after the change", () => {
    expect(fires("0 9 * * *", "Europe/Berlin", "2026-03-28T00:00:00Z", 2)).toEqual([
      "2026-03-28T08:00:00.000Z",
      "2026-03-29T07:00:00.000Z",
    ]);
  });

  it("America/New_York: 02:30 on the spring-forward day fires at 03:30 EDT; 01:30 on the fall-back day fires once", () => {
    expect(fires("30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", 2)).toEqual([
      "2026-03-08T07:30:00.000Z",
      "2026-03-09T06:30:00.000Z",
    ]);
    const autumn = fires("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", 2);
    expect(["2026-11-01T05:30:00.000Z", "2026-11-01T06:30:00.000Z"]).toContain(autumn[0]);
    expect(autumn[1]).toBe("2026-11-02T06:30:00.000Z");
  });

  it("Australia/Lord_Howe's 30-minute shift: 02:00 (which does not exist on 4 October) fires at the change, then at 02:00 LHDT", () => {
    expect(fires("0 2 * * *", "Australia/Lord_Howe", "2026-10-03T00:00:00Z", 3)).toEqual([
      "2026-10-03T15:30:00.000Z",
      "2026-10-04T15:00:00.000Z",
      "2026-10-05T15:00:00.000Z",
    ]);
    // Every half hour of local time that exists: 01:00, 01:30, (02:00 is skipped by the clock), 02:30, 03:00.
    expect(fires("*/30 * * * *", "Australia/Lord_Howe", "2026-10-03T14:00:00Z", 4)).toEqual([
      "2026-10-03T14:30:00.000Z",
      "2026-10-03T15:00:00.000Z",
      "2026-10-03T15:30:00.000Z",
      "2026-10-03T16:00:00.000Z",
    ]);
  });

  it("leap days: 29 February fires only in leap years", () => {
    expect(fires("0 0 29 2 *", "UTC", "2026-01-01T00:00:00Z", 2)).toEqual([
      "2028-02-29T00:00:00.000Z",
      "2032-02-29T00:00:00.000Z",
    ]);
    expect(fires("0 12 29 2 *", "Pacific/Auckland", "2027-06-01T00:00:00Z", 1)).toEqual(["2028-02-28T23:00:00.000Z"]);
  });

  it("takes six fields with seconds and @nicknames", () => {
    expect(fires("* * * * * *", "UTC", "2026-01-01T00:10:00Z", 2)).toEqual([
      "2026-01-01T00:10:01.000Z",
      "2026-01-01T00:10:02.000Z",
    ]);
    expect(fires("@hourly", "UTC", "2026-01-01T00:10:00Z", 1)).toEqual(["2026-01-01T01:00:00.000Z"]);
    expect(fires("@daily", "Asia/Kolkata", "2026-01-01T00:00:00Z", 1)).toEqual(["2026-01-01T18:30:00.000Z"]);
  });

  it("refuses a bad expression or time zone with its code", () => {
    expect(() => checkCron("61 * * * *", "UTC")).toThrow(expect.objectContaining({ code: "schedule.bad_cron" }));
    expect(() => checkCron("0 0 31 2 *", "UTC")).toThrow(expect.objectContaining({ code: "schedule.bad_cron" }));
    expect(() => checkCron("0 * * * *", "Mars/Olympus_Mons")).toThrow(
      expect.objectContaining({ code: "schedule.bad_timezone" }),
    );
    expect(() => checkCron("0 * * * *", "Europe/Berlin")).not.toThrow();
  });
});

describe("runsBetween and jitterFor", () => {
  it("counts the runs a stopped control plane missed and names the last", () => {
    expect(runsBetween("0 * * * *", "UTC", at("2026-01-01T00:30:00Z"), at("2026-01-01T05:10:00Z"))).toEqual({
      count: 5,
      last: at("2026-01-01T05:00:00Z"),
      capped: false,
    });
    expect(runsBetween("0 * * * *", "UTC", at("2026-01-01T00:30:00Z"), at("2026-01-01T00:59:00Z"))).toEqual({
      count: 0,
      last: null,
      capped: false,
    });
    expect(
      runsBetween("* * * * * *", "UTC", at("2026-01-01T00:00:00Z"), at("2026-01-02T00:00:00Z"), 100),
    ).toMatchObject({ count: 100, capped: true });
  });

  it("finds the last run before an instant quickly, whatever the frequency", () => {
    expect(
      iso(lastRunAtOrBefore("* * * * * *", "UTC", at("2026-01-08T00:00:00.500Z"), at("2026-01-01T00:00:00Z"))),
    ).toBe("2026-01-08T00:00:00.000Z");
    expect(
      iso(lastRunAtOrBefore("0 3 * * *", "Europe/Berlin", at("2026-03-30T12:00:00Z"), at("2026-01-01T00:00:00Z"))),
    ).toBe("2026-03-30T01:00:00.000Z");
    expect(lastRunAtOrBefore("0 3 * * *", "UTC", at("2026-01-01T02:00:00Z"), at("2026-01-01T00:00:00Z"))).toBeNull();
  });

  it("spreads runs by a delay below the jitter, the same on every replica", () => {
    const d = jitterFor("nightly", at("2026-01-01T03:00:00Z"), 300_000);
    expect(d).toBeGreaterThanOrEqual(0);
    expect(d).toBeLessThan(300_000);
    expect(jitterFor("nightly", at("2026-01-01T03:00:00Z"), 300_000)).toBe(d);
    expect(jitterFor("nightly", at("2026-01-01T03:00:00Z"), 0)).toBe(0);
    const spread = new Set(
      Array.from({ length: 20 }, (_, i) => jitterFor("nightly", at("2026-01-01T03:00:00Z") + i * 86_400_000, 300_000)),
    );
    expect(spread.size).toBeGreaterThan(15);
  });
});
