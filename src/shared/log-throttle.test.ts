import { describe, expect, it } from "vitest";
import { createLogThrottle } from "./log-throttle.ts";

describe("createLogThrottle", () => {
  it("lets one line through per interval and reports how many it suppressed meanwhile", () => {
    let t = 1_000_000;
    const emitted: number[] = [];
    const throttle = createLogThrottle(60_000, () => t);
    const hit = () => throttle((suppressed) => emitted.push(suppressed));
    hit();
    for (let i = 0; i < 4; i++) hit();
    expect(emitted).toEqual([0]);
    t += 59_999;
    hit();
    expect(emitted).toEqual([0]);
    t += 1;
    hit();
    expect(emitted).toEqual([0, 5]);
    t += 120_000;
    hit();
    expect(emitted).toEqual([0, 5, 0]);
  });
});
