import type { Metrics } from "../shared/metrics.ts";
import type { CommitListener, CommittedEvent } from "../store/commit-hooks.ts";
import type { IncidentRow } from "../store/schema.ts";

// The incident and approval counters, from the timeline events a transaction committed
// (store/commit-hooks.ts), like the lifecycle log beside it: an incident is escalated or resolved
// in a dozen places (the analysis, the verifier, the sweeper, a fix's outcome, MCP, the intake),
// and each is counted here once, on the replica that committed it, never for a rollback.

export type LifecycleMetrics = Pick<
  Metrics,
  "incidentsOpened" | "incidentsResolved" | "incidentsEscalated" | "alertToPr" | "approvals"
>;

const APPROVAL_CHANNELS = new Set(["telegram", "mcp", "console", "policy"]);

const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);
const obj = (v: unknown): Record<string, unknown> => (v && typeof v === "object" ? (v as Record<string, unknown>) : {});

/** The skill of the incident's plan, or "none" when it has none. */
function skillOf(incident: IncidentRow | undefined): string {
  if (!incident?.plan) return "none";
  try {
    return str(obj(JSON.parse(incident.plan)).skill) ?? "none";
  } catch {
    return "none";
  }
}

/** An alert's severity label as it came (lower-cased); "other" for a value no dashboard would list, "none" without one. */
function severityOf(e: CommittedEvent): string {
  const s = e.incident?.severity ?? str(obj(e.data.labels).severity);
  if (!s) return "none";
  return /^[a-z0-9_-]{1,32}$/i.test(s) ? s.toLowerCase() : "other";
}

/** The channel an approval was decided through; "other" for one outside the known set. */
const channelOf = (c: unknown): string => {
  const s = str(c);
  return s && APPROVAL_CHANNELS.has(s) ? s : "other";
};

/** Counts what one committed event stands for, if anything. */
export function countLifecycleEvent(m: LifecycleMetrics, e: CommittedEvent): void {
  const d = e.data;
  switch (e.type) {
    case "incident.detected":
      // A reopen writes incident.detected too; it is counted as alerts_received{outcome="reopened"}.
      if (d.event !== "reopen") m.incidentsOpened.inc({ severity: severityOf(e) });
      return;
    case "incident.resolved":
      m.incidentsResolved.inc({ skill: skillOf(e.incident) });
      return;
    case "incident.escalated":
      m.incidentsEscalated.inc({ skill: skillOf(e.incident) });
      return;
    case "incident.proposed":
      // Pitcrew's own fix opened its pull request (not a revert, not an external agent's, not a before_run approval).
      if (d.event === "fix.proposed" && d.pr && e.incident)
        m.alertToPr.observe(Math.max(0, e.occurredAt - Number(e.incident.opened_at)) / 1000);
      return;
    case "approval.approved":
    case "approval.rejected":
      m.approvals.inc({ channel: channelOf(e.channel), outcome: e.type.slice("approval.".length) });
      return;
    case "approval.expired":
      m.approvals.inc({ channel: "none", outcome: "expired" });
      return;
    case "pr.merged":
      m.approvals.inc({ channel: channelOf(d.channel), outcome: "merged" });
      return;
    case "approval.merge_failed":
      m.approvals.inc({ channel: channelOf(d.channel), outcome: "merge_failed" });
      return;
  }
}

/** A commit listener that counts each committed incident and approval step. */
export function createLifecycleMetrics(m: LifecycleMetrics): CommitListener {
  return (events) => {
    for (const e of events) countLifecycleEvent(m, e);
  };
}
