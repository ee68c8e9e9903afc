import { describe, expect, it } from "vitest";
import { diffExcerpt, summarizeDiff } from "./port.ts";

describe("diffExcerpt", () => {
  it("keeps a short diff whole, without its trailing newlines", () => {
    expect(diffExcerpt("diff --git a/x b/x\n+y\n\n")).toBe("diff --git a/x b/x\n+y");
  });

  it("cuts a long diff at the end of a line and says how many lines were left out", () => {
    const lines = Array.from({ length: 50 }, (_, i) => `+line ${i} ${"z".repeat(10)}`);
    const out = diffExcerpt(lines.join("\n"), 200);
    expect(out.length).toBeLessThanOrEqual(200);
    const kept = out.split("\n");
    const note = kept.pop()!;
    expect(kept).toEqual(lines.slice(0, kept.length));
    expect(note).toBe(`… ${50 - kept.length} more lines`);
  });

  it("leaves out a first line longer than the limit rather than cutting it", () => {
    expect(diffExcerpt(`${"x".repeat(500)}\n+y`, 100)).toBe("… 2 more lines");
  });
});

describe("summarizeDiff", () => {
  it("sorts files by path and totals lines over every file, listing at most 100", () => {
    const files = Array.from({ length: 105 }, (_, i) => ({
      path: `f${String(104 - i).padStart(3, "0")}`,
      added: 1,
      removed: 2,
    }));
    const s = summarizeDiff(files);
    expect(s.files).toHaveLength(100);
    expect(s.files[0]!.path).toBe("f000");
    expect(s).toMatchObject({ added: 105, removed: 210, more: 5 });
    expect(
      summarizeDiff([
        { path: "b", added: 0, removed: 0 },
        { path: "a", added: 3, removed: 0 },
      ]),
    ).toEqual({
      files: [
        { path: "a", added: 3, removed: 0 },
        { path: "b", added: 0, removed: 0 },
      ],
      added: 3,
      removed: 0,
    });
  });
});
