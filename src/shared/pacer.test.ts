import { describe, expect, it } from "vitest";
import { createFakeClock } from "../../test/helpers/clock.ts";
import { createPacer, createRateMeter } from "./pacer.ts";

describe("pacer", () => {
  /** Pieces of work that take `ms` of the fake clock's time each, with when each started and ended. */
  function pieces(clock: ReturnType<typeof createFakeClock>) {
    const log: Array<{ name: string; start: number; end?: number }> = [];
    const piece = (name: string, ms: number) => async () => {
      const entry: { name: string; start: number; end?: number } = { name, start: clock.now() };
      log.push(entry);
      await new Promise<void>((r) => clock.setTimeout(r, ms));
      entry.end = clock.now();
      return name;
    };
    return { log, piece };
  }

  it("runs work at once, side by side, when nothing is busy", async () => {
    const clock = createFakeClock(0);
    const pacer = createPacer({ busy: () => false, share: 0.2, clock });
    const { log, piece } = pieces(clock);
    const done = Promise.all([pacer.run(piece("a", 10)), pacer.run(piece("b", 10))]);
    await clock.advance(10);
    expect(await done).toEqual(["a", "b"]);
    expect(log).toEqual([
      { name: "a", start: 0, end: 10 },
      { name: "b", start: 0, end: 10 },
    ]);
  });

  it("while busy, runs one piece at a time and rests after each for its time × (1 − share) / share", async () => {
    const clock = createFakeClock(0);
    const pacer = createPacer({ busy: () => true, share: 0.2, clock });
    const { log, piece } = pieces(clock);
    const done = Promise.all([pacer.run(piece("a", 10)), pacer.run(piece("b", 5)), pacer.run(piece("c", 1))]);
    expect(pacer.waiting).toBeGreaterThan(0);
    await clock.advance(1000);
    expect(await done).toEqual(["a", "b", "c"]);
    // a: 0–10, rests 40; b: 50–55, rests 20; c at 75. The work had a fifth of the time.
    expect(log).toEqual([
      { name: "a", start: 0, end: 10 },
      { name: "b", start: 50, end: 55 },
      { name: "c", start: 75, end: 76 },
    ]);
    expect(pacer.waiting).toBe(0);
  });

  it("releases everything waiting when the storm ends, within its recheck time", async () => {
    const clock = createFakeClock(0);
    let busy = true;
    const pacer = createPacer({ busy: () => busy, share: 0.1, recheckMs: 100, clock });
    const { log, piece } = pieces(clock);
    // 50 ms of work: a rest of 450 ms after it.
    const all = ["a", "b", "c", "d"].map((n, i) => pacer.run(piece(n, i === 0 ? 50 : 10)));
    await clock.advance(120);
    expect(log.map((l) => l.name)).toEqual(["a"]);
    busy = false;
    await clock.advance(100);
    // b, c and d started together at the first recheck after the storm ended.
    expect(log.slice(1).map((l) => [l.name, l.start])).toEqual([
      ["b", 150],
      ["c", 150],
      ["d", 150],
    ]);
    await clock.advance(10);
    expect(await Promise.all(all)).toEqual(["a", "b", "c", "d"]);
  });

  it("passes on a failure to the caller whose work failed, and goes on with the next", async () => {
    const clock = createFakeClock(0);
    const pacer = createPacer({ busy: () => true, share: 0.5, clock });
    const failing = pacer.run(async () => {
      throw new Error("store away");
    });
    const next = pacer.run(async () => "next");
    await expect(failing).rejects.toThrow("store away");
    await clock.advance(10);
    expect(await next).toBe("next");
  });
});

describe("rate meter", () => {
  it("counts what happened in the last window, the older bucket weighted by how much of it is still inside", async () => {
    const clock = createFakeClock(0);
    const meter = createRateMeter(1000, clock);
    expect(meter.count()).toBe(0);
    meter.mark(30);
    await clock.advance(500);
    meter.mark(10);
    expect(meter.count()).toBe(40);
    await clock.advance(750); // 1,250 ms: the first bucket (40) is a quarter out of the window
    meter.mark(2);
    expect(meter.count()).toBe(2 + 40 * 0.75);
    await clock.advance(2000); // nothing for two windows
    expect(meter.count()).toBe(0);
  });
});
