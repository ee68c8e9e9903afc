import { escapeHtml, fitHtml, formatDateTime, formatElapsed, formatTime, type Part } from "./format.ts";
import type { ApprovalView } from "./views.ts";

// The approval message: everything an approver needs to decide from the chat (the incident, the
// plan and why, confidence and planner, risk, the change with an excerpt of its diff, the pull
// request, the expiry) and the buttons. `callback_data` is only a reference (`v1:<verb>:<id>`):
// a press is checked by the Telegram channel of the approvals domain, never trusted. Once decided
// (or expired, cancelled, superseded) the message says so and the buttons go.

export type InlineButton = { text: string; callback_data: string };
export type ApprovalMessage = { text: string; buttons: InlineButton[][] };

/** Merge failures a Rebuild (re-run the skill on the new base) can get past. */
const REBUILDABLE = new Set(["gitops.merge_conflict", "gitops.head_moved"]);
const MAX_FILES = 10;

export function callbackData(verb: "a" | "r" | "d" | "b", approvalId: string): string {
  return `v1:${verb}:${approvalId}`;
}

function buttons(a: ApprovalView): InlineButton[][] {
  if (a.state !== "pending") return [];
  // Ids are ours and short; one that would not fit Telegram's 64 bytes gets no buttons rather than broken ones.
  if (Buffer.byteLength(callbackData("a", a.id)) > 64) return [];
  const second: InlineButton[] = [{ text: "🔎 Details", callback_data: callbackData("d", a.id) }];
  if (a.mergeFailure && REBUILDABLE.has(a.mergeFailure.code))
    second.push({ text: "🔁 Rebuild", callback_data: callbackData("b", a.id) });
  return [
    [
      { text: "✅ Approve", callback_data: callbackData("a", a.id) },
      { text: "❌ Reject", callback_data: callbackData("r", a.id) },
    ],
    second,
  ];
}

function decision(a: ApprovalView, now: number): Part[] {
  const at = a.decidedAt !== null ? formatDateTime(a.decidedAt) : "";
  const because: Part[] = a.reason ? [": ", { text: a.reason, max: 500, min: 40 }] : [];
  switch (a.state) {
    case "pending":
      if (a.mergeFailure) {
        const hint = REBUILDABLE.has(a.mergeFailure.code)
          ? "approve again, reject, or rebuild it on the current base"
          : "approve again or reject";
        return [
          "⚠️ <b>Merge failed</b> at ",
          formatTime(a.mergeFailure.at),
          ": ",
          { text: a.mergeFailure.reason, max: 500, min: 40 },
          ` — ${hint}.`,
        ];
      }
      return [
        a.expiresAt > now
          ? `⏳ Expires ${formatDateTime(a.expiresAt)} (in ${formatElapsed(a.expiresAt - now)}).`
          : `⏳ Expired ${formatDateTime(a.expiresAt)}; closing.`,
      ];
    case "approved": {
      const who: Part[] = ["✅ <b>Approved</b> by ", { text: a.decidedBy ?? "unknown", max: 120 }, ` at ${at}`];
      const merged =
        a.mergedAt !== null
          ? [` · merged <code>${(a.mergeSha ?? "").slice(0, 12).replace(/[^0-9a-f]/gi, "")}</code>`]
          : [a.pr ? " · merging…" : ""];
      return [...who, ...(a.reason ? [" — ", { text: a.reason, max: 300, min: 20 }] : []), ...merged];
    }
    case "rejected":
      return ["❌ <b>Rejected</b> by ", { text: a.decidedBy ?? "unknown", max: 120 }, ` at ${at}`, ...because];
    case "expired":
      return [`⌛ <b>Expired</b> at ${at} without a decision; the incident went to a person.`];
    case "cancelled":
      if (a.alertResolved) return [`✔️ <b>No action taken: the alert resolved</b>${at ? ` (${at})` : ""}.`];
      return [`🚫 <b>Cancelled</b>${at ? ` at ${at}` : ""}`, ...because];
    case "superseded":
      return [
        `↪️ <b>Superseded</b>${at ? ` at ${at}` : ""}`,
        ...because,
        a.reason ? "" : ": the pull request changed; a new request follows",
      ];
    default:
      return [{ text: a.state, max: 40 }];
  }
}

export function renderApprovalMessage(a: ApprovalView, now: number): ApprovalMessage {
  const inc = a.incident;
  const p: Part[] = [];
  const head = a.pr ? `Merge of pull request #${a.pr.number}` : `Run of ${a.skill ?? inc.plan?.skill ?? "the fix"}`;
  p.push(
    a.state === "pending" ? "🟠 <b>Approval needed</b>: " : "<b>Approval</b>: ",
    { text: head, max: 200 },
    ` · risk <b>`,
    { text: a.risk, max: 20 },
    "</b>\n",
  );
  p.push("<b>", { text: inc.title, max: 300, min: 40 }, "</b>\n");
  const where = [inc.namespace, inc.service].filter(Boolean).join("/");
  p.push(
    { text: inc.severity ?? "no severity", max: 40 },
    where ? " · " : "",
    { text: where, max: 200, min: 20 },
    ` · <code>${inc.id.replace(/[^\w-]/g, "")}</code>\n\n`,
  );

  const plan = inc.plan;
  if (plan?.skill) {
    const by = plan.planner ? ` — ${plan.planner === "claude" ? "Claude" : "rules"}` : "";
    const conf = typeof plan.confidence === "number" ? `, confidence ${Math.round(plan.confidence * 100)}%` : "";
    p.push("Plan: <b>", { text: plan.skill, max: 100 }, `</b>${by}${conf}\n`);
    if (plan.rationale) p.push({ text: plan.rationale, max: 800, min: 80, open: "<i>", close: "</i>\n" });
  }
  if (a.summary) p.push({ text: a.summary, max: 300, min: 0, open: "", close: "\n" });
  if (a.diffSummary) {
    const d = a.diffSummary;
    p.push(
      `Change: ${d.files.length} file${d.files.length === 1 ? "" : "s"}, +${Number(d.added)} −${Number(d.removed)}\n`,
    );
    for (const f of d.files.slice(0, MAX_FILES)) {
      p.push(
        "• ",
        { text: f.path, max: 150, min: 20, open: "<code>", close: "</code>" },
        ` +${Number(f.added)} −${Number(f.removed)}\n`,
      );
    }
    if (d.files.length > MAX_FILES) p.push(`• and ${d.files.length - MAX_FILES} more\n`);
  }
  if (a.diffExcerpt) p.push({ text: a.diffExcerpt, max: 1500, min: 0, open: "<pre>", close: "</pre>\n" });
  if (a.pr) {
    const url = a.pr.url && /^https?:\/\//.test(a.pr.url) && a.pr.url.length <= 500 ? a.pr.url : null;
    p.push(
      "Pull request: ",
      url ? { text: `#${a.pr.number}`, open: `<a href="${escapeHtml(url)}">`, close: "</a>" } : `#${a.pr.number}`,
    );
    if (a.pr.branch) p.push(" (", { text: a.pr.branch, max: 120, min: 10, open: "<code>", close: "</code>" }, ")");
    if (a.pr.sha) p.push(` at <code>${a.pr.sha.slice(0, 12).replace(/[^0-9a-f]/gi, "")}</code>`);
    p.push("\n");
  }
  p.push("\n", ...decision(a, now), "\n", `<code>${a.id.replace(/[^\w-]/g, "")}</code>`);
  return { text: fitHtml(p), buttons: buttons(a) };
}
