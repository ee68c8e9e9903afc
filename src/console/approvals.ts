import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { Executor } from "../store/sql.ts";
import { listApprovals, mergeActionOf, parseAction, type ApprovalRow, type Decider } from "../approvals/repo.ts";
import type { ApprovalService } from "../approvals/service.ts";
import { approvalView, type ApprovalView } from "../mcp/views.ts";
import { invalid, isAppError } from "../shared/errors.ts";
import { html, type Html } from "./html.ts";
import { consoleActor } from "./auth.ts";
import { liveRegion, topics } from "./live.ts";
import { sendFragment, sendPage } from "./respond.ts";
import type { ConsoleContext } from "./routes.ts";
import { renderDiffSummary } from "./diff.ts";
import { prLink, since } from "./incidents.ts";
import { stateBadge, when } from "./format.ts";

// Approvals in the console: the pending list (`/approvals`, the list_approvals query and view),
// the approval section of the incident page with Approve / Reject for people holding the
// `approve` scope, and the decision itself — through the one approvals service MCP and Telegram
// use, recorded as the signed-in person via the `console` channel. A refused decision (already
// decided, expired, the pull request moved) comes back as a message on the page, never a 500.

export type Viewer = {
  /** Holds the `approve` scope: sees (and may use) the decision forms. */
  canDecide: boolean;
  /** The session's CSRF token for the forms; null for a bearer request (no cookie, no CSRF). */
  csrf: string | null;
};

/** A message shown above the approvals after a refused decision. */
export type Notice = { kind: "error" | "info"; text: string };

/** The signed-in person as the approvals service records them: `console:<subject>` via `console`. */
export const consoleDecider = (subject: string): Decider => ({ subject, ...consoleActor({ subject }) });

/** The decision form's body; the reason is required to reject (it is what the timeline says why). */
export const DecisionForm = z.object({
  reason: z.preprocess((v) => (typeof v === "string" ? v.trim() : v), z.string().max(1000).optional()),
});

export type DecisionOutcome =
  | { ok: true; incidentId: string; message: string }
  | { ok: false; status: 400 | 404 | 409 | 503; incidentId: string | null; message: string };

/**
 * Approves or rejects through the approvals service. Expected refusals (conflict, invalid, not
 * found, a host that is down) come back as an outcome for the page; anything else is thrown.
 */
export async function decideFromConsole(
  deps: { db: Executor; approvals: ApprovalService },
  subject: string,
  approvalId: string,
  decision: "approve" | "reject",
  reasonIn: string | undefined,
): Promise<DecisionOutcome> {
  const row = await deps.db
    .selectFrom("approvals")
    .select("incident_id")
    .where("id", "=", approvalId)
    .executeTakeFirst();
  if (!row) return { ok: false, status: 404, incidentId: null, message: `Approval ${approvalId} does not exist.` };
  const reason = reasonIn ? reasonIn : null;
  if (decision === "reject" && !reason) {
    return {
      ok: false,
      status: 400,
      incidentId: row.incident_id,
      message: "Say why you reject: the reason is recorded on the timeline and on the closed pull request.",
    };
  }
  const by = consoleDecider(subject);
  try {
    if (decision === "approve") {
      const r = await deps.approvals.approve({ approvalId }, by, reason);
      const done = r.merged
        ? `approved; pull request #${r.merged.number} merged as ${r.merged.sha.slice(0, 12)}`
        : r.taskId
          ? `approved; fix task ${r.taskId} queued`
          : `approved${r.mergePending ? `; ${r.mergePending}` : ""}`;
      return { ok: true, incidentId: row.incident_id, message: done };
    }
    await deps.approvals.reject({ approvalId }, by, reason);
    return { ok: true, incidentId: row.incident_id, message: "rejected" };
  } catch (err) {
    if (!isAppError(err)) throw err;
    const status =
      err.kind === "conflict"
        ? 409
        : err.kind === "invalid"
          ? 400
          : err.kind === "not_found"
            ? 404
            : err.kind === "unavailable"
              ? 503
              : undefined;
    if (!status) throw err;
    return { ok: false, status, incidentId: row.incident_id, message: err.message };
  }
}

const isDecidable = (a: Pick<ApprovalRow, "state" | "expires_at">, now: number) =>
  a.state === "pending" && Number(a.expires_at) > now;

function whatItApproves(a: ApprovalRow): string {
  const merge = mergeActionOf(a);
  if (merge) return `merge pull request #${merge.merge.number}${merge.skill ? ` (${merge.skill})` : ""}`;
  const plan = parseAction(a) as { skill?: string };
  return `run ${plan.skill ?? "the planned fix"}`;
}

const csrfField = (v: Viewer) => (v.csrf ? html`<input type="hidden" name="_csrf" value="${v.csrf}">` : "");

function decisionForms(a: ApprovalRow, v: Viewer): Html {
  const action = encodeURIComponent(a.id);
  const merge = mergeActionOf(a);
  return html`<div class="decide">
<form method="post" action="${`/approvals/${action}/approve`}" class="stack decide-approve">${csrfField(v)}
<label for="${`approve-reason-${a.id}`}">Note (optional)</label>
<input id="${`approve-reason-${a.id}`}" name="reason" maxlength="1000" autocomplete="off">
<button type="submit">${merge ? `Approve and merge #${merge.merge.number}` : "Approve and run"}</button>
</form>
<form method="post" action="${`/approvals/${action}/reject`}" class="stack decide-reject">${csrfField(v)}
<label for="${`reject-reason-${a.id}`}">Reason for rejecting</label>
<input id="${`reject-reason-${a.id}`}" name="reason" required maxlength="1000" autocomplete="off">
<button type="submit" class="danger">Reject</button>
</form>
</div>`;
}

function renderApproval(a: ApprovalRow, now: number, v: Viewer): Html {
  const decided =
    a.decided_at !== null
      ? html`<p class="decision">${a.state} by <span class="decided-by">${a.decided_by ?? "unknown"}</span>${
          a.channel ? html` via <span class="channel">${a.channel}</span>` : ""
        } ${since(Number(a.decided_at), now)}${a.reason ? html`: <q class="reason">${a.reason}</q>` : ""}</p>`
      : "";
  const mergeSha = a.merge_sha ? html` as <code>${a.merge_sha.slice(0, 12)}</code>` : "";
  const merged = a.merged_at !== null ? html`<p>Merged ${since(Number(a.merged_at), now)}${mergeSha}.</p>` : "";
  const open = isDecidable(a, now);
  const expiry = open
    ? html`<p>Expires in ${expiresIn(Number(a.expires_at), now)} (${when(Number(a.expires_at))}).</p>`
    : a.state === "pending"
      ? html`<p>Expired, not decided.</p>`
      : "";
  const notAllowed = html`<p class="hint">You can see this approval but not decide it: deciding needs the <code>approve</code> scope.</p>`;
  const forms = open ? (v.canDecide ? decisionForms(a, v) : notAllowed) : "";
  return html`<article class="card approval" id="${`approval-${a.id}`}" aria-label="${`Approval ${a.id}`}">
<h3>${stateBadge(a.state)} ${whatItApproves(a)} <small class="muted">${a.id}</small></h3>
<p>Risk ${a.risk}; requested ${since(Number(a.requested_at), now)}.</p>
${expiry}${decided}${merged}${forms}
</article>`;
}

/** The incident page's approvals, newest first, with a refused decision's message on top. */
export function renderApprovalSection(approvals: ApprovalRow[], now: number, v: Viewer, notice?: Notice): Html {
  const msg = !notice
    ? ""
    : notice.kind === "error"
      ? html`<p class="error" role="alert">${notice.text}</p>`
      : html`<p class="notice" role="status">${notice.text}</p>`;
  if (approvals.length === 0) return html`${msg}<p class="muted empty">No approval was requested.</p>`;
  return html`${msg}${approvals.map((a) => renderApproval(a, now, v))}`;
}

export type PendingApproval = ApprovalView & { incident_title: string | null };

/** Pending, unexpired approvals, newest first (list_approvals' query and view), with their incident's title. */
export async function listPendingApprovals(
  db: Executor,
  now: number,
  cursor: string | undefined,
  limit = 50,
): Promise<{ items: PendingApproval[]; nextCursor: string | null }> {
  const rows = await listApprovals(db, { state: "pending", now, afterId: cursor, limit });
  const ids = [...new Set(rows.map((r) => r.incident_id))];
  const titles = ids.length
    ? await db.selectFrom("incidents").select(["id", "title"]).where("id", "in", ids).execute()
    : [];
  const title = new Map(titles.map((t) => [t.id, t.title]));
  return {
    items: rows.map((r) => ({ ...approvalView(r), incident_title: title.get(r.incident_id) ?? null })),
    nextCursor: rows.length === limit ? rows[rows.length - 1]!.id : null,
  };
}

/** The approvals list: what waits for a decision, until when, and what it changes. */
export function renderPendingApprovals(
  page: { items: PendingApproval[]; nextCursor: string | null },
  now: number,
  cursor: string | undefined,
): Html {
  const older = page.nextCursor
    ? html` <a href="${`/approvals?cursor=${encodeURIComponent(page.nextCursor)}`}" rel="next">Older approvals</a>`
    : "";
  const pager = html`<nav class="pager" aria-label="Pages">${cursor ? html`<a href="/approvals">Newest</a>` : ""}${older}</nav>`;
  if (page.items.length === 0) return html`<p class="muted empty">No approval is waiting for a decision.</p>${pager}`;
  const item = (a: PendingApproval) => {
    const skill = (a.action as { skill?: string } | null)?.skill;
    const what = a.pr
      ? html`Merge pull request ${prLink({ number: a.pr.number, url: a.pr.url })}`
      : html`Run ${skill ?? "the planned fix"}`;
    return html`<li class="card approval">
<h2><a href="${`/incidents/${encodeURIComponent(a.incident_id)}#approvals`}">${a.incident_title ?? a.incident_id}</a></h2>
<p>${what}; risk ${a.risk}; requested ${since(Date.parse(a.requested_at), now)};
<strong>expires in ${expiresIn(Date.parse(a.expires_at), now)}</strong> (${when(Date.parse(a.expires_at))}).</p>
${a.diff_summary ? renderDiffSummary(a.diff_summary) : ""}
<p><a href="${`/incidents/${encodeURIComponent(a.incident_id)}#approvals`}">Review the change and decide</a> <small class="muted">${a.id}</small></p>
</li>`;
  };
  return html`<ul class="plain approvals">${page.items.map(item)}</ul>${pager}`;
}

function expiresIn(at: number, now: number): string {
  const m = Math.max(0, Math.round((at - now) / 60_000));
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  return h < 48 ? `${h} h ${m % 60} min` : `${Math.floor(h / 24)} days`;
}

/** GET /approvals: the pending approvals, refreshed live when any approval changes. */
export function approvalsPages(app: FastifyInstance, ctx: ConsoleContext): void {
  app.get("/approvals", async (req, reply) => {
    const p = await ctx.auth.require(req, reply, "read");
    if (!p) return reply;
    const parsed = ApprovalListQuery.safeParse(req.query);
    if (!parsed.success) throw invalid("console.bad_query", "the cursor is not valid");
    const cursor = parsed.data.cursor;
    const now = ctx.deps.now();
    const body = renderPendingApprovals(await listPendingApprovals(ctx.deps.store.db, now, cursor), now, cursor);
    if (req.headers["x-pitcrew-fragment"] !== undefined) return sendFragment(reply, body);
    const src = cursor ? `/approvals?cursor=${encodeURIComponent(cursor)}` : "/approvals";
    return sendPage(reply, {
      title: "Approvals",
      current: "approvals",
      principal: p,
      live: true,
      body: html`<h1>Approvals waiting for a decision</h1>${liveRegion({ src, on: [topics.approvals], id: "approvals-live" }, body)}`,
    });
  });
}

const ApprovalListQuery = z.object({
  cursor: z.preprocess((v) => (v === "" ? undefined : v), z.string().max(100).optional()),
});
