import { describe, expect, it } from "vitest";
import { Skill } from "./schema.ts";

const base = { name: "s", description: "d", match: { alertname: ["A"] }, risk: "low" };

describe("Skill verify.on_failure", () => {
  it("accepts revert for a skill whose change is a pull request, and defaults to none", () => {
    const patch = { patch: [{ file: "a.yaml", path: "x", set: 1 }] };
    expect(Skill.parse({ ...base, action: patch, verify: { on_failure: "revert" } }).verify).toEqual({
      on_failure: "revert",
    });
    expect(Skill.parse({ ...base, action: { builtin: "scale", with: {} } }).verify.on_failure).toBeUndefined();
  });

  it("refuses revert for an inline skill, naming the field", () => {
    const r = Skill.safeParse({ ...base, action: { builtin: "probe", with: {} }, verify: { on_failure: "revert" } });
    expect(r.success).toBe(false);
    expect(r.error!.issues).toEqual([
      expect.objectContaining({
        path: ["verify", "on_failure"],
        message: expect.stringContaining("not an inline one"),
      }),
    ]);
  });

  it("refuses an unknown value", () => {
    expect(
      Skill.safeParse({ ...base, action: { builtin: "scale", with: {} }, verify: { on_failure: "rollback" } }).success,
    ).toBe(false);
  });
});
