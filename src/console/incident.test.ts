import { describe, expect, it } from "vitest";
import { newIncidentRow } from "../incidents/repo.ts";
import { newApprovalRow, type ApprovalRow } from "../approvals/repo.ts";
import type { AlertRow, EventRow } from "../store/schema.ts";
import { toText, type Html } from "./html.ts";
import {
  type INCIDENT_PARTS,
  renderAlerts,
  renderChange,
  renderFacts,
  renderIncidentSections,
  renderTimeline,
  type IncidentPage,
} from "./incident.ts";
import { renderApprovalSection } from "./approvals.ts";

const NOW = Date.parse("2026-11-20T10:00:00Z");
const EVIL = `<script>alert("pwned")</script>`;

function pageWith(over: Partial<IncidentPage> = {}): IncidentPage {
  const incident = {
    ...newIncidentRow(
      {
        id: "inc_1",
        fingerprint: "fp",
        dedupe_key: null,
        open_key: "fp",
        title: `Checkout ${EVIL}`,
        source: "alertmanager",
        severity: "critical",
        namespace: "shop",
        service: "checkout",
        alertname: "AppSlow",
        labels: { app: EVIL },
        annotations: { summary: EVIL },
      },
      NOW - 3_600_000,
    ),
    plan: JSON.stringify({
      skill: "scale-app",
      rationale: `because ${EVIL}`,
      confidence: 0.82,
      planner: "claude",
      risk: "medium",
      approval: "before_merge",
      params: { note: EVIL },
    }),
    llm_calls: 2,
    llm_input_tokens: 1234,
    llm_output_tokens: 56,
  };
  const alert: AlertRow = {
    id: "alr_1",
    incident_id: "inc_1",
    fingerprint: "fp",
    status: "firing",
    alertname: `AppSlow${EVIL}`,
    labels: JSON.stringify({ pod: EVIL }),
    annotations: JSON.stringify({ description: EVIL }),
    starts_at: NOW - 3_600_000,
    ends_at: null,
    generator_url: "javascript:alert(1)",
    receiver: null,
    group_key: null,
    received_at: NOW - 3_600_000,
    dedupe: null,
    repeat_count: 3,
    last_received_at: null,
  };
  const event: EventRow = {
    seq: 1,
    id: "evt_1",
    type: "incident.detected",
    task_id: null,
    incident_id: "inc_1",
    actor: `alertmanager${EVIL}`,
    channel: "alertmanager",
    reason: `fired ${EVIL}`,
    data: JSON.stringify({ x: EVIL }),
    occurred_at: NOW - 3_600_000,
    recorded_at: NOW - 3_600_000,
  };
  return {
    incident,
    labels: { app: EVIL },
    annotations: { summary: EVIL },
    plan: JSON.parse(incident.plan),
    alerts: [alert],
    alertCount: 1,
    approvals: [],
    change: null,
    timeline: { events: [event], total: 1 },
    ...over,
  };
}

function approval(over: Partial<ApprovalRow> = {}): ApprovalRow {
  return {
    ...newApprovalRow({
      id: "apr_1",
      incident_id: "inc_1",
      risk: "medium",
      action: JSON.stringify({ merge: { number: 7, url: "https://github.com/o/r/pull/7" }, skill: "scale-app" }),
      requested_at: NOW - 60_000,
      expires_at: NOW + 3_600_000,
      pr_number: 7,
      pr_branch: "pitcrew/inc_1-scale-app",
      head_sha: "a".repeat(40),
    }),
    merge_requeues: 0,
    diff_summary: null,
    diff_excerpt: null,
    ...over,
  } as ApprovalRow;
}

function whole(p: IncidentPage, viewer = { canDecide: true, csrf: "tok" }): string {
  const parts = {
    facts: renderFacts(p.incident, NOW),
    approvals: renderApprovalSection(p.approvals, NOW, viewer),
    change: renderChange(p.change),
    alerts: renderAlerts(p, NOW),
    timeline: renderTimeline(p.timeline, NOW),
  } satisfies Record<(typeof INCIDENT_PARTS)[number], Html>;
  return toText(renderIncidentSections(p, parts));
}

describe("the incident page", () => {
  it("shows markup from the title, labels, annotations, alerts, plan and timeline as text", () => {
    const out = whole(pageWith());
    expect(out).not.toContain("<script>");
    expect(out).toContain("&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;");
    // The alert's javascript: source link is not made a link.
    expect(out).not.toContain("javascript:");
  });

  it("shows the plan with its rationale, confidence, planner and token cost", () => {
    const out = whole(pageWith());
    expect(out).toContain("<dt>Skill</dt><dd>scale-app</dd>");
    expect(out).toContain("<dt>Confidence</dt><dd>82%</dd>");
    expect(out).toContain("<dt>Planner</dt><dd>claude</dd>");
    expect(out).toContain("2 model calls, 1234 input and 56 output tokens");
  });

  it("shows an alert's state and repeats", () => {
    expect(whole(pageWith())).toMatch(/firing<\/span> since <time [^>]+>1h ago<\/time>, repeated 3×/);
  });

  it("cuts a huge annotation to a readable length and says how much was left out", () => {
    const out = whole(pageWith({ annotations: { description: "x".repeat(10_000) } }));
    expect(out).toContain("… (6000 more characters)");
    expect(out).not.toContain("x".repeat(4001));
  });

  it("shows the diff from the host and warns when the pull request moved since the approval was requested", () => {
    const out = toText(
      renderChange({
        pr: { number: 7, url: "https://github.com/o/r/pull/7", branch: "pitcrew/x", status: "awaiting approval" },
        diff: {
          source: "host",
          headSha: "b".repeat(40),
          summary: { files: [{ path: "apps/shop.yaml", added: 1, removed: 1 }], added: 1, removed: 1 },
          excerpt:
            "diff --git a/apps/shop.yaml b/apps/shop.yaml\n--- a/apps/shop.yaml\n+++ b/apps/shop.yaml\n@@ -1 +1 @@\n-replicas: 2\n+replicas: 3",
        },
        hostError: null,
        movedFrom: "a".repeat(40),
      }),
    );
    expect(out).toContain('<a href="https://github.com/o/r/pull/7" rel="noopener noreferrer">#7</a>');
    expect(out).toContain('<ins class="diff-add">+replicas: 3</ins>');
    expect(out).toContain("moved since its approval was requested (from aaaaaaaaaaaa to bbbbbbbbbbbb)");
  });

  it("says the diff shown is the stored one when the host could not be read", () => {
    const out = toText(
      renderChange({
        pr: { number: 7, url: null, branch: null, status: "merged" },
        diff: { source: "stored", headSha: null, summary: null, excerpt: "+x" },
        hostError: "gitops.diff did not answer",
        movedFrom: null,
      }),
    );
    expect(out).toContain(
      "as it was when its approval was requested (the pull-request host could not be read: gitops.diff did not answer)",
    );
  });
});

describe("the approval section", () => {
  it("offers Approve and Reject (with a required reason) to a person who may decide, with the CSRF token", () => {
    const out = toText(renderApprovalSection([approval()], NOW, { canDecide: true, csrf: "tok<" }));
    expect(out).toContain('action="/approvals/apr_1/approve"');
    expect(out).toContain("Approve and merge #7");
    expect(out).toMatch(/action="\/approvals\/apr_1\/reject"[\s\S]*name="reason" required/);
    expect(out).toContain('<input type="hidden" name="_csrf" value="tok&lt;">');
  });

  it("shows the state but no buttons to a person without the approve scope", () => {
    const out = toText(renderApprovalSection([approval()], NOW, { canDecide: false, csrf: "tok" }));
    expect(out).not.toContain("<form");
    expect(out).toContain("deciding needs the <code>approve</code> scope");
  });

  it("offers no buttons for an expired or decided approval, and names who decided, how and why", () => {
    expect(
      toText(renderApprovalSection([approval({ expires_at: NOW - 1 })], NOW, { canDecide: true, csrf: "t" })),
    ).not.toContain("<form");
    const decided = toText(
      renderApprovalSection(
        [
          approval({
            state: "rejected",
            decided_at: NOW - 60_000,
            decided_by: "alice",
            channel: "console",
            reason: `no ${EVIL}`,
          }),
        ],
        NOW,
        { canDecide: true, csrf: "t" },
      ),
    );
    expect(decided).not.toContain("<form");
    expect(decided).toContain(
      'rejected by <span class="decided-by">alice</span> via <span class="channel">console</span>',
    );
    expect(decided).toContain("no &lt;script&gt;");
  });

  it("puts a refused decision's message first, as an alert", () => {
    const out = toText(
      renderApprovalSection(
        [approval()],
        NOW,
        { canDecide: true, csrf: "t" },
        { kind: "error", text: "Not approved: already decided by bob" },
      ),
    );
    expect(out.startsWith('<p class="error" role="alert">Not approved: already decided by bob</p>')).toBe(true);
  });
});
