import { fitHtml, formatElapsed, formatTime, type Part } from "./format.ts";
import type { IncidentView, TimelineEntry } from "./views.ts";

// The incident card: one Telegram message per incident, edited as it moves (opened, fix proposed,
// approved, merged, resolved with its time to resolve, escalated and why, failed). Pure: a view
// in, HTML out; the sender decides when to send it.

export type Severity = "info" | "warning" | "critical";

/** AlertManager severities vary by team; anything not clearly warning or worse counts as info. */
export function severityRank(s: string | null): number {
  const v = (s ?? "").toLowerCase();
  if (/^(critical|crit|page|pager|error|high|fatal|emergency|disaster|p1)$/.test(v)) return 2;
  if (/^(warning|warn|medium|major|p2)$/.test(v)) return 1;
  return 0;
}

const RANK: Record<Severity, number> = { info: 0, warning: 1, critical: 2 };

/** The events that make an incident worth a card whatever its severity: a person is needed, or its fix did something. */
const ALWAYS = new Set([
  "approval.requested",
  "approval.merge_failed",
  "pr.merged",
  "incident.escalated",
  "incident.failed",
]);

/**
 * Whether an incident without a card yet gets one: its opening, from NOTIFY_MIN_SEVERITY up; below
 * that, once it needs a person or its fix changed something. Resolving alone is no news.
 */
export function shouldAnnounce(view: IncidentView, minSeverity: Severity): boolean {
  if (severityRank(view.severity) >= RANK[minSeverity]) return true;
  return view.timeline.some((e) => ALWAYS.has(e.type));
}

const ICONS: Record<string, string> = {
  detected: "🔥",
  analyzing: "🔥",
  fixing: "🔧",
  proposed: "🟠",
  approved: "🔧",
  verifying: "👀",
  resolved: "✅",
  escalated: "🆘",
  failed: "❌",
  rejected: "🚫",
  suppressed: "🔕",
};

const latest = (v: IncidentView, type: string): TimelineEntry | undefined =>
  [...v.timeline].reverse().find((e) => e.type === type);

function stateLine(v: IncidentView): { head: string; reason: string | null } {
  const why = (type: string) => latest(v, type)?.reason ?? null;
  switch (v.state) {
    case "detected":
    case "analyzing":
      return { head: "Open: Pitcrew is looking for a fix", reason: null };
    case "fixing":
      return { head: `Fix in progress${v.plan?.skill ? ` (${v.plan.skill})` : ""}`, reason: null };
    case "proposed":
      return { head: "Waiting for approval", reason: why("approval.requested") };
    case "approved":
      return { head: "Approved: merging", reason: why("approval.approved") };
    case "verifying":
      return {
        head: "Fix applied: waiting for the alert to resolve",
        reason: why("pr.merged") ?? why("incident.verifying"),
      };
    case "resolved":
      return {
        head: `Resolved${v.timeToResolveMs !== null ? ` in ${formatElapsed(v.timeToResolveMs)}` : ""}`,
        reason: why("incident.resolved"),
      };
    case "escalated":
      return { head: "Escalated to a person", reason: why("incident.escalated") };
    case "failed":
      return { head: "Fix failed", reason: why("incident.failed") };
    case "rejected":
      return { head: "Fix rejected", reason: why("approval.rejected") };
    case "suppressed":
      return { head: "Suppressed", reason: why("incident.suppressed") };
    default:
      return { head: v.state, reason: null };
  }
}

function timelineText(e: TimelineEntry, all: TimelineEntry[]): string | null {
  const r = e.reason ? `: ${e.reason}` : "";
  switch (e.type) {
    case "incident.detected":
      return e.data.event === "reopen" ? "fired again (reopened)" : "opened";
    case "approval.requested":
      return `approval requested${r}`;
    case "approval.approved":
      return `approved by ${e.actor} via ${e.channel}${r}`;
    case "approval.rejected":
      return `rejected by ${e.actor} via ${e.channel}${r}`;
    case "approval.expired":
      return "approval expired without a decision";
    case "approval.cancelled":
      return `approval cancelled${r}`;
    case "approval.superseded":
      return `approval superseded${r}`;
    case "approval.merge_failed":
      return `merge failed${r}`;
    case "pr.merged":
      return e.reason ?? "pull request merged";
    case "incident.verifying":
      // A merge writes pr.merged with it; an inline fix only this.
      return all.some((o) => o.type === "pr.merged" && o.at === e.at) ? null : `fix applied${r}`;
    case "incident.resolved":
      return `resolved${r}`;
    case "incident.escalated":
      return `escalated${r}`;
    case "incident.failed":
      return `fix failed${r}`;
    case "incident.suppressed":
      return `suppressed${r}`;
    // External agents: the reason names the agent, its target and what it did.
    case "agent.claimed":
    case "agent.result":
    case "agent.lease_expired":
      return e.reason;
    default:
      return null;
  }
}

const LABEL_ORDER = ["alertname", "namespace", "severity", "service", "deployment", "pod", "job", "instance"];
const MAX_LABELS = 8;
const MAX_TIMELINE = 12;

export function renderIncidentCard(v: IncidentView): string {
  const parts: Part[] = [];
  const line = () => parts.push("\n");
  parts.push(`${ICONS[v.state] ?? "•"} <b>`, { text: v.title, max: 300, min: 40 }, "</b>");
  line();
  const where = [v.namespace, v.service].filter(Boolean).join("/");
  parts.push(
    { text: v.severity ?? "no severity", max: 40 },
    where ? " · " : "",
    { text: where, max: 200, min: 20 },
    ` · <code>${v.id.replace(/[^\w-]/g, "")}</code>`,
  );
  line();
  const s = stateLine(v);
  parts.push(`<b>${s.head}</b>`);
  if (s.reason) parts.push(" — ", { text: s.reason, max: 600, min: 60 });
  line();
  const summary = v.annotations.summary ?? v.annotations.description ?? v.annotations.message;
  if (summary) {
    parts.push({ text: summary, max: 500, min: 0, open: "<i>", close: "</i>\n" });
  }
  const keys = Object.keys(v.labels)
    .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))
    .slice(0, MAX_LABELS);
  if (keys.length) {
    parts.push("Labels: ");
    keys.forEach((k, i) =>
      parts.push(i ? ", " : "", { text: `${k}=${v.labels[k]}`, max: 120, min: 10, open: "<code>", close: "</code>" }),
    );
    const more = Object.keys(v.labels).length - keys.length;
    parts.push(more > 0 ? ` and ${more} more\n` : "\n");
  }
  if (v.plan?.skill) {
    parts.push(
      "Plan: ",
      { text: v.plan.skill, max: 100 },
      v.plan.planner ? ` (${v.plan.planner === "claude" ? "Claude" : "rules"})` : "",
      "\n",
    );
  }
  const entries = v.timeline
    .map((e) => ({ e, text: timelineText(e, v.timeline) }))
    .filter((x) => x.text !== null)
    .slice(-MAX_TIMELINE);
  if (entries.length) {
    parts.push("\n");
    for (const { e, text } of entries)
      parts.push(`<code>${formatTime(e.at).slice(0, 8)}</code> `, { text: text!, max: 300, min: 30 }, "\n");
  }
  return fitHtml(parts).trimEnd();
}

function rank(label: string): number {
  const i = LABEL_ORDER.indexOf(label);
  return i < 0 ? LABEL_ORDER.length : i;
}
