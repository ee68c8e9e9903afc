import { describe, expect, it } from "vitest";
import { backoffMs } from "./backoff.ts";

describe("backoffMs", () => {
  it("doubles from the base per attempt and stops at the cap", () => {
    const o = { baseMs: 1000, maxMs: 30_000 };
    expect([1, 2, 3, 4, 5, 6, 7].map((a) => backoffMs(a, o))).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
  });
  it("treats attempt 0 and below as the first, and never overflows", () => {
    expect(backoffMs(0, { baseMs: 250, maxMs: 5000 })).toBe(250);
    expect(backoffMs(10_000, { baseMs: 250, maxMs: 5000 })).toBe(5000);
  });
});
