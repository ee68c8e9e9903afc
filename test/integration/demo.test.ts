import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { spawnPitcrew } from "../helpers/process.ts";

describe("pitcrew demo", () => {
  it("runs the whole loop offline — alert, plan, pull request, approval, merge, resolve — and cleans up after itself", async () => {
    // Whatever the caller's environment says, the demo configures its own control plane.
    const p = spawnPitcrew(["demo"], { DATABASE_URL: "mysql://nobody@127.0.0.1:1/none", NATS_URL: "nats://127.0.0.1:1" });
    const exit = await p.exited;
    const out = p.stdout();
    expect(exit, `${out}\n${p.stderr()}`).toEqual({ code: 0, signal: null });
    const dir = /in (\/\S+pitcrew-demo-\S+)/.exec(out)?.[1];
    expect(dir).toBeDefined();
    expect(existsSync(dir!)).toBe(false);
    const incident = /incident (inc_[0-9A-Z]+)/.exec(out)?.[1];
    expect(incident).toBeDefined();

    // Each step, in order.
    const steps = [...out.matchAll(/^\s+[\d.]+s\s+(\d)\. /gm)].map((m) => Number(m[1]));
    expect(steps).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(out).toMatch(/plan: crashloop-after-deploy \(rules planner, confidence 1, medium risk\)/);
    expect(out).toMatch(/runner: opened pull request #1/);
    expect(out).toMatch(/Approved by policy — the demo sets AUTO_APPROVE_MAX_RISK=medium/);
    // The real change on main: the bad image rolled back, and the merge commit's trailers.
    expect(out).toContain("-          image: registry.example.com/checkout:v1.4.2");
    expect(out).toContain("+          image: registry.example.com/checkout:v1.4.1");
    expect(out).toContain("Approved-by: policy");
    expect(out).toContain(`Pitcrew-Incident: ${incident}`);
    expect(out).toMatch(new RegExp(`Incident ${incident} resolved: alert resolved after the fix: crashloop-after-deploy in pull request #1 \\(merged [0-9a-f]{7}\\), approved by policy`));

    // The timeline, from detection to the resolve, with the merge before the resolve.
    const timeline = out.slice(out.indexOf("Timeline:")).split("\n").slice(1).map((l) => l.trim().split(/\s+/)[1]).filter(Boolean);
    const order = ["incident.detected", "incident.analyzing", "incident.planned", "incident.fixing", "task.pr_opened", "approval.approved", "incident.approved", "pr.merged", "incident.verifying", "incident.resolved"];
    expect(order.map((t) => timeline.indexOf(t)).every((i, k, all) => i >= 0 && (k === 0 || i > all[k - 1]!))).toBe(true);
    expect(out).toMatch(/Done in [\d.]+ s\./);
  });
});
