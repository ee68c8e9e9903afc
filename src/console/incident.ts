import type { FastifyInstance, FastifyReply } from "fastify";
import type { Executor } from "../store/sql.ts";
import type { AlertRow, EventRow, IncidentRow } from "../store/schema.ts";
import type { GitHost, DiffSummary } from "../gitops/port.ts";
import { diffSummaryOf, mergeActionOf, type ApprovalRow } from "../approvals/repo.ts";
import { errorMessage, invalid, notFound, withTimeout } from "../shared/errors.ts";
import { hasScope } from "../mcp/tool.ts";
import { approvalsFor } from "../mcp/decisions.ts";
import { html, type Html } from "./html.ts";
import { renderDiff, renderDiffSummary } from "./diff.ts";
import { prLink, prStatus, since } from "./incidents.ts";
import { outsideLink, stateBadge, when } from "./format.ts";
import { decideFromConsole, DecisionForm, renderApprovalSection, type Notice } from "./approvals.ts";
import type { ConsolePrincipal } from "./auth.ts";
import { liveRegion, topics } from "./live.ts";
import { sendFragment, sendPage, wantsHtml } from "./respond.ts";
import type { ConsoleContext } from "./routes.ts";

// The incident page (`/incidents/<id>`, the link pull requests carry): what fired, what Pitcrew
// planned and why, the change it proposes with its diff, the approvals, and the timeline. Loaded
// in one go from the database (and the diff from the pull-request host); rendered by pure
// functions. Labels, annotations, titles, reasons, diffs and event data are attacker-controlled:
// they only ever reach the page through `html`, which escapes them.

const ALERTS_SHOWN = 200;
export const TIMELINE_SHOWN = 500;
const VALUE_SHOWN = 4000;
const DIFF_TIMEOUT_MS = 5000;

export type Plan = {
  skill?: string;
  params?: unknown;
  rationale?: string;
  confidence?: number;
  planner?: string;
  fallback?: string;
  risk?: string;
  approval?: string;
};

export type Change = {
  pr: { number: number; url: string | null; branch: string | null; status: string };
  /** Where the diff shown comes from: the host now, or what the approval stored when it was requested. */
  diff: {
    source: "host" | "stored";
    headSha: string | null;
    summary: DiffSummary | null;
    excerpt: string | null;
  } | null;
  /** Why the host's diff could not be read (the stored one is shown instead). */
  hostError: string | null;
  /** The pending approval was requested for another head: deciding it now is refused. */
  movedFrom: string | null;
};

export type Timeline = { events: EventRow[]; total: number };

export type IncidentPage = {
  incident: IncidentRow;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  plan: Plan | null;
  alerts: AlertRow[];
  alertCount: number;
  approvals: ApprovalRow[];
  change: Change | null;
  timeline: Timeline;
};

function parseObject<T>(text: string | null): T | null {
  if (!text) return null;
  try {
    const v = JSON.parse(text) as unknown;
    return v && typeof v === "object" ? (v as T) : null;
  } catch {
    return null;
  }
}

export async function loadTimeline(db: Executor, incidentId: string): Promise<Timeline> {
  const newest = await db
    .selectFrom("events")
    .selectAll()
    .where("incident_id", "=", incidentId)
    .orderBy("seq", "desc")
    .limit(TIMELINE_SHOWN)
    .execute();
  let total = newest.length;
  if (total === TIMELINE_SHOWN) {
    const r = await db
      .selectFrom("events")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("incident_id", "=", incidentId)
      .executeTakeFirstOrThrow();
    total = Number(r.n);
  }
  return { events: newest.reverse(), total };
}

/** The incident's pull request (its newest merge approval's, else the last one a fix opened) and its diff. */
async function loadChange(
  db: Executor,
  gitHost: GitHost | undefined,
  incidentId: string,
  approvals: ApprovalRow[],
): Promise<Change | null> {
  const a = approvals.find((x) => x.pr_number !== null);
  let pr: Change["pr"] | null = null;
  if (a) {
    const status = prStatus({ state: a.state, merged_at: a.merged_at === null ? null : Number(a.merged_at) });
    pr = { number: Number(a.pr_number), url: mergeActionOf(a)?.merge.url ?? null, branch: a.pr_branch, status };
  } else {
    const e = await db
      .selectFrom("events")
      .select("data")
      .where("incident_id", "=", incidentId)
      .where("type", "=", "task.pr_opened")
      .orderBy("seq", "desc")
      .limit(1)
      .executeTakeFirst();
    const d = parseObject<{ number?: unknown; url?: unknown; branch?: unknown }>(e?.data ?? null);
    const str = (v: unknown) => (typeof v === "string" ? v : null);
    if (d && typeof d.number === "number")
      pr = { number: d.number, url: str(d.url), branch: str(d.branch), status: "opened" };
  }
  if (!pr) return null;
  const stored =
    a && (a.diff_summary || a.diff_excerpt)
      ? { source: "stored" as const, headSha: a.head_sha, summary: diffSummaryOf(a), excerpt: a.diff_excerpt ?? null }
      : null;
  let diff: Change["diff"] = stored;
  let hostError: string | null = null;
  if (gitHost) {
    try {
      // Open: the change at its head now; merged: what the merge brought in (both hosts diff against the base it left).
      const d = await withTimeout(gitHost.pullRequestDiff(pr.number), DIFF_TIMEOUT_MS, "gitops.diff");
      diff = { source: "host", headSha: d.headSha, summary: d.summary, excerpt: d.excerpt };
    } catch (err) {
      hostError = errorMessage(err);
    }
  }
  const pending = a && a.state === "pending" ? a : undefined;
  const moved = !!pending?.head_sha && diff?.source === "host" && !!diff.headSha && diff.headSha !== pending.head_sha;
  const movedFrom = moved && pr.status !== "merged" ? pending!.head_sha : null;
  return { pr, diff, hostError, movedFrom };
}

/** Everything the page shows; `withChange: false` skips the pull request and its diff (a call to the host). */
export async function loadIncidentPage(
  deps: { db: Executor; gitHost?: GitHost },
  id: string,
  opts: { withChange?: boolean } = {},
): Promise<IncidentPage | undefined> {
  const { db } = deps;
  const incident = await db.selectFrom("incidents").selectAll().where("id", "=", id).executeTakeFirst();
  if (!incident) return undefined;
  const [alerts, count, approvals, timeline] = await Promise.all([
    db.selectFrom("alerts").selectAll().where("incident_id", "=", id).orderBy("id").limit(ALERTS_SHOWN).execute(),
    db
      .selectFrom("alerts")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("incident_id", "=", id)
      .executeTakeFirstOrThrow(),
    db
      .selectFrom("approvals")
      .selectAll()
      .where("incident_id", "=", id)
      .orderBy("requested_at", "desc")
      .orderBy("id", "desc")
      .execute(),
    loadTimeline(db, id),
  ]);
  return {
    incident,
    labels: parseObject<Record<string, string>>(incident.labels) ?? {},
    annotations: parseObject<Record<string, string>>(incident.annotations) ?? {},
    plan: parseObject<Plan>(incident.plan),
    alerts,
    alertCount: Number(count.n),
    approvals,
    change: opts.withChange === false ? null : await loadChange(db, deps.gitHost, id, approvals),
    timeline,
  };
}

const cut = (v: string, max = VALUE_SHOWN): Html =>
  v.length > max
    ? html`${v.slice(0, max)}<span class="muted"> … (${v.length - max} more characters)</span>`
    : html`${v}`;

/** Labels or annotations as a description list; values cut to a readable length. */
export function renderPairs(pairs: Record<string, string>, label: string): Html {
  const entries = Object.entries(pairs);
  if (entries.length === 0) return html`<p class="muted empty">No ${label}.</p>`;
  return html`<dl class="facts pairs" aria-label="${label}">${entries.map(([k, v]) => html`<dt>${k}</dt><dd>${cut(String(v))}</dd>`)}</dl>`;
}

export function renderAlerts(p: Pick<IncidentPage, "alerts" | "alertCount">, now: number): Html {
  if (p.alerts.length === 0)
    return html`<p class="muted empty">No alerts: this incident was opened by hand or by a schedule.</p>`;
  const row = (a: AlertRow) => {
    const labels = parseObject<Record<string, string>>(a.labels) ?? {};
    const annotations = parseObject<Record<string, string>>(a.annotations) ?? {};
    const link = a.generator_url ? html` ${outsideLink(a.generator_url, "source")}` : "";
    const ended = a.ends_at !== null ? html`, ended ${since(Number(a.ends_at), now)}` : "";
    const repeats = Number(a.repeat_count) > 0 ? html`, repeated ${Number(a.repeat_count)}×` : "";
    return html`<li class="alert alert-${a.status === "resolved" ? "resolved" : "firing"}">
<p><strong>${a.alertname}</strong> ${stateBadge(a.status)} since ${since(Number(a.starts_at), now)}${ended}${repeats}${link}</p>
<details><summary>Labels and annotations of this alert</summary>
${renderPairs(labels, "alert labels")}${renderPairs(annotations, "alert annotations")}<p class="hint">fingerprint <code>${a.fingerprint}</code></p>
</details>
</li>`;
  };
  const more =
    p.alertCount > p.alerts.length ? html`<p>Showing the first ${p.alerts.length} of ${p.alertCount} alerts.</p>` : "";
  return html`<ul class="alerts">${p.alerts.map(row)}</ul>${more}`;
}

function renderPlan(p: IncidentPage): Html {
  const i = p.incident;
  const llm =
    Number(i.llm_calls) > 0
      ? html`<p class="llm">Planner cost: ${Number(i.llm_calls)} model call${Number(i.llm_calls) === 1 ? "" : "s"}, ${Number(i.llm_input_tokens)} input and ${Number(
          i.llm_output_tokens,
        )} output tokens.</p>`
      : "";
  const plan = p.plan;
  if (!plan) return html`<p class="muted empty">No plan yet.</p>${llm}`;
  const conf = typeof plan.confidence === "number" ? `${Math.round(plan.confidence * 100)}%` : "—";
  const hasParams = !!plan.params && typeof plan.params === "object" && Object.keys(plan.params).length > 0;
  const params = hasParams
    ? html`<dt>Parameters</dt><dd><pre>${cut(JSON.stringify(plan.params, null, 2))}</pre></dd>`
    : "";
  return html`<dl class="facts plan">
<dt>Skill</dt><dd>${plan.skill ?? "—"}</dd>
<dt>Planner</dt><dd>${plan.planner ?? "—"}${plan.fallback ? html` (fell back: ${plan.fallback})` : ""}</dd>
<dt>Confidence</dt><dd>${conf}</dd>
<dt>Risk</dt><dd>${plan.risk ?? "—"}</dd>
<dt>Approval</dt><dd>${plan.approval ?? "—"}</dd>
${params}
<dt>Rationale</dt><dd class="rationale">${plan.rationale ? cut(plan.rationale) : "—"}</dd>
</dl>${llm}`;
}

export function renderChange(c: Change | null): Html {
  if (!c) return html`<p class="muted empty">No pull request.</p>`;
  const { pr, diff } = c;
  const unread = c.hostError ? html` (the pull-request host could not be read: ${c.hostError})` : "";
  const from =
    diff?.source === "stored"
      ? html`<p class="hint">The diff as it was when its approval was requested${unread}.</p>`
      : c.hostError
        ? html`<p class="hint" role="status">The pull-request host could not be read: ${c.hostError}</p>`
        : "";
  const moved = c.movedFrom
    ? html`<p class="error" role="alert">The pull request moved since its approval was requested (from ${c.movedFrom.slice(0, 12)} to ${
        diff?.headSha?.slice(0, 12) ?? "?"
      }): a decision on that approval will be refused.</p>`
    : "";
  const branch = pr.branch ? html` from branch <code>${pr.branch}</code>` : "";
  const head = diff?.headSha ? html` at <code>${diff.headSha.slice(0, 12)}</code>` : "";
  return html`<p>Pull request ${prLink(pr)} <span class="pr-status">${pr.status}</span>${branch}${head}</p>
${moved}${from}
${diff?.summary ? renderDiffSummary(diff.summary) : ""}
${diff?.excerpt ? renderDiff(diff.excerpt) : diff ? "" : html`<p class="muted empty">The diff is not known.</p>`}`;
}

function eventData(e: EventRow): Html {
  const d = parseObject<Record<string, unknown>>(e.data);
  if (!d || Object.keys(d).length === 0) return html``;
  return html`<details><summary>Details</summary><pre>${cut(JSON.stringify(d, null, 2), 2000)}</pre></details>`;
}

/** The timeline, oldest first: when, what, who, through what channel, and why. */
export function renderTimeline(t: Timeline, now: number): Html {
  if (t.events.length === 0) return html`<p class="muted empty">No events.</p>`;
  const older = t.total > t.events.length ? html`<p>Showing the last ${t.events.length} of ${t.total} events.</p>` : "";
  // One line per event, no whitespace between the parts: the log style keeps whitespace as it is.
  const item = (e: EventRow) =>
    html`<li class="event">${[
      html`<span class="log-time">${when(Number(e.occurred_at))}</span> <strong class="log-type">${e.type}</strong>`,
      html` by <span class="actor">${e.actor}</span> via <span class="channel">${e.channel}</span>`,
      e.reason ? html`: <span class="reason">${cut(e.reason, 2000)}</span>` : "",
      html` <small class="muted">(${since(Number(e.occurred_at), now)})</small>${eventData(e)}`,
    ]}</li>`;
  return html`${older}<ol class="timeline log">${t.events.map(item)}</ol>`;
}

/** The incident's heading facts: state, severity, where, when. */
export function renderFacts(i: IncidentRow, now: number): Html {
  return html`<dl class="facts">
<dt>State</dt><dd>${stateBadge(i.state)}</dd>
<dt>Severity</dt><dd>${i.severity ?? "—"}</dd>
<dt>Namespace / service</dt><dd>${i.namespace ?? "—"}${i.service ? html` / ${i.service}` : ""}</dd>
<dt>Opened</dt><dd>${since(Number(i.opened_at), now)}</dd>
${i.resolved_at !== null ? html`<dt>Resolved</dt><dd>${since(Number(i.resolved_at), now)}</dd>` : ""}
<dt>Source</dt><dd>${i.source}</dd>
${Number(i.flap_count) > 0 ? html`<dt>Flaps</dt><dd>${Number(i.flap_count)}</dd>` : ""}
<dt>Id</dt><dd><code>${i.id}</code></dd>
</dl>`;
}

export type IncidentPart = "facts" | "approvals" | "change" | "alerts" | "timeline";
export const INCIDENT_PARTS: readonly IncidentPart[] = ["facts", "approvals", "change", "alerts", "timeline"];

/** The page's sections; `parts` are the live regions (facts, approvals, change, alerts, timeline) the caller wraps. */
export function renderIncidentSections(p: IncidentPage, parts: Record<IncidentPart, Html>): Html {
  return html`<h1>${p.incident.title}</h1>
${parts.facts}
<section aria-labelledby="h-plan" id="plan"><h2 id="h-plan">Plan</h2>${renderPlan(p)}</section>
<section aria-labelledby="h-change" id="change"><h2 id="h-change">Change</h2>${parts.change}</section>
<section aria-labelledby="h-approvals" id="approvals"><h2 id="h-approvals">Approval</h2>${parts.approvals}</section>
<section aria-labelledby="h-alerts" id="alerts"><h2 id="h-alerts">Alerts</h2>${parts.alerts}</section>
<section aria-labelledby="h-labels"><h2 id="h-labels">Labels</h2>${renderPairs(p.labels, "labels")}</section>
<section aria-labelledby="h-annotations"><h2 id="h-annotations">Annotations</h2>${renderPairs(p.annotations, "annotations")}</section>
<section aria-labelledby="h-timeline" id="timeline"><h2 id="h-timeline">Timeline</h2>${parts.timeline}</section>`;
}

// Routes: the page, its live regions as fragments, and the Approve / Reject forms' POSTs (here
// because a refused decision answers with this page and the reason on it).

type Shown = { page: IncidentPage; principal: ConsolePrincipal; now: number; notice?: Notice };

function renderPart(part: IncidentPart, s: Shown): Html {
  const { page, principal, now } = s;
  switch (part) {
    case "facts":
      return renderFacts(page.incident, now);
    case "approvals":
      return renderApprovalSection(
        page.approvals,
        now,
        { canDecide: hasScope(principal, "approve"), csrf: principal.csrf },
        s.notice,
      );
    case "change":
      return renderChange(page.change);
    case "alerts":
      return renderAlerts(page, now);
    case "timeline":
      return renderTimeline(page.timeline, now);
  }
}

const partSrc = (id: string, part: IncidentPart) => `/incidents/${encodeURIComponent(id)}/${part}`;

function renderPage(s: Shown): Html {
  const id = s.page.incident.id;
  const parts = Object.fromEntries(
    INCIDENT_PARTS.map((part) => [
      part,
      liveRegion({ src: partSrc(id, part), on: [topics.incident(id)], id: `live-${part}` }, renderPart(part, s)),
    ]),
  ) as Record<IncidentPart, Html>;
  return renderIncidentSections(s.page, parts);
}

export function incidentPages(app: FastifyInstance, ctx: ConsoleContext): void {
  const { deps, auth } = ctx;
  const load = async (id: string, withChange = true) => {
    const page = await loadIncidentPage({ db: deps.store.db, gitHost: deps.gitHost }, id, { withChange });
    if (!page) throw notFound("incident.not_found", `incident ${id} does not exist`);
    return page;
  };
  const send = (reply: FastifyReply, s: Shown) =>
    sendPage(reply, {
      title: s.page.incident.title,
      current: "incidents",
      principal: s.principal,
      live: true,
      body: renderPage(s),
    });

  app.get<{ Params: { id: string } }>("/incidents/:id", async (req, reply) => {
    const principal = await auth.require(req, reply, "read");
    if (!principal) return reply;
    return send(reply, { page: await load(req.params.id), principal, now: deps.now() });
  });

  app.get<{ Params: { id: string; part: string } }>("/incidents/:id/:part", async (req, reply) => {
    const principal = await auth.require(req, reply, "read");
    if (!principal) return reply;
    const part = INCIDENT_PARTS.find((x) => x === req.params.part);
    if (!part) throw notFound("console.not_found", `no such part of an incident page: ${req.params.part}`);
    const page = await load(req.params.id, part === "change");
    return sendFragment(reply, renderPart(part, { page, principal, now: deps.now() }));
  });

  app.post<{ Params: { id: string; decision: string } }>("/approvals/:id/:decision", async (req, reply) => {
    const decision =
      req.params.decision === "approve" || req.params.decision === "reject" ? req.params.decision : undefined;
    if (!decision) throw notFound("console.not_found", `no such decision: ${req.params.decision}`);
    // The scope and the CSRF token first: a forged or unauthorised POST changes nothing.
    const principal = await auth.require(req, reply, "approve");
    if (!principal) return reply;
    auth.checkCsrf(req, principal);
    const form = DecisionForm.safeParse(req.body ?? {});
    if (!form.success) throw invalid("console.bad_form", "the reason must be at most 1,000 characters");
    const out = await decideFromConsole(
      { db: deps.store.db, approvals: approvalsFor(deps) },
      principal.subject,
      req.params.id,
      decision,
      form.data.reason,
    );
    const json = !wantsHtml(req);
    if (out.ok) {
      if (json) return reply.send({ approval_id: req.params.id, incident_id: out.incidentId, message: out.message });
      return reply.redirect(`/incidents/${encodeURIComponent(out.incidentId)}#approvals`, 303);
    }
    if (json || !out.incidentId) {
      if (!out.incidentId) throw notFound("approval.not_found", out.message);
      return reply
        .status(out.status)
        .send({ error: { code: `approval.${decision}_refused`, message: out.message, requestId: String(req.id) } });
    }
    const page = await load(out.incidentId);
    const notice: Notice = {
      kind: "error",
      text: `Not ${decision === "approve" ? "approved" : "rejected"}: ${out.message}`,
    };
    return send(reply.status(out.status), { page, principal, now: deps.now(), notice });
  });
}
