import { describe, expect, it } from "vitest";
import { iso, isoOf } from "./views.ts";

describe("isoOf", () => {
  it("formats every millisecond as Date does, across days, months, leap days and years", () => {
    const from = Date.UTC(1969, 11, 31);
    for (let i = 0; i < 200_000; i++) {
      // A step that is not a multiple of a second, a minute or a day: every field takes many values.
      const ms = from + i * 1_234_567_891;
      expect(isoOf(ms)).toBe(new Date(ms).toISOString());
    }
  });

  it("keeps the day right when times go back and forth between days", () => {
    const times = [Date.UTC(2026, 1, 28, 23, 59, 59, 999), Date.UTC(2026, 2, 1), Date.UTC(2026, 1, 28, 0, 0, 0, 1)];
    for (const ms of [...times, ...times.reverse()]) expect(isoOf(ms)).toBe(new Date(ms).toISOString());
  });

  it("takes Date's path outside 1970–9999 and for numbers given as strings (MySQL bigints)", () => {
    expect(isoOf(-1)).toBe("1969-12-31T23:59:59.999Z");
    expect(isoOf(253_402_300_800_000)).toBe("+010000-01-01T00:00:00.000Z");
    expect(isoOf("1764340000123" as unknown as number)).toBe("2025-11-28T14:26:40.123Z");
    expect(iso(null)).toBeNull();
    expect(iso(0)).toBe("1970-01-01T00:00:00.000Z");
  });
});
