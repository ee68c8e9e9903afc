import { describe, expect, it } from "vitest";
import { formatDuration, parseDuration } from "./duration.ts";

describe("parseDuration", () => {
  it.each([
    ["500ms", 500],
    ["30s", 30_000],
    ["5m", 300_000],
    ["2h", 7_200_000],
    ["7d", 604_800_000],
    ["1500", 1500],
    ["0", 0],
    ["1.5s", 1500],
    [" 5 m ", 300_000],
    ["0.4ms", 0],
  ])("reads %j as %d ms", (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  it.each(["", "s", "-5s", "5x", "5M", "1e3", "5s5", "five minutes", "9".repeat(400)])("rejects %j", (input) => {
    expect(parseDuration(input)).toBeUndefined();
  });
});

describe("formatDuration", () => {
  it.each([
    [250, "250ms"],
    [1000, "1s"],
    [1500, "1500ms"],
    [90_000, "90s"],
    [300_000, "5m"],
    [5_400_000, "90m"],
    [7_200_000, "2h"],
    [604_800_000, "7d"],
  ])("writes %d ms as %j, the largest unit that divides it", (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it("round-trips through parseDuration for whole milliseconds", () => {
    for (const ms of [0, 1, 999, 1000, 61_000, 3_600_000, 86_400_000, 90_061_001, 2 ** 40]) {
      expect(parseDuration(formatDuration(ms))).toBe(ms);
    }
  });
});
