import { describe, expect, it } from "vitest";
import { createGroupCommit } from "./group-commit.ts";

/** A store whose transactions finish when the test says so. */
function fakeStore() {
  const batches: number[][] = [];
  const pending: { resolve: () => void; reject: (e: Error) => void }[] = [];
  const runBatch = (items: number[]) =>
    new Promise<number[]>((resolve, reject) => {
      batches.push(items);
      pending.push({ resolve: () => resolve(items.map((i) => i * 10)), reject });
    });
  return { batches, pending, runBatch };
}

/** Lets the event loop turn a few times: batches start on the turn after they are asked for. */
const tick = async () => {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
};

describe("group commit", () => {
  it("writes what queued while a batch ran in the next batch, and answers each caller with its own result", async () => {
    const s = fakeStore();
    const singles: number[] = [];
    let release!: () => void;
    const gc = createGroupCommit<number, number>(
      { maxItems: 100, maxWeight: 1000, concurrency: 1 },
      () => 1,
      s.runBatch,
      async (i) => {
        singles.push(i);
        await new Promise<void>((r) => (release = r));
        return i * 10;
      },
    );
    const first = gc.submit(1);
    await tick();
    const rest = [2, 3, 4].map((i) => gc.submit(i));
    expect(gc.waiting).toBe(3);
    release();
    expect(await first).toBe(10);
    expect(singles).toEqual([1]);
    await tick();
    expect(s.batches).toEqual([[2, 3, 4]]);
    s.pending[0]!.resolve();
    expect(await Promise.all(rest)).toEqual([20, 30, 40]);
  });

  it("gathers what is submitted in the same turn of the event loop into one batch, even from a store that never yields", async () => {
    // SQLite's calls finish before anything else runs: were the first item written at once, each
    // request of a burst would be written alone.
    const batches: number[][] = [];
    const gc = createGroupCommit<number, number>(
      { maxItems: 100, maxWeight: 1000, concurrency: 1 },
      () => 1,
      async (items) => (batches.push(items), items),
      async (i) => (batches.push([i]), i),
    );
    const results = await Promise.all([1, 2, 3].map((i) => gc.submit(i)));
    expect(results).toEqual([1, 2, 3]);
    expect(batches).toEqual([[1, 2, 3]]);
  });

  it("caps a batch by items and by weight, but always takes one item", async () => {
    const s = fakeStore();
    let block!: () => void;
    const gc = createGroupCommit<number, number>(
      { maxItems: 2, maxWeight: 10, concurrency: 1 },
      (i) => i,
      s.runBatch,
      (i) => new Promise((r) => (block = () => r(i * 10))),
    );
    const first = gc.submit(1);
    await tick();
    const all = [first, gc.submit(3), gc.submit(4), gc.submit(5), gc.submit(50)];
    block();
    await tick();
    expect(s.batches).toEqual([[3, 4]]);
    s.pending[0]!.resolve();
    await tick();
    await tick();
    // 5 + 50 is over the weight: 5 goes alone (one item runs through runOne), then 50 alone.
    expect(s.batches).toEqual([[3, 4]]);
    block();
    await tick();
    await tick();
    block();
    expect(await Promise.all(all)).toEqual([10, 30, 40, 50, 500]);
  });

  it("runs the items of a failed batch one at a time, so one item's failure is only its own", async () => {
    const tried: number[] = [];
    let block!: () => void;
    const gc = createGroupCommit<number, number>(
      { maxItems: 10, maxWeight: 100, concurrency: 1 },
      () => 1,
      async () => {
        throw new Error("deadlock");
      },
      async (i) => {
        if (i === 0) await new Promise<void>((r) => (block = r));
        tried.push(i);
        if (i === 3) throw new Error("item 3 is bad");
        return i;
      },
    );
    const zero = gc.submit(0);
    await tick();
    const [a, b, c] = [gc.submit(2), gc.submit(3), gc.submit(4)].map((p) =>
      p.then(
        (v) => ({ ok: v }),
        (e: Error) => ({ err: e.message }),
      ),
    );
    block();
    await zero;
    expect(await Promise.all([a, b, c])).toEqual([{ ok: 2 }, { err: "item 3 is bad" }, { ok: 4 }]);
    expect(tried).toEqual([0, 2, 3, 4]);
  });
});
