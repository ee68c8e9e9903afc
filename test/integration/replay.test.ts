import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { rulesPlanner } from "../../src/skills/planner.ts";
import { replay } from "../../src/main/replay.ts";
import { spawnPitcrew } from "../helpers/process.ts";

const GOOD = join(import.meta.dirname, "..", "fixtures", "alertmanager", "good");
const config = loadConfig({ SKILLS_DIR: join(import.meta.dirname, "..", "..", "skills") });

// fixture → the skill each of its alerts should get (null: nothing planned).
const EXPECTED: Record<string, Array<string | null>> = {
  "argocd-outofsync.json": ["argocd-drift-sync"],
  "cpu-throttling.json": ["cpu-throttling-raise-limit"],
  "crashloop-firing.json": ["crashloop-after-deploy"],
  "crashloop-repeat.json": ["crashloop-after-deploy"],
  "crashloop-resolved.json": [null],
  "flap-1-firing.json": ["restart-not-ready"],
  "flap-2-resolved.json": [null],
  "flap-3-firing.json": ["restart-not-ready"],
  "grouped-multi.json": ["crashloop-after-deploy", "crashloop-after-deploy", "crashloop-after-deploy"],
  "mixed-status.json": ["replicas-mismatch-scale", null],
  "newer-fields.json": ["investigate-with-agent"],
  "quota-exceeded.json": ["quota-exceeded-raise"],
  "replicas-mismatch.json": ["replicas-mismatch-scale"],
  "target-down.json": ["target-down-probe"],
  "truncated-group.json": ["restart-not-ready", "restart-not-ready"],
  "unicode-long.json": ["investigate-with-agent"],
};

describe("pitcrew replay", () => {
  for (const [file, skills] of Object.entries(EXPECTED)) {
    it(`picks ${skills.map((s) => s ?? "nothing").join(", ")} for ${file}`, async () => {
      const results = await replay(join(GOOD, file), config, rulesPlanner, silentLogger);
      expect(results.map((r) => r.plan?.skill ?? null)).toEqual(skills);
    });
  }

  it("fills the plan's parameters from the alert and states the approval the policy needs", async () => {
    const [r] = await replay(join(GOOD, "crashloop-firing.json"), config, rulesPlanner, silentLogger);
    expect(r!.plan).toMatchObject({
      skill: "crashloop-after-deploy",
      params: { namespace: "payments", pod: "checkout-7d9f8b6c5-x2x9k" },
      planner: "rules",
      risk: "medium",
      approval: "before_merge",
    });
    expect(r!.incident.dedupeKey).toBe("d:crashloop-after-deploy:payments/checkout");
  });

  it("prints the plan from the command line without a database", async () => {
    const p = spawnPitcrew(["replay", join(GOOD, "target-down.json")], { DATA_DIR: "/nonexistent/never-created" });
    expect((await p.exited).code).toBe(0);
    expect(p.stdout()).toContain("plan: target-down-probe (planner rules");
    expect(p.stdout()).toContain("approval not needed");
  });

  it("refuses a bad payload with its code", async () => {
    const p = spawnPitcrew(["replay", join(GOOD, "..", "bad", "version-3.json")], {});
    expect((await p.exited).code).toBe(1);
    expect(p.stderr()).toMatch(/^pitcrew: cannot replay: version: expected/);
  });
});
