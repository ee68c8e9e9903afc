import { describe, expect, it } from "vitest";
import { chatFor } from "./routing.ts";

const routes = [
  { label: "namespace", value: "payments", chat: "-100111" },
  { label: "severity", value: "critical", chat: "-100222" },
];

describe("chatFor", () => {
  it("sends to the first route whose label matches", () => {
    expect(chatFor({ namespace: "payments", severity: "critical" }, routes, "-1")).toBe("-100111");
    expect(chatFor({ namespace: "shop", severity: "critical" }, routes, "-1")).toBe("-100222");
  });

  it("falls back to the default chat", () => {
    expect(chatFor({ namespace: "shop" }, routes, "-1")).toBe("-1");
    expect(chatFor({}, [], "@ops")).toBe("@ops");
  });

  it("matches values exactly and ignores inherited properties", () => {
    expect(chatFor({ namespace: "payments-eu" }, routes, "-1")).toBe("-1");
    expect(
      chatFor({}, [{ label: "constructor", value: "function Object() { [native code] }", chat: "-9" }], "-1"),
    ).toBe("-1");
  });
});
