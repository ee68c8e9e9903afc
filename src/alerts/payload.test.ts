import { describe, expect, it } from "vitest";
import { AlertmanagerPayload, isRealTimestamp, LabelSet } from "./payload.ts";
import { parseAlertmanagerJson } from "./json.ts";

describe("timestamps", () => {
  it("accepts what AlertManager writes, including its zero time and nanoseconds", () => {
    for (const ts of [
      "2026-11-20T08:14:03Z",
      "2026-11-20T08:14:03.512345678Z",
      "2026-11-20T08:14:03+09:00",
      "0001-01-01T00:00:00Z",
      "2028-02-29T23:59:59Z",
    ])
      expect(isRealTimestamp(ts), ts).toBe(true);
  });

  it("refuses dates and times that do not exist instead of rolling them over", () => {
    for (const ts of [
      "2026-02-30T08:14:03Z",
      "2026-02-29T00:00:00Z",
      "2026-04-31T00:00:00Z",
      "2026-11-20T24:00:00Z",
      "2026-11-20T23:60:00Z",
      "2026-11-20T23:59:60Z",
      "2026-11-20T08:14:03+24:00",
      "2026-13-01T00:00:00Z",
      "2026-00-10T00:00:00Z",
    ]) {
      expect(isRealTimestamp(ts), ts).toBe(false);
    }
  });
});

describe("label sets", () => {
  it("keeps __proto__, constructor and toString as ordinary names in a null-prototype object", () => {
    const raw = parseAlertmanagerJson('{"__proto__":"polluted","constructor":"c","toString":"t","alertname":"A"}');
    const labels = LabelSet.parse(raw);
    expect(Object.getPrototypeOf(labels)).toBeNull();
    expect(Object.keys(labels)).toEqual(["__proto__", "constructor", "toString", "alertname"]);
    expect(JSON.stringify(labels)).toBe('{"__proto__":"polluted","constructor":"c","toString":"t","alertname":"A"}');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("refuses a value that is not a string, naming the label", () => {
    const r = LabelSet.safeParse({ alertname: "A", severity: 3 });
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]).toMatchObject({ code: "invalid_type", path: ["severity"] });
  });

  it("takes payloads without annotations or common labels, and any number of labels and alerts", () => {
    const labels = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`l${i}`, "v"]));
    const alerts = Array.from({ length: 1001 }, () => ({
      status: "firing",
      labels: { ...labels, alertname: "A" },
      startsAt: "2026-11-20T08:14:03Z",
    }));
    const r = AlertmanagerPayload.safeParse({
      version: "4",
      groupKey: "g",
      status: "firing",
      receiver: "x".repeat(2000),
      alerts,
    });
    expect(r.success).toBe(true);
    expect(r.data!.alerts).toHaveLength(1001);
  });
});

describe("JSON bodies", () => {
  it("refuses bytes that are not UTF-8", () => {
    expect(() =>
      parseAlertmanagerJson(Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d])),
    ).toThrow(expect.objectContaining({ code: "request.invalid_utf8" }));
  });

  it("refuses an escape that leaves a lone surrogate, and keeps an escaped pair", () => {
    expect(() => parseAlertmanagerJson('{"a":"x\\ud83d"}')).toThrow(
      expect.objectContaining({ code: "request.invalid_utf8" }),
    );
    expect(() => parseAlertmanagerJson('{"a":"\\udd25x"}')).toThrow(
      expect.objectContaining({ code: "request.invalid_utf8" }),
    );
    expect(() => parseAlertmanagerJson('{"\\ud83d":"x"}')).toThrow(
      expect.objectContaining({ code: "request.invalid_utf8" }),
    );
    expect(parseAlertmanagerJson(Buffer.from('{"a":"\\ud83d\\udd25"}'))).toEqual({ a: "🔥" });
  });

  it("drops a byte-order mark and refuses deep nesting", () => {
    expect(parseAlertmanagerJson(Buffer.from('\ufeff{"a":1}'))).toEqual({ a: 1 });
    expect(() => parseAlertmanagerJson("[".repeat(40) + "]".repeat(40))).toThrow(
      expect.objectContaining({ code: "alertmanager.too_deep" }),
    );
  });
});
