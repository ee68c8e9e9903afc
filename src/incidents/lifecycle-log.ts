import type { CommitListener, CommittedEvent } from "../store/commit-hooks.ts";
import type { Logger } from "../shared/logger.ts";
import { CONTROL_POOL } from "../tasks/control-jobs.ts";

// One info line per step of an incident's life, from the timeline events its transaction
// committed (store/commit-hooks.ts): what an SRE follows in the logs, with the ids to find the
// rest. The AlertManager payload's own line is the intake's ("alerts received").

type Line = [fields: Record<string, unknown>, message: string];

const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === "number" ? v : undefined);
const obj = (v: unknown): Record<string, unknown> => (v && typeof v === "object" ? (v as Record<string, unknown>) : {});

/** The log line an event stands for, or null when it is not a lifecycle step. */
export function lifecycleLine(e: CommittedEvent): Line | null {
  const d = e.data;
  const incidentId = e.incidentId;
  const by = { by: e.actor, channel: e.channel };
  switch (e.type) {
    case "incident.detected":
      return d.event === "reopen"
        ? [{ incidentId, fingerprint: d.fingerprint, flaps: d.flaps, from: d.from }, "incident reopened"]
        : [
            { incidentId, fingerprint: d.fingerprint, alertname: d.alertname, skill: d.skill, ...by },
            "incident opened",
          ];
    case "alert.joined":
      return [{ incidentId, alerts: d.alerts }, "incident joined"];
    case "incident.planned":
      return [
        {
          incidentId,
          skill: d.skill,
          planner: d.planner,
          confidence: d.confidence,
          risk: d.risk,
          approval: d.approval,
          ...(d.fallback ? { fallback: d.fallback } : {}),
        },
        "plan chosen",
      ];
    case "task.created": {
      // Control-plane jobs (analysis, merges, clean-ups) are plumbing; a fix goes to a runner pool.
      if (d.pool === CONTROL_POOL || !incidentId) return null;
      const payload = obj(d.payload);
      return [{ taskId: e.taskId, incidentId, kind: d.kind, skill: payload.skill, pool: d.pool, ...by }, "fix queued"];
    }
    case "task.pr_opened":
      return [
        { taskId: e.taskId, incidentId, number: num(d.number), url: str(d.url), branch: d.branch },
        "pull request opened",
      ];
    case "approval.requested": {
      const pr = obj(d.pr);
      return [
        {
          approvalId: d.approvalId,
          incidentId,
          taskId: e.taskId,
          risk: d.risk,
          number: num(pr.number),
          expiresAt: typeof d.expiresAt === "number" ? new Date(d.expiresAt).toISOString() : undefined,
        },
        "approval requested",
      ];
    }
    case "approval.approved":
    case "approval.rejected":
    case "approval.expired":
      return [
        { approvalId: d.approvalId, incidentId, taskId: e.taskId, decision: e.type.slice("approval.".length), ...by },
        "approval decided",
      ];
    case "pr.merged": {
      const pr = obj(d.pr);
      return [
        {
          incidentId,
          taskId: e.taskId,
          approvalId: d.approvalId,
          number: num(pr.number),
          url: str(pr.url),
          sha: d.sha,
          approvedBy: d.approvedBy,
        },
        "pull request merged",
      ];
    }
    case "incident.verifying":
      return [{ incidentId, from: d.from }, "verifying fix"];
    case "incident.resolved":
      return [{ incidentId, timeToResolveMs: num(d.timeToResolveMs), from: d.from, ...by }, "incident resolved"];
    case "incident.escalated":
      return [{ incidentId, from: d.from, why: e.reason, ...by }, "incident escalated"];
    case "incident.failed":
      return [{ incidentId, from: d.from, why: e.reason, ...by }, "incident failed"];
    case "incident.suppressed":
      return [{ incidentId, from: d.from, why: e.reason, ...by }, "incident suppressed"];
    default:
      return null;
  }
}

/** A commit listener that writes each committed lifecycle step at info. */
export function createLifecycleLog(log: Logger): CommitListener {
  const out = log.child({ component: "lifecycle" });
  return (events) => {
    for (const e of events) {
      const line = lifecycleLine(e);
      if (line) out.info(line[0], line[1]);
    }
  };
}
