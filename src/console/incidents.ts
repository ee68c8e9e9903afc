import type { FastifyInstance } from "fastify";
import { sql } from "kysely";
import { z } from "zod";
import type { Executor } from "../store/sql.ts";
import { INCIDENT_STATES, OPEN_STATES } from "../incidents/lifecycle.ts";
import { mergeActionOf } from "../approvals/repo.ts";
import { invalid } from "../shared/errors.ts";
import { html, type Html } from "./html.ts";
import { ago, outsideLink, stateBadge } from "./format.ts";
import { liveRegion, topics } from "./live.ts";
import { sendFragment, sendPage } from "./respond.ts";
import type { ConsoleContext } from "./routes.ts";

// The incidents list: newest first, filtered by state (or every open state), severity, namespace
// and text, paged by cursor (the last id of the page: ids are time-ordered, as list_incidents pages
// them). Each row carries what an on-call engineer scans for — state, severity, where, age, the
// skill chosen and the pull request — read in three queries per page, not one per row.

export const PAGE_SIZE = 50;

const blankToUndefined = (v: unknown) =>
  typeof v === "string" && v.trim() === "" ? undefined : typeof v === "string" ? v.trim() : v;

/** The list's query string. Empty fields mean "any"; anything else that does not fit is refused (400). */
export const IncidentListQuery = z.object({
  state: z.preprocess(blankToUndefined, z.enum([...INCIDENT_STATES, "open"]).optional()),
  severity: z.preprocess(blankToUndefined, z.string().max(64).optional()),
  namespace: z.preprocess(blankToUndefined, z.string().max(255).optional()),
  q: z.preprocess(blankToUndefined, z.string().max(200).optional()),
  cursor: z.preprocess(blankToUndefined, z.string().max(100).optional()),
});
export type IncidentListQuery = z.infer<typeof IncidentListQuery>;

export type IncidentListItem = {
  id: string;
  title: string;
  state: string;
  severity: string | null;
  namespace: string | null;
  service: string | null;
  openedAt: number;
  skill: string | null;
  pr: { number: number; url: string | null; status: string } | null;
};

export type IncidentListPage = { items: IncidentListItem[]; nextCursor: string | null };

/** `%text%` for LIKE, with the wildcards in the text itself escaped (escape character `!`). */
export const likePattern = (text: string) => `%${text.toLowerCase().replace(/[!%_]/g, (c) => `!${c}`)}%`;

function skillOf(plan: string | null): string | null {
  if (!plan) return null;
  try {
    const p = JSON.parse(plan) as { skill?: unknown };
    return typeof p.skill === "string" ? p.skill : null;
  } catch {
    return null;
  }
}

/** What became of a merge approval's pull request, in a word or two. */
export function prStatus(a: { state: string; merged_at: number | null }): string {
  if (a.merged_at !== null) return "merged";
  switch (a.state) {
    case "pending":
      return "awaiting approval";
    case "approved":
      return "merging";
    case "superseded":
      return "moved";
    default:
      return "closed";
  }
}

export async function listIncidentPage(
  db: Executor,
  f: IncidentListQuery,
  limit = PAGE_SIZE,
): Promise<IncidentListPage> {
  let q = db
    .selectFrom("incidents")
    .select(["id", "title", "state", "severity", "namespace", "service", "opened_at", "plan"]);
  if (f.state === "open") q = q.where("state", "in", [...OPEN_STATES]);
  else if (f.state) q = q.where("state", "=", f.state);
  if (f.severity) q = q.where("severity", "=", f.severity);
  if (f.namespace) q = q.where("namespace", "=", f.namespace);
  if (f.q) {
    const p = likePattern(f.q);
    // lower() on both sides: SQLite's LIKE ignores ASCII case, MySQL's follows the column's collation.
    const like = (col: "title" | "id" | "alertname" | "service" | "namespace") =>
      sql<boolean>`lower(${sql.ref(col)}) like ${p} escape '!'`;
    q = q.where((eb) => eb.or([like("title"), like("id"), like("alertname"), like("service"), like("namespace")]));
  }
  if (f.cursor) q = q.where("id", "<", f.cursor);
  const rows = await q
    .orderBy("id", "desc")
    .limit(limit + 1)
    .execute();
  const page = rows.slice(0, limit);
  const ids = page.map((r) => r.id);
  const prs = new Map<string, IncidentListItem["pr"]>();
  if (ids.length > 0) {
    // The newest merge approval of each incident is its pull request as Pitcrew knows it.
    const approvals = await db
      .selectFrom("approvals")
      .select(["incident_id", "state", "merged_at", "pr_number", "action"])
      .where("incident_id", "in", ids)
      .where("pr_number", "is not", null)
      .orderBy("id", "desc")
      .execute();
    for (const a of approvals) {
      if (prs.has(a.incident_id)) continue;
      const status = prStatus({ state: a.state, merged_at: a.merged_at === null ? null : Number(a.merged_at) });
      prs.set(a.incident_id, { number: Number(a.pr_number), url: mergeActionOf(a)?.merge.url ?? null, status });
    }
    // A pull request a fix opened without an approval (none needed, or not requested yet).
    const missing = ids.filter((id) => !prs.has(id));
    if (missing.length > 0) {
      const opened = await db
        .selectFrom("events")
        .select(["incident_id", "data"])
        .where("incident_id", "in", missing)
        .where("type", "=", "task.pr_opened")
        .orderBy("seq", "desc")
        .execute();
      for (const e of opened) {
        if (!e.incident_id || prs.has(e.incident_id)) continue;
        const d = JSON.parse(e.data) as { number?: unknown; url?: unknown };
        if (typeof d.number === "number")
          prs.set(e.incident_id, { number: d.number, url: typeof d.url === "string" ? d.url : null, status: "opened" });
      }
    }
  }
  return {
    items: page.map((r) => ({
      id: r.id,
      title: r.title,
      state: r.state,
      severity: r.severity,
      namespace: r.namespace,
      service: r.service,
      openedAt: Number(r.opened_at),
      skill: skillOf(r.plan),
      pr: prs.get(r.id) ?? null,
    })),
    nextCursor: rows.length > limit ? page[page.length - 1]!.id : null,
  };
}

/** "3h ago", with the exact time for machines and on hover. */
export function since(ms: number, now: number): Html {
  const iso = new Date(ms).toISOString();
  return html`<time datetime="${iso}" title="${iso}">${ago(ms, now)}</time>`;
}

/** A pull request's number, linked to its page when it has a web address (GitHub). */
export const prLink = (pr: { number: number; url: string | null }): Html => outsideLink(pr.url, `#${pr.number}`);

/** The query string of a list URL: the filters kept, empty ones left out. */
export function listHref(f: IncidentListQuery, over: Partial<IncidentListQuery> = {}): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries({ ...f, ...over })) if (v) params.set(k, String(v));
  const qs = params.toString();
  return qs ? `/incidents?${qs}` : "/incidents";
}

/** The filter form: a plain GET form, so it works without JavaScript and the URL can be shared. */
export function renderFilters(f: IncidentListQuery): Html {
  const states = ["open", ...INCIDENT_STATES];
  return html`<form class="filters" method="get" action="/incidents" role="search" aria-label="Filter incidents">
<label>State <select name="state"><option value="">any</option>
${states.map((s) => html`<option value="${s}"${f.state === s ? html` selected` : ""}>${s}</option>`)}
</select></label>
<label>Severity <input name="severity" value="${f.severity ?? ""}" maxlength="64" autocomplete="off"></label>
<label>Namespace <input name="namespace" value="${f.namespace ?? ""}" maxlength="255" autocomplete="off"></label>
<label>Text <input type="search" name="q" value="${f.q ?? ""}" maxlength="200" placeholder="title, id, alert, service"></label>
<button type="submit">Filter</button>${f.state || f.severity || f.namespace || f.q ? html` <a href="/incidents">Clear</a>` : ""}
</form>`;
}

/** The table and its pager: the region that live updates fetch again. */
export function renderIncidentRows(page: IncidentListPage, f: IncidentListQuery, now: number): Html {
  const filtered = !!(f.state || f.severity || f.namespace || f.q);
  const newest = f.cursor ? html`<a href="${listHref(f, { cursor: undefined })}">Newest</a>` : "";
  const older = page.nextCursor
    ? html` <a href="${listHref(f, { cursor: page.nextCursor })}" rel="next">Older incidents</a>`
    : "";
  const pager = html`<nav class="pager" aria-label="Pages">${newest}${older}</nav>`;
  if (page.items.length === 0) {
    const why = f.cursor
      ? "No older incidents."
      : filtered
        ? "No incident matches these filters."
        : "No incidents yet. Alerts from AlertManager and incidents created over MCP appear here.";
    return html`<p class="muted empty">${why}</p>${f.cursor ? pager : ""}`;
  }
  const row = (i: IncidentListItem) => html`<tr>
<th scope="row"><a href="${`/incidents/${encodeURIComponent(i.id)}`}">${i.title}</a><br><small class="muted">${i.id}</small></th>
<td>${stateBadge(i.state)}</td>
<td>${i.severity ?? "—"}</td>
<td>${i.namespace ?? "—"}${i.service ? html` / ${i.service}` : ""}</td>
<td>${since(i.openedAt, now)}</td>
<td>${i.skill ?? "—"}</td>
<td>${i.pr ? html`${prLink(i.pr)} <small class="muted">${i.pr.status}</small>` : "—"}</td>
</tr>`;
  return html`<div class="table-wrap"><table class="incidents">
<caption class="visually-hidden">Incidents, newest first</caption>
<thead><tr>
<th scope="col">Incident</th><th scope="col">State</th><th scope="col">Severity</th><th scope="col">Namespace / service</th>
<th scope="col">Age</th><th scope="col">Skill</th><th scope="col"><abbr title="Pull request">PR</abbr></th>
</tr></thead>
<tbody>${page.items.map(row)}</tbody>
</table></div>
${pager}`;
}

/** GET /incidents (and `/`): the list, its filters, and its rows as a live region. */
export function incidentsPages(app: FastifyInstance, ctx: ConsoleContext): void {
  app.get("/incidents", async (req, reply) => {
    const p = await ctx.auth.require(req, reply, "read");
    if (!p) return reply;
    const parsed = IncidentListQuery.safeParse(req.query);
    if (!parsed.success)
      throw invalid(
        "console.bad_query",
        `not a valid filter: ${parsed.error.issues.map((i) => i.path.join(".")).join(", ")}`,
      );
    const f = parsed.data;
    const now = ctx.deps.now();
    const rows = renderIncidentRows(await listIncidentPage(ctx.deps.store.db, f), f, now);
    if (req.headers["x-pitcrew-fragment"] !== undefined) return sendFragment(reply, rows);
    return sendPage(reply, {
      title: "Incidents",
      current: "incidents",
      principal: p,
      live: true,
      body: html`<h1>Incidents</h1>${renderFilters(f)}${liveRegion({ src: listHref(f), on: [topics.incidents], id: "incidents-live" }, rows)}`,
    });
  });
}
