import { describe, expect, it } from "vitest";
import { createMetrics } from "../shared/metrics.ts";
import type { CommittedEvent } from "../store/commit-hooks.ts";
import { newIncidentRow } from "./repo.ts";
import { createLifecycleMetrics } from "./lifecycle-metrics.ts";

const T0 = Date.parse("2026-11-20T09:45:00Z");

const incident = (o: { severity?: string | null; plan?: string | null; openedAt?: number } = {}) => ({
  ...newIncidentRow(
    {
      id: "inc_1",
      fingerprint: "f1",
      dedupe_key: null,
      open_key: "f:f1",
      title: "t",
      source: "alertmanager",
      severity: o.severity === undefined ? "critical" : o.severity,
      namespace: null,
      service: null,
      alertname: "A",
      labels: {},
      annotations: {},
    },
    o.openedAt ?? T0,
  ),
  plan: o.plan ?? null,
});

const event = (type: string, o: Partial<CommittedEvent> = {}): CommittedEvent => ({
  id: `evt_${type}`,
  type,
  incidentId: "inc_1",
  taskId: null,
  actor: "someone",
  channel: "engine",
  reason: null,
  data: {},
  occurredAt: T0,
  ...o,
});

/** The samples of one metric as `labels → value`. */
async function values(m: ReturnType<typeof createMetrics>, name: string): Promise<Record<string, number>> {
  const metric = m.registry.getSingleMetric(name)!;
  const out: Record<string, number> = {};
  for (const v of (await metric.get()).values)
    out[
      Object.entries(v.labels)
        .map(([k, x]) => `${k}=${x}`)
        .join(",")
    ] = v.value;
  return out;
}

describe("lifecycle metrics from committed events", () => {
  it("counts new incidents by severity, not reopens; an MCP incident's severity is its label; odd values are 'other'", async () => {
    const m = createMetrics({ defaults: false });
    createLifecycleMetrics(m)([
      event("incident.detected", { incident: incident({ severity: "Critical" }) }),
      event("incident.detected", { data: { from: "resolved", event: "reopen" }, incident: incident() }),
      event("incident.detected", { data: { source: "mcp", labels: { severity: "warning" } } }),
      event("incident.detected", { data: { source: "mcp", labels: {} } }),
      event("incident.detected", { incident: incident({ severity: "sev 1 (wake everyone)" }) }),
    ]);
    expect(await values(m, "pitcrew_incidents_opened_total")).toEqual({
      "severity=critical": 1,
      "severity=warning": 1,
      "severity=none": 1,
      "severity=other": 1,
    });
  });

  it("counts resolves and escalations by the skill of the plan, 'none' without one", async () => {
    const m = createMetrics({ defaults: false });
    const planned = incident({ plan: JSON.stringify({ skill: "crashloop-after-deploy", params: {} }) });
    createLifecycleMetrics(m)([
      event("incident.resolved", { incident: planned }),
      event("incident.resolved", { incident: incident() }),
      event("incident.escalated", { incident: planned }),
      event("incident.escalated", { incident: incident({ plan: "not json" }) }),
    ]);
    expect(await values(m, "pitcrew_incidents_resolved_total")).toEqual({
      "skill=crashloop-after-deploy": 1,
      "skill=none": 1,
    });
    expect(await values(m, "pitcrew_incidents_escalated_total")).toEqual({
      "skill=crashloop-after-deploy": 1,
      "skill=none": 1,
    });
  });

  it("times alert → PR from the opening for Pitcrew's own fix only", async () => {
    const m = createMetrics({ defaults: false });
    const pr = { number: 7, branch: "pitcrew/x" };
    createLifecycleMetrics(m)([
      event("incident.proposed", {
        data: { event: "fix.proposed", pr },
        incident: incident(),
        occurredAt: T0 + 90_000,
      }),
      // A before_run approval (no pull request yet), a revert, an external agent's pull request.
      event("incident.proposed", { data: { event: "fix.proposed" }, incident: incident(), occurredAt: T0 + 1000 }),
      event("incident.proposed", { data: { event: "revert.proposed", pr }, incident: incident() }),
      event("incident.proposed", { data: { event: "agent.proposed", pr }, incident: incident() }),
    ]);
    const h = (await m.alertToPr.get()).values;
    expect(h.find((v) => v.metricName === "pitcrew_alert_to_pr_seconds_count")?.value).toBe(1);
    expect(h.find((v) => v.metricName === "pitcrew_alert_to_pr_seconds_sum")?.value).toBe(90);
  });

  it("counts approvals by the deciding channel, an expiry as channel none, merges by the approval's channel", async () => {
    const m = createMetrics({ defaults: false });
    createLifecycleMetrics(m)([
      event("approval.approved", { channel: "telegram" }),
      event("approval.rejected", { channel: "console" }),
      event("approval.approved", { channel: "policy" }),
      event("approval.approved", { channel: "cli" }),
      event("approval.expired", { channel: "engine" }),
      event("pr.merged", { channel: "mcp", data: { channel: "telegram" } }),
      event("approval.merge_failed", { channel: "engine", data: { channel: "policy" } }),
      event("approval.requested", { channel: "engine" }),
    ]);
    expect(await values(m, "pitcrew_approvals_total")).toEqual({
      "channel=telegram,outcome=approved": 1,
      "channel=console,outcome=rejected": 1,
      "channel=policy,outcome=approved": 1,
      "channel=other,outcome=approved": 1,
      "channel=none,outcome=expired": 1,
      "channel=telegram,outcome=merged": 1,
      "channel=policy,outcome=merge_failed": 1,
    });
  });
});
