import { describe, expect, it } from "vitest";
import {
  INCIDENT_STATES,
  OPEN_STATES,
  allowedEvents,
  transition,
  type IncidentEvent,
  type IncidentState,
} from "./lifecycle.ts";

// The whole table, written out: [state, event] → next state, or null when illegal.
const EXPECTED: Record<IncidentState, Partial<Record<IncidentEvent, IncidentState>>> = {
  detected: {
    "analysis.started": "analyzing",
    escalate: "escalated",
    suppress: "suppressed",
    "alert.resolved": "resolved",
    resolve: "resolved",
  },
  analyzing: {
    "fix.started": "fixing",
    "fix.proposed": "proposed",
    "fix.failed": "failed",
    escalate: "escalated",
    suppress: "suppressed",
    "alert.resolved": "resolved",
    resolve: "resolved",
  },
  fixing: {
    "fix.proposed": "proposed",
    "verify.started": "verifying",
    "fix.failed": "failed",
    escalate: "escalated",
    "alert.resolved": "resolved",
    resolve: "resolved",
  },
  proposed: {
    "approval.granted": "approved",
    "approval.rejected": "rejected",
    rebuild: "fixing",
    "fix.failed": "failed",
    escalate: "escalated",
    "alert.resolved": "resolved",
    resolve: "resolved",
  },
  approved: {
    "approval.released": "proposed",
    "fix.started": "fixing",
    "verify.started": "verifying",
    "fix.failed": "failed",
    escalate: "escalated",
    "alert.resolved": "resolved",
    resolve: "resolved",
  },
  verifying: {
    "verify.passed": "resolved",
    "verify.failed": "escalated",
    "fix.failed": "failed",
    escalate: "escalated",
    "alert.resolved": "resolved",
    resolve: "resolved",
  },
  escalated: {
    "analysis.started": "analyzing",
    rebuild: "fixing",
    "revert.proposed": "proposed",
    "agent.proposed": "proposed",
    "alert.resolved": "resolved",
    resolve: "resolved",
  },
  resolved: { reopen: "detected" },
  rejected: { reopen: "detected", resolve: "resolved" },
  failed: { reopen: "detected", resolve: "resolved", "agent.proposed": "proposed" },
  suppressed: { reopen: "detected", resolve: "resolved" },
};

const EVENTS: IncidentEvent[] = [
  "analysis.started",
  "fix.started",
  "fix.proposed",
  "approval.granted",
  "approval.rejected",
  "approval.released",
  "rebuild",
  "revert.proposed",
  "agent.proposed",
  "verify.started",
  "verify.passed",
  "verify.failed",
  "fix.failed",
  "escalate",
  "suppress",
  "alert.resolved",
  "resolve",
  "reopen",
];

describe("incident transition", () => {
  for (const state of INCIDENT_STATES) {
    for (const event of EVENTS) {
      const to = EXPECTED[state][event];
      it(`${state} --${event}--> ${to ?? "error"}`, () => {
        const r = transition(state, event);
        if (to) expect(r).toEqual({ ok: true, from: state, to });
        else {
          expect(r.ok).toBe(false);
          if (!r.ok) expect(r.error).toBe(`cannot ${event} an incident that is ${state}`);
        }
      });
    }
  }

  it("lists the allowed events of a state", () => {
    expect(allowedEvents("resolved")).toEqual(["reopen"]);
    expect(allowedEvents("proposed").sort()).toEqual(Object.keys(EXPECTED.proposed).sort());
  });

  it("treats escalated as open and terminal exits as closed", () => {
    expect(OPEN_STATES).toContain("escalated");
    for (const s of ["resolved", "rejected", "failed", "suppressed"] as const) expect(OPEN_STATES).not.toContain(s);
  });

  it("refuses an unknown event", () => {
    expect(transition("detected", "explode" as IncidentEvent).ok).toBe(false);
  });
});
