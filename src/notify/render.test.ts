import { describe, expect, it } from "vitest";
import { parseTelegramHtml } from "../../test/msw/telegram.ts";
import { renderApprovalMessage } from "./approval-message.ts";
import { renderIncidentCard, shouldAnnounce } from "./incident-card.ts";
import type { ApprovalView, IncidentView, TimelineEntry } from "./views.ts";

const T0 = Date.parse("2026-11-20T08:15:00Z");
const ev = (
  type: string,
  atS: number,
  reason: string | null = null,
  data: Record<string, unknown> = {},
  actor = "pitcrew:engine",
  channel = "engine",
): TimelineEntry => ({ type, at: T0 + atS * 1000, actor, channel, reason, data });

function incident(over: Partial<IncidentView> = {}): IncidentView {
  return {
    id: "inc_01JTESTINCIDENT000000000000",
    title: "KubePodCrashLooping checkout",
    state: "detected",
    severity: "critical",
    namespace: "shop",
    service: "checkout",
    labels: { alertname: "KubePodCrashLooping", namespace: "shop", severity: "critical" },
    annotations: { summary: "checkout crash-loops" },
    openedAt: T0,
    resolvedAt: null,
    timeToResolveMs: null,
    flapCount: 0,
    plan: null,
    timeline: [ev("incident.detected", 0)],
    ...over,
  };
}

function approval(over: Partial<ApprovalView> = {}, inc: Partial<IncidentView> = {}): ApprovalView {
  return {
    id: "apr_01JTESTAPPROVAL00000000000",
    state: "pending",
    risk: "medium",
    requestedAt: T0,
    expiresAt: T0 + 24 * 3_600_000,
    decidedAt: null,
    decidedBy: null,
    reason: null,
    pr: {
      number: 7,
      url: "https://github.com/acme/gitops/pull/7",
      branch: "pitcrew/inc-rollback",
      sha: "0123456789abcdef0123",
    },
    mergeSha: null,
    mergedAt: null,
    skill: "crashloop-after-deploy",
    summary: "roll checkout back to 1.4.2",
    diffSummary: { files: [{ path: "apps/shop/checkout.yaml", added: 1, removed: 1 }], added: 1, removed: 1 },
    diffExcerpt: "-    image: shop/checkout:1.5.0\n+    image: shop/checkout:1.4.2\n",
    mergeFailure: null,
    alertResolved: false,
    chatId: null,
    messageId: null,
    incident: incident({
      state: "proposed",
      plan: {
        skill: "crashloop-after-deploy",
        rationale: "image changed 4 minutes before the crash loop",
        confidence: 0.82,
        planner: "claude",
      },
      ...inc,
    }),
    ...over,
  };
}

/** Telegram would accept it: valid HTML, at most 4,096 characters once parsed, and the raw text too. */
function accepted(html: string): string {
  expect(html.length).toBeLessThanOrEqual(4096);
  const p = parseTelegramHtml(html);
  if (!p.ok) throw new Error(p.description);
  return p.text;
}

describe("incident card", () => {
  it("escapes hostile labels, titles and annotations and stays under 4,096 characters", () => {
    const hostile = incident({
      title: "<b>pwn</b> & co",
      labels: { alertname: "<script>", "a&b": "x<y>z", namespace: "</code><b>" },
      annotations: { summary: "<i>".repeat(40_000) + "&".repeat(40_000) },
      timeline: [ev("incident.detected", 0), ev("incident.escalated", 60, "<a href=x>".repeat(500))],
      state: "escalated",
    });
    const text = accepted(renderIncidentCard(hostile));
    expect(text).toContain("<b>pwn</b> & co");
    expect(text).toContain("alertname=<script>");
    expect(text).toContain("a&b=x<y>z");
    expect(text).toContain("Escalated to a person");
  });

  it("says how long the incident took to resolve and names the fix", () => {
    const v = incident({
      state: "resolved",
      resolvedAt: T0 + 192_000,
      timeToResolveMs: 192_000,
      timeline: [
        ev("incident.detected", 0),
        ev("approval.requested", 30, "merge of pull request #7 needs approval", { approvalId: "apr_1" }),
        ev("approval.approved", 60, null, { approvalId: "apr_1" }, "telegram:@alice", "telegram"),
        ev("pr.merged", 62, "pull request #7 merged as abc1234, approved by @alice via telegram", {
          approvalId: "apr_1",
        }),
        ev("incident.verifying", 62, "pull request #7 merged (abc1234); waiting for the alert to resolve"),
        ev("incident.resolved", 192, "alert resolved after the fix: rollback in pull request #7"),
      ],
    });
    const text = accepted(renderIncidentCard(v));
    expect(text).toContain("Resolved in 3m12s");
    expect(text).toContain("approved by telegram:@alice via telegram");
    expect(text).toContain("pull request #7 merged as abc1234");
    // The merge's own verifying line is not repeated.
    expect(text).not.toContain("fix applied");
  });

  it("announces openings from the minimum severity, and anything that needs a person", () => {
    expect(shouldAnnounce(incident({ severity: "warning" }), "warning")).toBe(true);
    expect(shouldAnnounce(incident({ severity: "info" }), "warning")).toBe(false);
    expect(shouldAnnounce(incident({ severity: null }), "warning")).toBe(false);
    expect(shouldAnnounce(incident({ severity: "warning" }), "critical")).toBe(false);
    expect(
      shouldAnnounce(
        incident({ severity: "info", timeline: [ev("incident.detected", 0), ev("approval.requested", 5)] }),
        "critical",
      ),
    ).toBe(true);
    expect(
      shouldAnnounce(
        incident({
          severity: "info",
          state: "resolved",
          timeline: [ev("incident.detected", 0), ev("incident.resolved", 5)],
        }),
        "warning",
      ),
    ).toBe(false);
  });
});

describe("approval message", () => {
  const now = T0 + 60_000;

  it("shows the plan, risk, change and pull request, with Approve / Reject / Details buttons", () => {
    const m = renderApprovalMessage(approval(), now);
    const text = accepted(m.text);
    const shown = [
      "Approval needed",
      "risk medium",
      "crashloop-after-deploy",
      "Claude, confidence 82%",
      "image changed 4 minutes",
      "1 file, +1 −1",
      "apps/shop/checkout.yaml +1 −1",
      "image: shop/checkout:1.4.2",
      "Pull request: #7",
      "Expires 2026-11-21 08:15 UTC (in 23h59m)",
    ];
    for (const s of shown) {
      expect(text).toContain(s);
    }
    expect(m.text).toContain('<a href="https://github.com/acme/gitops/pull/7">#7</a>');
    expect(m.buttons.flat().map((b) => b.callback_data)).toEqual([
      "v1:a:apr_01JTESTAPPROVAL00000000000",
      "v1:r:apr_01JTESTAPPROVAL00000000000",
      "v1:d:apr_01JTESTAPPROVAL00000000000",
    ]);
  });

  it("renders without a diff summary (approvals from before it was recorded)", () => {
    const text = accepted(renderApprovalMessage(approval({ diffSummary: null, diffExcerpt: null }), now).text);
    expect(text).not.toContain("Change:");
    expect(text).toContain("Pull request: #7");
  });

  it("keeps a huge hostile diff and rationale inside the limit, escaped", () => {
    const m = renderApprovalMessage(
      approval(
        {
          diffExcerpt: "+ <b>&amp;</b> </pre>\n".repeat(5000),
          diffSummary: {
            files: Array.from({ length: 40 }, (_, i) => ({ path: `<x>/${i}&.yaml`, added: 1, removed: 0 })),
            added: 40,
            removed: 0,
          },
        },
        { plan: { skill: "s", rationale: "<".repeat(10_000) } },
      ),
      now,
    );
    const text = accepted(m.text);
    expect(text).toContain("+ <b>&amp;</b> </pre>");
    expect(text).toContain("and 30 more");
    expect(text).toContain("Approval needed");
  });

  it("shows the decision with who and when, and removes the buttons", () => {
    const m = renderApprovalMessage(
      approval({
        state: "approved",
        decidedAt: T0 + 120_000,
        decidedBy: "@alice via telegram",
        mergedAt: T0 + 125_000,
        mergeSha: "abc1234def",
      }),
      now,
    );
    expect(accepted(m.text)).toContain("Approved by @alice via telegram at 2026-11-20 08:17 UTC · merged abc1234def");
    expect(m.buttons).toEqual([]);
    const r = renderApprovalMessage(
      approval({ state: "rejected", decidedAt: T0 + 120_000, decidedBy: "bob via mcp", reason: "<not now>" }),
      now,
    );
    expect(accepted(r.text)).toContain("Rejected by bob via mcp at 2026-11-20 08:17 UTC: <not now>");
    expect(r.buttons).toEqual([]);
  });

  it("says when it expired, or that nothing was done because the alert resolved", () => {
    const e = renderApprovalMessage(approval({ state: "expired", decidedAt: T0 + 86_400_000 }), now);
    expect(accepted(e.text)).toContain("Expired at 2026-11-21 08:15 UTC without a decision");
    expect(e.buttons).toEqual([]);
    const c = renderApprovalMessage(
      approval({ state: "cancelled", decidedAt: T0 + 300_000, alertResolved: true }),
      now,
    );
    expect(accepted(c.text)).toContain("No action taken: the alert resolved");
    expect(c.buttons).toEqual([]);
  });

  it("offers Rebuild after a merge conflict, not after other failures", () => {
    const conflict = renderApprovalMessage(
      approval({
        mergeFailure: {
          code: "gitops.merge_conflict",
          reason: "merge of pull request #7 failed: conflicts",
          at: T0 + 90_000,
        },
      }),
      now,
    );
    expect(accepted(conflict.text)).toContain("Merge failed at 08:16:30 UTC");
    expect(conflict.buttons.flat().map((b) => b.callback_data)).toContain("v1:b:apr_01JTESTAPPROVAL00000000000");
    const closed = renderApprovalMessage(
      approval({ mergeFailure: { code: "gitops.pull_not_open", reason: "closed", at: T0 + 90_000 } }),
      now,
    );
    expect(closed.buttons.flat().map((b) => b.callback_data)).not.toContain("v1:b:apr_01JTESTAPPROVAL00000000000");
  });

  it("asks to approve a run when there is no pull request", () => {
    const m = renderApprovalMessage(
      approval({ pr: null, diffSummary: null, diffExcerpt: null, summary: null, skill: "restart" }),
      now,
    );
    expect(accepted(m.text)).toContain("Run of restart");
    expect(m.buttons).toHaveLength(2);
  });
});
