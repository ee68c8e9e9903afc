import type { Executor } from "../store/sql.ts";
import type { IncidentRow } from "../store/schema.ts";
import { getIncident } from "../incidents/repo.ts";
import { OPEN_STATES } from "../incidents/lifecycle.ts";
import { mergeActionOf, type ApprovalRow } from "./repo.ts";
import { escapeHtml as e, fitMessage } from "./telegram-parse.ts";

// What the Telegram channel answers with: a Details press, /incident, /incidents. HTML parse mode;
// every value that came from outside (titles, labels, rationale, the diff) is escaped and cut.

const iso = (ms: number | null | undefined) =>
  ms === null || ms === undefined ? "?" : new Date(Number(ms)).toISOString().replace(/\.\d{3}Z$/, "Z");
/** Escaped, then cut to `n` characters (never inside an entity). */
const ec = (s: string, n: number) => fitMessage(e(s), n);
const MAX = 4000;

function json<T>(text: string | null | undefined): T | null {
  if (!text) return null;
  try {
    return JSON.parse(text) as T;
  } catch {
    return null;
  }
}

type PlanShape = { skill?: string; rationale?: string; confidence?: number; planner?: string; risk?: string };
type DiffSummary = {
  files?: Array<{ path?: string; added?: number; removed?: number }>;
  added?: number;
  removed?: number;
};

function incidentLines(inc: IncidentRow): string[] {
  const where = [inc.namespace, inc.service].filter(Boolean).join("/");
  const lines = [`<b>Incident</b> <code>${e(inc.id)}</code> — ${e(inc.state)}`, ec(inc.title, 300)];
  lines.push(
    [inc.severity && `severity ${ec(inc.severity, 40)}`, where && ec(where, 120), `opened ${iso(inc.opened_at)}`]
      .filter(Boolean)
      .join(" · "),
  );
  const plan = json<PlanShape>(inc.plan);
  if (plan?.skill) {
    const conf = typeof plan.confidence === "number" ? `, confidence ${Math.round(plan.confidence * 100)}%` : "";
    const risk = plan.risk ? ` (${ec(plan.risk, 16)} risk)` : "";
    lines.push(
      `<b>Plan</b>: ${ec(plan.skill, 100)}${risk}${plan.planner ? `, by ${ec(plan.planner, 20)}` : ""}${conf}`,
    );
    if (plan.rationale) lines.push(`<i>${ec(plan.rationale, 600)}</i>`);
  }
  return lines;
}

function approvalLine(a: ApprovalRow): string {
  const decided = `${e(a.state)}${a.decided_by ? ` by ${ec(a.decided_by, 120)}` : ""}${a.decided_at ? ` at ${iso(a.decided_at)}` : ""}`;
  const state = a.state === "pending" ? `pending, expires ${iso(a.expires_at)}` : decided;
  return `<b>Approval</b> <code>${e(a.id)}</code> (${e(a.risk)} risk): ${state}${a.reason ? ` — ${ec(a.reason, 300)}` : ""}`;
}

/** The pull request, the diff summary and an excerpt of the diff, when the approval has them. */
function changeLines(a: ApprovalRow): string[] {
  const lines: string[] = [];
  const merge = mergeActionOf(a);
  if (merge) {
    const pr = merge.merge;
    const at = a.head_sha ? ` at ${e(a.head_sha.slice(0, 7))}` : "";
    const branch = pr.branch ? ` (<code>${ec(pr.branch, 120)}</code>${at})` : "";
    lines.push(`<b>Pull request</b> #${pr.number}${pr.url ? ` ${ec(pr.url, 300)}` : ""}${branch}`);
    if (merge.summary) lines.push(ec(merge.summary, 400));
  }
  // Stored with the approval when the runner reported them (diff_summary, diff_excerpt).
  const diff = json<DiffSummary>((a as ApprovalRow & { diff_summary?: string | null }).diff_summary);
  if (diff?.files) {
    const files = diff.files
      .slice(0, 8)
      .map((f) => `${ec(f.path ?? "?", 100)} +${Number(f.added ?? 0)} −${Number(f.removed ?? 0)}`);
    lines.push(
      `<b>Diff</b>: ${diff.files.length} file(s), +${Number(diff.added ?? 0)} −${Number(diff.removed ?? 0)}`,
      ...files.map((f) => `• ${f}`),
    );
    if (diff.files.length > 8) lines.push(`• … ${diff.files.length - 8} more`);
  }
  return lines;
}

/** The diff excerpt in what room `before` leaves under Telegram's limit. */
function withExcerpt(before: string[], a: ApprovalRow | undefined): string {
  const text = before.join("\n");
  const excerpt = (a as (ApprovalRow & { diff_excerpt?: string | null }) | undefined)?.diff_excerpt;
  const room = Math.min(1800, MAX - text.length - 12);
  return excerpt && room > 80 ? `${text}\n<pre>${ec(excerpt, room)}</pre>` : text;
}

/** A Details press: the incident, the plan with its rationale, the approval, the change. */
export async function detailsText(db: Executor, a: ApprovalRow): Promise<string> {
  const inc = await getIncident(db, a.incident_id);
  return withExcerpt(
    [...(inc ? incidentLines(inc) : [`incident ${e(a.incident_id)}`]), approvalLine(a), ...changeLines(a)],
    a,
  );
}

/** /incident <id>: the incident, its plan, its latest approval and the last steps of its timeline. */
export async function incidentText(db: Executor, id: string): Promise<string | null> {
  const inc = await getIncident(db, id);
  if (!inc) return null;
  const a = await db
    .selectFrom("approvals")
    .selectAll()
    .where("incident_id", "=", id)
    .orderBy("requested_at", "desc")
    .orderBy("id", "desc")
    .executeTakeFirst();
  const events = await db
    .selectFrom("events")
    .select(["type", "reason", "occurred_at"])
    .where("incident_id", "=", id)
    .orderBy("seq", "desc")
    .limit(6)
    .execute();
  const timeline = events
    .reverse()
    .map((ev) => `• ${iso(ev.occurred_at)} ${e(ev.type)}${ev.reason ? `: ${ec(ev.reason, 160)}` : ""}`);
  const approval = a ? [approvalLine(a), ...changeLines(a)] : [];
  return withExcerpt(
    [...incidentLines(inc), ...approval, ...(timeline.length ? ["<b>Latest</b>", ...timeline] : [])],
    a,
  );
}

/** /incidents: the open ones, newest first. */
export async function openIncidentsText(db: Executor, limit = 15): Promise<string> {
  const rows = await db
    .selectFrom("incidents")
    .selectAll()
    .where("state", "in", [...OPEN_STATES])
    .orderBy("id", "desc")
    .limit(limit + 1)
    .execute();
  if (rows.length === 0) return "No open incidents.";
  const lines = rows
    .slice(0, limit)
    .map(
      (i) =>
        `• <code>${e(i.id)}</code> ${e(i.state)}${i.severity ? ` · ${ec(i.severity, 20)}` : ""} · ${ec(i.title, 100)}`,
    );
  return [
    `<b>Open incidents</b>${rows.length > limit ? ` (newest ${limit})` : ""}`,
    ...lines,
    "",
    "<code>/incident &lt;id&gt;</code> shows one.",
  ].join("\n");
}
