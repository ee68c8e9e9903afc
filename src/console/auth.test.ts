import { describe, expect, it } from "vitest";
import { safeNext } from "./auth.ts";

describe("safeNext", () => {
  it("keeps a path on this site, with its query", () => {
    expect(safeNext("/tasks?state=failed")).toBe("/tasks?state=failed");
    expect(safeNext("/incidents/inc_01")).toBe("/incidents/inc_01");
  });

  it("refuses anything that could leave the site, or loop back to signing in", () => {
    for (const bad of [
      "https://evil.example/",
      "//evil.example/x",
      "/\\evil.example",
      "javascript:alert(1)",
      "",
      undefined,
      42,
      "/login?next=/x",
      "/auth/callback",
      "/logout",
    ]) {
      expect(safeNext(bad)).toBe("/");
    }
  });
});
