import { z } from "zod";
import type { Selectable } from "kysely";
import type { ApprovalsTable, EventRow, IncidentRow, TaskRow } from "../store/schema.ts";
import type { RunnerView } from "../fleet/repo.ts";
import type { Principal } from "./tool.ts";
import { diffSummaryOf, mergeActionOf } from "../approvals/repo.ts";
import { AppError, invalid, notFound } from "../shared/errors.ts";

// What the MCP tools show of store rows: snake_case, ISO timestamps, JSON columns parsed. Shared by
// the tools so a task (or incident, event, approval) looks the same whichever tool returns it.

export const iso = (ms: number | null | undefined): string | null =>
  ms === null || ms === undefined ? null : isoOf(ms);

const DAY_MS = 86_400_000;
/** The last UTC day formatted (`2026-11-28T`): the times of one page mostly share their day. */
let lastDay = Number.NaN;
let lastDayText = "";
const pad2 = (n: number) => (n < 10 ? `0${n}` : `${n}`);
const pad3 = (n: number) => (n < 10 ? `00${n}` : n < 100 ? `0${n}` : `${n}`);

/**
 * `new Date(ms).toISOString()`, about 4× faster: a page of 50 incidents formats 150 times, and
 * Date's own formatting was ~3 % of a list call. Times outside 1970–9999 take Date's path.
 */
export function isoOf(value: number): string {
  const ms = Number(value);
  if (!Number.isInteger(ms) || ms < 0 || ms > 253_402_300_799_999) return new Date(ms).toISOString();
  const day = Math.floor(ms / DAY_MS);
  if (day !== lastDay) {
    lastDayText = new Date(day * DAY_MS).toISOString().slice(0, 11);
    lastDay = day;
  }
  let rest = ms - day * DAY_MS;
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  rest -= m * 60_000;
  const s = Math.floor(rest / 1000);
  return `${lastDayText}${pad2(h)}:${pad2(m)}:${pad2(s)}.${pad3(rest - s * 1000)}Z`;
}

function parseJson(text: string | null): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Runs `fn`; a not-found it throws is answered with `code` (`<kind>.not_found`, the one code per kind the tools use). */
export async function notFoundAs<T>(code: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof AppError && err.kind === "not_found" && err.code !== code) throw notFound(code, err.message);
    throw err;
  }
}

/** JSON with object keys sorted: two values that mean the same compare equal. */
function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v !== null && typeof v === "object")
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
    );
  return v;
}

/** Whether two JSON values are the same, whatever the order of their keys (an idempotent repeat's check). */
export const sameJson = (a: unknown, b: unknown): boolean =>
  JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));

/** Who a change made through MCP is recorded as. */
export const mcpActor = (p: Principal) => ({ actor: `mcp:${p.subject}`, channel: "mcp" }) as const;

export const cursorIn = z
  .string()
  .max(100)
  .optional()
  .describe("Opaque cursor from a previous call's next_cursor; omit for the first page.");

/** A time-ordered id (`tsk_01J…`: a prefix and a ULID), as the id-paginated lists hand out. */
const idPattern = (prefix: string) => new RegExp(`^${prefix}_[0-9A-HJKMNP-TV-Z]{26}$`);

/**
 * The cursor of an id-paginated list, or `<kind>.bad_cursor` when it is not a next_cursor this
 * list hands out: a stray value would otherwise silently skip or repeat a page.
 */
export function cursorOf(kind: string, cursor: string | undefined, pattern: RegExp | string): string | undefined {
  if (cursor === undefined) return undefined;
  const re = typeof pattern === "string" ? idPattern(pattern) : pattern;
  if (!re.test(cursor))
    throw invalid(`${kind}.bad_cursor`, "cursor: expected the next_cursor of an earlier call of this tool");
  return cursor;
}
export const limitIn = (max: number, dflt: number) =>
  z.number().int().min(1).max(max).default(dflt).describe(`Page size (1–${max}, default ${dflt}).`);
export const nextCursorOut = z
  .string()
  .nullable()
  .describe("Pass as `cursor` to get the next page; null when this was the last page.");

/** A JSON column that holds an object; anything else (never written today) is wrapped, not passed through. */
function objectOf(v: unknown): Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v)
    ? (v as Record<string, unknown>)
    : v === null || v === undefined
      ? {}
      : { value: v };
}

/** The plan an incident records (src/incidents/follow-up.ts PlanRecord); older records may lack fields. */
export const PlanView = z.looseObject({
  skill: z.string().describe("The skill chosen."),
  params: z.record(z.string(), z.unknown()).describe("Its parameters, rendered for the incident."),
  rationale: z.string().optional().describe("Why this skill."),
  confidence: z.number().optional().describe("The planner's confidence (0–1)."),
  planner: z.string().optional().describe("rules or claude."),
  risk: z.string().optional().describe("The skill's risk."),
  approval: z.string().optional().describe("The approval it asks for: none, before_run or before_merge."),
  action: z.string().optional().describe("How it acts: builtin, patch, http or agent."),
  inline: z.boolean().optional().describe("True when it runs in the control plane."),
  fallback: z.string().optional().describe("Why the planner fell back to rules."),
  after: z.string().optional().describe("The inline skill whose result this plan follows."),
});

function planOf(v: unknown): z.infer<typeof PlanView> | null {
  if (v === null || typeof v !== "object" || Array.isArray(v)) return null;
  const p = v as Record<string, unknown>;
  return { ...p, skill: typeof p.skill === "string" ? p.skill : "", params: objectOf(p.params) };
}

/** What an approval approves: a plan (before_run), or a pull request to merge (before_merge). */
const ApprovalAction = z.looseObject({
  skill: z
    .string()
    .nullable()
    .optional()
    .describe("The skill of the plan (or of the fix that opened the pull request)."),
  params: z.record(z.string(), z.unknown()).optional().describe("The plan's parameters (before_run)."),
  summary: z.string().nullable().optional().describe("What the fix did (before_merge)."),
  merge: z
    .looseObject({
      number: z.number().int().describe("Pull request number."),
      url: z.string().nullable().optional().describe("Its web address."),
      branch: z.string().nullable().optional().describe("Its head branch."),
    })
    .optional()
    .describe("The pull request to merge (before_merge)."),
});

export const TaskView = z.object({
  id: z.string().describe("Task id (tsk_…)."),
  kind: z.string().describe("Task kind, e.g. prompt, noop, skill, agent, incident.analyze."),
  pool: z.string().describe("Runner pool the task was queued to."),
  state: z.enum(["queued", "running", "succeeded", "failed", "cancelled"]).describe("Task state."),
  incident_id: z.string().nullable().describe("Incident the task belongs to, if any."),
  payload: z.record(z.string(), z.unknown()).describe("The task's input (its fields depend on the kind)."),
  result: z.unknown().describe("The runner's result once succeeded (any JSON value its kind reports), else null."),
  error: z.string().nullable().describe("Why it failed or was cancelled."),
  attempts: z.number().int().describe("Deliveries so far."),
  runner_id: z.string().nullable().describe("Runner that last reported on the task."),
  created_by: z.string().describe("Who created the task."),
  created_at: z.string().describe("ISO time the task was created."),
  updated_at: z.string().describe("ISO time of the last change."),
  started_at: z.string().nullable().describe("ISO time a runner started it."),
  finished_at: z.string().nullable().describe("ISO time it reached a terminal state."),
  last_event_at: z.string().nullable().describe("ISO time of the runner's last event."),
});
export type TaskView = z.infer<typeof TaskView>;

export function taskView(t: TaskRow): TaskView {
  return {
    id: t.id,
    kind: t.kind,
    pool: t.pool,
    state: t.state,
    incident_id: t.incident_id,
    payload: objectOf(parseJson(t.payload)),
    result: parseJson(t.result),
    error: t.error,
    attempts: Number(t.attempts),
    runner_id: t.runner_id,
    created_by: t.created_by,
    created_at: isoOf(t.created_at),
    updated_at: isoOf(t.updated_at),
    started_at: iso(t.started_at),
    finished_at: iso(t.finished_at),
    last_event_at: iso(t.last_event_at),
  };
}

export const EventView = z.object({
  seq: z.number().int().describe("Position in the timeline (increasing)."),
  id: z.string().describe("Event id."),
  type: z.string().describe("Event type, e.g. task.progress, incident.approved, approval.requested."),
  task_id: z.string().nullable().describe("Task the event is about."),
  incident_id: z.string().nullable().describe("Incident the event is about."),
  actor: z.string().describe("Who caused it (mcp:<subject>, runner:<id>, pitcrew:analysis, …)."),
  channel: z.string().describe("Through what: mcp, runner, engine, alertmanager, telegram, …"),
  reason: z.string().nullable().describe("Why, in words."),
  data: z.record(z.string(), z.unknown()).describe("Event details (their fields depend on the type)."),
  occurred_at: z.string().describe("ISO time it happened."),
});
export type EventView = z.infer<typeof EventView>;

export function eventView(e: EventRow): EventView {
  return {
    seq: Number(e.seq),
    id: e.id,
    type: e.type,
    task_id: e.task_id,
    incident_id: e.incident_id,
    actor: e.actor,
    channel: e.channel,
    reason: e.reason,
    data: objectOf(parseJson(e.data)),
    occurred_at: isoOf(e.occurred_at),
  };
}

export const IncidentView = z.object({
  id: z.string().describe("Incident id (inc_…)."),
  title: z.string().describe("Short title."),
  state: z
    .string()
    .describe(
      "Lifecycle state: detected, analyzing, fixing, proposed, approved, verifying, resolved, rejected, failed, escalated, suppressed.",
    ),
  source: z.string().describe("Where it came from: alertmanager or mcp."),
  severity: z.string().nullable().describe("Severity label."),
  namespace: z.string().nullable().describe("Kubernetes namespace."),
  service: z.string().nullable().describe("Service name."),
  alertname: z.string().nullable().describe("Alert name, for alert-driven incidents."),
  fingerprint: z.string().describe("Alert fingerprint (or the manual incident's own key)."),
  labels: z.record(z.string(), z.string()).describe("Labels."),
  plan: PlanView.nullable().describe("The recorded plan, or null before one is made."),
  flap_count: z.number().int().describe("Times it re-fired soon after resolving."),
  failed_fixes: z.number().int().describe("Fixes that failed."),
  opened_at: z.string().describe("ISO time it opened."),
  updated_at: z.string().describe("ISO time of the last change."),
  resolved_at: z.string().nullable().describe("ISO time it resolved."),
});
export type IncidentView = z.infer<typeof IncidentView>;

/** The columns incidentView reads: a list reads only these (a row has ~30, and SQLite pays per column read). */
export const INCIDENT_VIEW_COLUMNS = [
  "id",
  "title",
  "state",
  "source",
  "severity",
  "namespace",
  "service",
  "alertname",
  "fingerprint",
  "labels",
  "plan",
  "flap_count",
  "failed_fixes",
  "opened_at",
  "updated_at",
  "resolved_at",
] as const satisfies readonly (keyof IncidentRow)[];
export type IncidentViewRow = Pick<IncidentRow, (typeof INCIDENT_VIEW_COLUMNS)[number]>;

export function incidentView(i: IncidentViewRow): IncidentView {
  return {
    id: i.id,
    title: i.title,
    state: i.state,
    source: i.source,
    severity: i.severity,
    namespace: i.namespace,
    service: i.service,
    alertname: i.alertname,
    fingerprint: i.fingerprint,
    labels: (parseJson(i.labels) ?? {}) as Record<string, string>,
    plan: planOf(parseJson(i.plan)),
    flap_count: Number(i.flap_count),
    failed_fixes: Number(i.failed_fixes),
    opened_at: isoOf(i.opened_at),
    updated_at: isoOf(i.updated_at),
    resolved_at: iso(i.resolved_at),
  };
}

export type ApprovalRow = Selectable<ApprovalsTable>;

export const ApprovalView = z.object({
  id: z.string().describe("Approval id (apr_…)."),
  incident_id: z.string().describe("Incident the approval belongs to."),
  task_id: z.string().nullable().describe("Fix task that opened the pull request (before_merge); null for before_run."),
  kind: z
    .enum(["before_run", "before_merge"])
    .describe("before_run: run the planned fix; before_merge: merge its pull request."),
  state: z
    .string()
    .describe(
      "pending, approved, rejected, cancelled, expired or superseded (the pull request moved; a newer approval replaced it).",
    ),
  risk: z.string().describe("Risk of the action."),
  action: ApprovalAction.describe("What is approved: the plan (before_run) or the pull request (before_merge)."),
  requested_at: z.string().describe("ISO time it was requested."),
  expires_at: z.string().describe("ISO time after which it can no longer be decided."),
  decided_at: z.string().nullable().describe("ISO time of the decision."),
  decided_by: z.string().nullable().describe("Who decided."),
  channel: z.string().nullable().describe("Through what it was decided (mcp, telegram, …)."),
  reason: z.string().nullable().describe("The decider's reason."),
  pr: z
    .object({
      number: z.number().int().describe("Pull request number."),
      url: z.string().nullable().describe("Its web address."),
      branch: z.string().nullable().describe("Its head branch."),
    })
    .nullable()
    .describe("The pull request a before_merge approval merges; null for before_run."),
  head_sha: z
    .string()
    .nullable()
    .describe(
      "The pull request head the approval was requested for; a decision refuses a pull request that moved since.",
    ),
  diff_summary: z
    .object({
      files: z
        .array(
          z.object({
            path: z.string().describe("File path."),
            added: z.number().int().describe("Lines added."),
            removed: z.number().int().describe("Lines removed."),
          }),
        )
        .describe("Files changed (up to 100)."),
      added: z.number().int().describe("Lines added in all files."),
      removed: z.number().int().describe("Lines removed in all files."),
      more: z.number().int().optional().describe("Files changed beyond those listed."),
    })
    .nullable()
    .describe("What the pull request changes, as approved; null when not known."),
  diff_excerpt: z.string().nullable().describe("The start of the unified diff (up to about 3,000 characters)."),
  merge_sha: z.string().nullable().describe("The merge commit, once merged."),
  merged_at: z.string().nullable().describe("ISO time it was merged."),
});
export type ApprovalView = z.infer<typeof ApprovalView>;

export function approvalView(a: ApprovalRow): ApprovalView {
  const action = parseJson(a.action) as { merge?: unknown } | null;
  return {
    id: a.id,
    incident_id: a.incident_id,
    task_id: a.task_id,
    kind: action && typeof action === "object" && "merge" in action ? "before_merge" : "before_run",
    state: a.state,
    risk: a.risk,
    action: objectOf(action) as ApprovalView["action"],
    requested_at: isoOf(a.requested_at),
    expires_at: isoOf(a.expires_at),
    decided_at: iso(a.decided_at),
    decided_by: a.decided_by,
    channel: a.channel,
    reason: a.reason,
    pr:
      a.pr_number === null
        ? null
        : { number: Number(a.pr_number), url: mergeActionOf(a)?.merge.url ?? null, branch: a.pr_branch },
    head_sha: a.head_sha,
    diff_summary: diffSummaryOf(a),
    diff_excerpt: a.diff_excerpt ?? null,
    merge_sha: a.merge_sha,
    merged_at: iso(a.merged_at),
  };
}

export const RunnerOut = z.object({
  id: z.string().describe("Runner id."),
  host: z.string().describe("Host name."),
  version: z.string().describe("Runner version."),
  pool: z.string().describe("Pool it consumes."),
  concurrency: z.number().int().describe("Tasks it runs at once."),
  running_task_ids: z.array(z.string()).describe("Tasks it reported running in its last heartbeat."),
  stale: z.boolean().describe("True when unseen for more than two heartbeat intervals."),
  started_at: z.string().describe("ISO time it started."),
  last_seen_at: z.string().describe("ISO time of its last heartbeat."),
});
export type RunnerOut = z.infer<typeof RunnerOut>;

export function runnerView(r: RunnerView): RunnerOut {
  return {
    id: r.id,
    host: r.host,
    version: r.version,
    pool: r.pool,
    concurrency: Number(r.concurrency),
    running_task_ids: r.runningTaskIds,
    stale: r.stale,
    started_at: isoOf(r.started_at),
    last_seen_at: isoOf(r.last_seen_at),
  };
}
