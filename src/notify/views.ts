import type { Executor } from "../store/sql.ts";
import type { IncidentRow } from "../store/schema.ts";
import { approverOf, getApproval, mergeActionOf, parseAction, type ApprovalRow } from "../approvals/repo.ts";

// What a notice shows, read from the database when it is sent (never from the request), so a
// message is always the incident as it is now and sending it again changes nothing.

/** The timeline events a notice mentions. */
export const NOTICE_EVENT_TYPES = [
  "incident.detected",
  "incident.verifying",
  "incident.resolved",
  "incident.escalated",
  "incident.failed",
  "incident.suppressed",
  "approval.requested",
  "approval.approved",
  "approval.rejected",
  "approval.expired",
  "approval.cancelled",
  "approval.superseded",
  "approval.merge_failed",
  "pr.merged",
  "agent.claimed",
  "agent.result",
  "agent.lease_expired",
] as const;

export type TimelineEntry = {
  type: string;
  at: number;
  actor: string;
  channel: string;
  reason: string | null;
  data: Record<string, unknown>;
};

export type PlanView = {
  skill?: string;
  rationale?: string;
  confidence?: number;
  planner?: string;
  risk?: string;
  fallback?: string;
};

export type IncidentView = {
  id: string;
  title: string;
  state: string;
  severity: string | null;
  namespace: string | null;
  service: string | null;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  openedAt: number;
  resolvedAt: number | null;
  timeToResolveMs: number | null;
  flapCount: number;
  plan: PlanView | null;
  /** Oldest first; the latest ones only. */
  timeline: TimelineEntry[];
};

export type DiffSummary = {
  files: Array<{ path: string; added: number; removed: number }>;
  added: number;
  removed: number;
};

export type ApprovalView = {
  id: string;
  state: string;
  risk: string;
  requestedAt: number;
  expiresAt: number;
  decidedAt: number | null;
  /** "alice via telegram", "policy". */
  decidedBy: string | null;
  reason: string | null;
  pr: { number: number; url: string | null; branch: string | null; sha: string | null } | null;
  mergeSha: string | null;
  mergedAt: number | null;
  /** What a before_run approval runs. */
  skill: string | null;
  summary: string | null;
  diffSummary: DiffSummary | null;
  diffExcerpt: string | null;
  /** The last failed merge of this approval, when it is the newest thing that happened to it. */
  mergeFailure: { code: string; reason: string; at: number } | null;
  /** Cancelled because the incident's alert resolved by itself. */
  alertResolved: boolean;
  chatId: string | null;
  messageId: string | null;
  incident: IncidentView;
};

const TIMELINE_LIMIT = 40;

function parseJson<T>(text: string | null | undefined, fallback: T): T {
  if (!text) return fallback;
  try {
    const v = JSON.parse(text) as unknown;
    return (v ?? fallback) as T;
  } catch {
    return fallback;
  }
}

const strings = (o: unknown): Record<string, string> =>
  Object.fromEntries(
    Object.entries(typeof o === "object" && o ? o : {}).map(([k, v]) => [
      k,
      typeof v === "string" ? v : JSON.stringify(v),
    ]),
  );

export async function loadIncidentView(db: Executor, incidentId: string): Promise<IncidentView | undefined> {
  const inc = await db.selectFrom("incidents").selectAll().where("id", "=", incidentId).executeTakeFirst();
  if (!inc) return undefined;
  const rows = await db
    .selectFrom("events")
    .select(["type", "occurred_at", "actor", "channel", "reason", "data"])
    .where("incident_id", "=", incidentId)
    .where("type", "in", NOTICE_EVENT_TYPES)
    .orderBy("seq", "desc")
    .limit(TIMELINE_LIMIT)
    .execute();
  const timeline = rows.reverse().map((e) => ({
    type: e.type,
    at: Number(e.occurred_at),
    actor: e.actor,
    channel: e.channel,
    reason: e.reason,
    data: parseJson<Record<string, unknown>>(e.data, {}),
  }));
  return incidentView(inc, timeline);
}

function incidentView(inc: IncidentRow, timeline: TimelineEntry[]): IncidentView {
  // Filled in by the verification change; older rows fall back to the timestamps.
  const ttr = (inc as IncidentRow & { time_to_resolve_ms?: number | null }).time_to_resolve_ms;
  const resolvedAt = inc.resolved_at === null ? null : Number(inc.resolved_at);
  const plan = parseJson<PlanView | null>(inc.plan, null);
  return {
    id: inc.id,
    title: inc.title,
    state: inc.state,
    severity: inc.severity,
    namespace: inc.namespace,
    service: inc.service,
    labels: strings(parseJson(inc.labels, {})),
    annotations: strings(parseJson(inc.annotations, {})),
    openedAt: Number(inc.opened_at),
    resolvedAt,
    timeToResolveMs:
      ttr !== null && ttr !== undefined
        ? Number(ttr)
        : inc.state === "resolved" && resolvedAt !== null
          ? resolvedAt - Number(inc.opened_at)
          : null,
    flapCount: Number(inc.flap_count),
    plan: plan && typeof plan === "object" ? plan : null,
    timeline,
  };
}

export async function loadApprovalView(db: Executor, approvalId: string): Promise<ApprovalView | undefined> {
  const a = await getApproval(db, approvalId);
  if (!a) return undefined;
  const incident = await loadIncidentView(db, a.incident_id);
  if (!incident) return undefined;
  return approvalView(a, incident);
}

export function approvalView(a: ApprovalRow, incident: IncidentView): ApprovalView {
  // diff_summary / diff_excerpt come with the approval-binding change; render without them until then.
  const extra = a as ApprovalRow & { diff_summary?: string | null; diff_excerpt?: string | null };
  const merge = mergeActionOf(a);
  const action = parseAction(a) as { skill?: unknown; summary?: unknown };
  const mine = incident.timeline.filter((e) => e.data.approvalId === a.id);
  const last = mine.at(-1);
  const failure =
    last?.type === "approval.merge_failed"
      ? { code: String(last.data.code ?? ""), reason: last.reason ?? "", at: last.at }
      : null;
  const resolved = [...incident.timeline].reverse().find((e) => e.type === "incident.resolved");
  const summary = parseJson<DiffSummary | null>(extra.diff_summary, null);
  return {
    id: a.id,
    state: a.state,
    risk: a.risk,
    requestedAt: Number(a.requested_at),
    expiresAt: Number(a.expires_at),
    decidedAt: a.decided_at === null ? null : Number(a.decided_at),
    decidedBy: a.decided_by === null && a.channel === null ? null : approverOf(a),
    reason: a.reason,
    pr:
      a.pr_number === null
        ? null
        : { number: Number(a.pr_number), url: merge?.merge.url ?? null, branch: a.pr_branch, sha: a.head_sha },
    mergeSha: a.merge_sha,
    mergedAt: a.merged_at === null ? null : Number(a.merged_at),
    skill: typeof action.skill === "string" ? action.skill : null,
    summary: typeof action.summary === "string" ? action.summary : null,
    diffSummary: summary && Array.isArray(summary.files) ? summary : null,
    diffExcerpt: extra.diff_excerpt ?? null,
    mergeFailure: a.state === "pending" ? failure : null,
    alertResolved:
      a.state === "cancelled" && incident.state === "resolved" && resolved?.data.event === "alert.resolved",
    chatId: a.chat_id,
    messageId: a.message_id,
    incident,
  };
}
