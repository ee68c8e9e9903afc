import { describe, expect, it } from "vitest";
import type { CommittedEvent } from "../store/commit-hooks.ts";
import { lifecycleLine } from "./lifecycle-log.ts";

const ev = (type: string, data: Record<string, unknown>, more: Partial<CommittedEvent> = {}): CommittedEvent => ({
  id: "evt_1",
  type,
  incidentId: "inc_1",
  taskId: null,
  actor: "alertmanager",
  channel: "alertmanager",
  reason: null,
  data,
  occurredAt: 0,
  ...more,
});

describe("lifecycleLine", () => {
  it("tells a reopened incident from a new one", () => {
    expect(
      lifecycleLine(ev("incident.detected", { from: "resolved", event: "reopen", fingerprint: "f1", flaps: 2 })),
    ).toEqual([{ incidentId: "inc_1", fingerprint: "f1", flaps: 2, from: "resolved" }, "incident reopened"]);
    expect(lifecycleLine(ev("incident.detected", { fingerprint: "f1", alertname: "A", skill: null }))?.[1]).toBe(
      "incident opened",
    );
  });

  it("says how many alerts joined, and why an incident was escalated", () => {
    expect(lifecycleLine(ev("alert.joined", { alerts: 3, fingerprints: ["a", "b", "c"] }))).toEqual([
      { incidentId: "inc_1", alerts: 3 },
      "incident joined",
    ]);
    const escalated = ev(
      "incident.escalated",
      { from: "verifying", event: "verify.failed" },
      { reason: "the alert still fires 15m after the fix", actor: "engine", channel: "system" },
    );
    expect(lifecycleLine(escalated)).toEqual([
      {
        incidentId: "inc_1",
        from: "verifying",
        why: "the alert still fires 15m after the fix",
        by: "engine",
        channel: "system",
      },
      "incident escalated",
    ]);
  });

  it("logs a fix queued to a runner pool, not the control plane's own jobs, and nothing for other events", () => {
    const task = (pool: string, kind: string) =>
      ev("task.created", { kind, pool, payload: { skill: "restart" } }, { taskId: "tsk_1" });
    expect(lifecycleLine(task("default", "skill"))?.[1]).toBe("fix queued");
    expect(lifecycleLine(task("control", "incident.analyze"))).toBeNull();
    expect(lifecycleLine(ev("task.progress", { message: "cloning" }))).toBeNull();
    expect(lifecycleLine(ev("incident.analyzing", { from: "detected" }))).toBeNull();
  });
});
