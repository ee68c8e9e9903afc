import { describe, expect, it } from "vitest";
import { formatQuantity, parseQuantity, quantityMode, scaleQuantity } from "./quantity.ts";

describe("parseQuantity", () => {
  it.each([
    ["500m", 0.5, "m"],
    ["8Gi", 8 * 2 ** 30, "Gi"],
    ["1.5Gi", 1.5 * 2 ** 30, "Gi"],
    ["10", 10, ""],
    ["2k", 2000, "k"],
    ["1E", 1e18, "E"],
    ["1e3", 1000, ""],
    [".5", 0.5, ""],
    [4, 4, ""],
  ])("reads %s", (raw, base, suffix) => {
    expect(parseQuantity(raw)).toEqual({ base, suffix });
  });

  it.each(["", "Gi", "8 Gi", "8GB", "abc", "1.2.3", null, {}])("rejects %j", (raw) => {
    expect(parseQuantity(raw)).toBeUndefined();
  });
});

describe("quantityMode", () => {
  it.each([
    ["requests.cpu", "4", "cpu"],
    ["limits.memory", "8Gi", "bytes"],
    ["requests.storage", "100Gi", "bytes"],
    ["requests.ephemeral-storage", "1Gi", "bytes"],
    ["hugepages-2Mi", "1Gi", "bytes"],
    ["pods", "10", "count"],
    ["count/deployments.apps", 20, "count"],
    ["replicas", 3, "count"],
    ["size", "20Gi", "bytes"],
    ["ratio", 0.3, "number"],
  ])("%s is a %s value", (key, value, mode) => {
    expect(quantityMode(key, value)).toBe(mode);
  });
});

describe("scaleQuantity", () => {
  const scale = (v: unknown, f: number, key: string, cap?: number) => scaleQuantity(v, f, { key, cap });

  it("keeps the unit when the result is whole in it", () => {
    expect(scale("8Gi", 1.25, "requests.memory")).toEqual({ value: "10Gi", changed: true, capped: false });
    expect(scale("500m", 1.5, "cpu")).toEqual({ value: "750m", changed: true, capped: false });
    expect(scale("100Mi", 1.1, "memory")?.value).toBe("110Mi");
    expect(scale("1.5Gi", 2, "memory")?.value).toBe("3Gi");
  });

  it("steps down to a smaller unit of the same family instead of writing a fraction", () => {
    expect(scale("1Gi", 1.5, "memory")?.value).toBe("1536Mi");
    expect(scale("3Gi", 1.25, "memory")?.value).toBe("3840Mi");
    expect(scale("1G", 1.5, "memory")?.value).toBe("1500M");
    expect(scale("1", 1.5, "limits.cpu")?.value).toBe("1500m");
    expect(scale(0.5, 1.5, "cpu")?.value).toBe("750m");
  });

  it("rounds up at the smallest unit: whole bytes, whole millicores, whole counts", () => {
    expect(scale("10", 1.25, "pods")).toEqual({ value: "13", changed: true, capped: false });
    expect(scale(3, 1.1, "replicas")?.value).toBe(4);
    expect(scale("1m", 1.5, "cpu")?.value).toBe("2m");
    expect(scale("1001", 1.5, "memory")?.value).toBe("1502");
    expect(scale("4", 1.25, "requests.cpu")?.value).toBe("5");
  });

  it("keeps a YAML number a number and a string a string", () => {
    expect(scale(4, 1.25, "cpu")?.value).toBe(5);
    expect(scale("4", 1.25, "cpu")?.value).toBe("5");
    expect(scale(10, 1.25, "pods")?.value).toBe(13);
  });

  it("caps at the maximum, rounding the cap down in the value's unit", () => {
    expect(scale("6", 1.5, "cpu", 8)).toEqual({ value: "8", changed: true, capped: true });
    expect(scale("6000m", 1.5, "cpu", 8)).toEqual({ value: "8000m", changed: true, capped: true });
    expect(scale("10", 1.5, "pods", 12.5)).toEqual({ value: "12", changed: true, capped: true });
    expect(scale("8Gi", 1.5, "memory", 10 * 2 ** 30)?.value).toBe("10Gi");
  });

  it("writes a cap in the unit of the quantity it was derived from", () => {
    expect(scaleQuantity("7813m", 1.25, { key: "cpu", cap: 8, capLike: "4" })?.value).toBe("8");
    expect(scaleQuantity("16000Mi", 1.25, { key: "memory", cap: 16 * 2 ** 30, capLike: "8Gi" })?.value).toBe("16Gi");
    expect(scaleQuantity("7813m", 1.25, { key: "cpu", cap: 8 })?.value).toBe("8000m");
  });

  it("never lowers a value that is already at or above the cap", () => {
    expect(scale("8", 1.5, "cpu", 8)).toEqual({ value: "8", changed: false, capped: true });
    expect(scale("12", 1.5, "cpu", 8)).toEqual({ value: "12", changed: false, capped: true });
    expect(scale("10", 1.01, "pods", 10.5)).toEqual({ value: "10", changed: false, capped: true });
  });

  it("does not scale what is not a quantity", () => {
    expect(scale("lots", 2, "cpu")).toBeUndefined();
    expect(scale(true, 2, "cpu")).toBeUndefined();
    expect(scale("1", 0, "cpu")).toBeUndefined();
  });

  it("writes exponent forms as plain numbers and unknown fractions as fractions", () => {
    expect(scale("1e3", 2, "pods")?.value).toBe("2000");
    expect(scale(0.3, 1.5, "ratio")?.value).toBe(0.45);
  });
});

describe("formatQuantity", () => {
  it("rounds down when asked, for caps", () => {
    expect(formatQuantity(1.5 * 2 ** 30 + 1, { suffix: "Gi", numeric: false }, "bytes", "down")).toBe(
      `${1.5 * 2 ** 30 + 1}`,
    );
    expect(formatQuantity(12.9, { suffix: "", numeric: true }, "count", "down")).toBe(12);
    expect(formatQuantity(2.0005, { suffix: "", numeric: false }, "cpu", "down")).toBe("2000m");
  });
});
