import { getIncident } from "../incidents/repo.ts";
import type { Executor } from "../store/sql.ts";
import {
  approvalView,
  eventView,
  incidentView,
  type ApprovalView,
  type EventView,
  type IncidentView,
} from "./views.ts";

// An incident as a document: what the pitcrew://incidents/{id} resource and the prompts show — the
// incident, its annotations, approvals and timeline — as JSON (the tools' views) and as markdown
// for a model or a person. Everything in the markdown that came from outside (titles, labels,
// annotations, reasons) is escaped, so an alert cannot inject links, images or HTML into it.

/** The most recent events a document carries (the timeline is oldest first). */
export const TIMELINE_LIMIT = 200;

export type IncidentDoc = {
  incident: IncidentView & { annotations: Record<string, string> };
  approvals: ApprovalView[];
  timeline: EventView[];
  /** Events older than the timeline shows. */
  earlier_events: number;
};

export async function loadIncidentDoc(db: Executor, id: string): Promise<IncidentDoc | undefined> {
  const inc = await getIncident(db, id);
  if (!inc) return undefined;
  const approvals = await db
    .selectFrom("approvals")
    .selectAll()
    .where("incident_id", "=", inc.id)
    .orderBy("requested_at", "desc")
    .orderBy("id", "desc")
    .execute();
  const events = (
    await db
      .selectFrom("events")
      .selectAll()
      .where("incident_id", "=", inc.id)
      .orderBy("seq", "desc")
      .limit(TIMELINE_LIMIT)
      .execute()
  ).reverse();
  let earlier = 0;
  if (events.length === TIMELINE_LIMIT) {
    const row = await db
      .selectFrom("events")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("incident_id", "=", inc.id)
      .where("seq", "<", events[0]!.seq)
      .executeTakeFirst();
    earlier = Number(row?.n ?? 0);
  }
  return {
    incident: { ...incidentView(inc), annotations: stringRecord(inc.annotations) },
    approvals: approvals.map(approvalView),
    timeline: events.map(eventView),
    earlier_events: earlier,
  };
}

function stringRecord(json: string): Record<string, string> {
  try {
    const o = JSON.parse(json) as unknown;
    if (!o || typeof o !== "object") return {};
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]));
  } catch {
    return {};
  }
}

/**
 * Text that reads as itself in markdown: one line, and every character that could start markup
 * (emphasis, code, links, images, HTML, entities, tables) backslash-escaped.
 */
export function mdText(s: string): string {
  return s
    .replace(/\s+/g, " ")
    .trim()
    .replace(/[\\`*_[\]<>!&|~#]/g, (c) => `\\${c}`);
}

/** A JSON value in a fenced block whose fence is longer than any backtick run inside. */
function jsonBlock(v: unknown): string {
  const text = JSON.stringify(v, null, 2);
  const longest = Math.max(0, ...(text.match(/`+/g) ?? []).map((r) => r.length));
  const fence = "`".repeat(Math.max(3, longest + 1));
  return `${fence}json\n${text}\n${fence}`;
}

export function incidentMarkdown(doc: IncidentDoc): string {
  const i = doc.incident;
  const out: string[] = [`# ${mdText(i.id)}: ${mdText(i.title)}`, ""];
  const facts: Array<[string, string | null]> = [
    ["State", i.state],
    ["Severity", i.severity],
    ["Service", i.service],
    ["Namespace", i.namespace],
    ["Alert", i.alertname],
    ["Source", i.source],
    ["Opened", i.opened_at],
    ["Resolved", i.resolved_at],
    ["Flaps", i.flap_count ? String(i.flap_count) : null],
    ["Failed fixes", i.failed_fixes ? String(i.failed_fixes) : null],
  ];
  for (const [k, v] of facts) if (v !== null) out.push(`- **${k}:** ${mdText(v)}`);
  const section = (title: string, entries: Record<string, string>) => {
    const keys = Object.keys(entries).sort();
    if (!keys.length) return;
    out.push("", `## ${title}`, "", ...keys.map((k) => `- ${mdText(k)}: ${mdText(entries[k]!)}`));
  };
  section("Labels", i.labels);
  section("Annotations", i.annotations);
  if (i.plan !== null) out.push("", "## Plan", "", jsonBlock(i.plan));
  if (doc.approvals.length) {
    out.push("", "## Approvals (newest first)", "");
    for (const a of doc.approvals) {
      const decided = a.decided_at
        ? `; ${a.state} by ${a.decided_by ?? "?"} at ${a.decided_at}${a.reason ? `: ${a.reason}` : ""}`
        : "";
      const pr = a.pr ? `; pull request #${a.pr.number}${a.pr.url ? ` ${a.pr.url}` : ""}` : "";
      out.push(
        `- ${mdText(`${a.id}: ${a.kind}, ${a.risk} risk, ${a.state}, requested ${a.requested_at}${decided}${pr}`)}`,
      );
    }
  }
  out.push(
    "",
    `## Timeline (oldest first${doc.earlier_events ? `; ${doc.earlier_events} earlier event(s) not shown` : ""})`,
    "",
  );
  if (!doc.timeline.length) out.push("No events.");
  for (const e of doc.timeline) {
    const task = e.task_id ? ` [${e.task_id}]` : "";
    out.push(
      `- ${e.occurred_at} **${mdText(e.type)}** by ${mdText(`${e.actor} via ${e.channel}${task}`)}${e.reason ? `: ${mdText(e.reason)}` : ""}`,
    );
  }
  return `${out.join("\n")}\n`;
}
