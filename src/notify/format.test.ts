import { describe, expect, it } from "vitest";
import { escapeCut, escapeHtml, fitHtml, formatElapsed, formatTime } from "./format.ts";

/** True when every `&` starts a whole entity and no tag is cut: what Telegram's parser needs. */
const wellFormed = (html: string) =>
  !/&(?!(amp|lt|gt|quot);)/.test(html) && (html.match(/</g) ?? []).length === (html.match(/>/g) ?? []).length;

describe("escapeHtml", () => {
  it("escapes the characters HTML parse mode reserves", () => {
    expect(escapeHtml(`<b>&"x"</b>`)).toBe("&lt;b&gt;&amp;&quot;x&quot;&lt;/b&gt;");
  });
});

describe("escapeCut", () => {
  it("keeps short text whole", () => {
    expect(escapeCut("a & b", 100)).toBe("a &amp; b");
  });

  it("never cuts inside an entity", () => {
    for (let max = 1; max < 30; max++) {
      const out = escapeCut("&&&&&<<<<>>>>", max);
      expect(out.length).toBeLessThanOrEqual(max);
      expect(wellFormed(out)).toBe(true);
      expect(out.endsWith("…")).toBe(true);
    }
  });

  it("never splits a surrogate pair", () => {
    const out = escapeCut("🔥".repeat(10), 6);
    expect(out).toBe("🔥🔥…");
  });
});

describe("fitHtml", () => {
  it("leaves a message that fits as it is", () => {
    expect(fitHtml(["<b>", { text: "a<b" }, "</b>"])).toBe("<b>a&lt;b</b>");
  });

  it("shortens the longest cuttable part so the whole stays within the limit", () => {
    const out = fitHtml(["<b>title</b>\n", { text: "x".repeat(5000) }, "\n", { text: "short" }], 200);
    expect(out.length).toBeLessThanOrEqual(200);
    expect(out).toContain("<b>title</b>");
    expect(out).toContain("short");
  });

  it("cuts hostile text after escaping and never inside an entity or a tag", () => {
    const hostile = "<b>&</b>".repeat(2000);
    for (const limit of [100, 101, 102, 103, 104, 4096]) {
      const out = fitHtml(
        ["<i>", { text: hostile, min: 10 }, "</i>\n", { text: hostile, open: "<pre>", close: "</pre>" }],
        limit,
      );
      expect(out.length).toBeLessThanOrEqual(limit);
      expect(wellFormed(out)).toBe(true);
      expect(out.startsWith("<i>&lt;b&gt;")).toBe(true);
    }
  });

  it("drops a wrapped part with its tags when nothing of it fits", () => {
    const out = fitHtml(["x".repeat(95), { text: "diff", open: "<pre>", close: "</pre>" }], 100);
    expect(out).toBe("x".repeat(95));
  });

  it("respects each part's own maximum", () => {
    expect(fitHtml([{ text: "abcdefghij", max: 5 }])).toBe("abcd…");
  });
});

describe("times", () => {
  it("formats durations and UTC times", () => {
    expect(formatElapsed(192_000)).toBe("3m12s");
    expect(formatElapsed(45_000)).toBe("45s");
    expect(formatElapsed(2 * 3_600_000 + 5 * 60_000)).toBe("2h05m");
    expect(formatTime(Date.parse("2026-11-20T08:15:03Z"))).toBe("08:15:03 UTC");
  });
});
