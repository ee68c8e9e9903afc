// The incident state machine (DESIGN §3), as one pure function. Every caller goes through
// transition(); an illegal move is an error, never a silent no-op.

export const INCIDENT_STATES = [
  "detected",
  "analyzing",
  "fixing",
  "proposed",
  "approved",
  "verifying",
  "resolved",
  "rejected",
  "failed",
  "escalated",
  "suppressed",
] as const;
export type IncidentState = (typeof INCIDENT_STATES)[number];

/** Open incidents absorb new firing alerts with their key; `escalated` still counts as open. */
export const OPEN_STATES: readonly IncidentState[] = [
  "detected",
  "analyzing",
  "fixing",
  "proposed",
  "approved",
  "verifying",
  "escalated",
];
export const isOpen = (s: IncidentState): boolean => OPEN_STATES.includes(s);

export type IncidentEvent =
  | "analysis.started" // an analysis job picked the incident up
  | "fix.started" // a fix (inline skill or runner task) began
  | "fix.proposed" // a change awaits approval (e.g. a PR is open)
  | "approval.granted"
  | "approval.rejected"
  | "approval.released" // an approved merge failed: the approval waits for a decision again
  | "rebuild" // a person asked to re-run the fix on the current base (after a merge conflict)
  | "revert.proposed" // the revert of an unverified fix awaits approval
  | "agent.proposed" // an external agent's pull request awaits approval
  | "verify.started" // the fix is applied (merged or run); watch the alert
  | "verify.passed"
  | "verify.failed"
  | "fix.failed"
  | "escalate" // hand to a human or an external agent
  | "suppress" // deliberately not acted on (dry run, policy)
  | "alert.resolved" // AlertManager says the alert stopped firing
  | "resolve" // a person closed it
  | "reopen"; // the alert fired again (flap)

const ACTIVE: readonly IncidentState[] = ["detected", "analyzing", "fixing", "proposed", "approved", "verifying"];

const TABLE: Record<IncidentEvent, { from: readonly IncidentState[]; to: IncidentState }> = {
  "analysis.started": { from: ["detected", "escalated"], to: "analyzing" },
  "fix.started": { from: ["analyzing", "approved"], to: "fixing" },
  "fix.proposed": { from: ["analyzing", "fixing"], to: "proposed" },
  "approval.granted": { from: ["proposed"], to: "approved" },
  "approval.rejected": { from: ["proposed"], to: "rejected" },
  "approval.released": { from: ["approved"], to: "proposed" },
  // A merge that failed leaves the incident `proposed` (claim released) or `escalated` (given up).
  rebuild: { from: ["proposed", "escalated"], to: "fixing" },
  // The fix did not resolve the alert: escalated, and Pitcrew's revert of it asks for approval.
  "revert.proposed": { from: ["escalated"], to: "proposed" },
  // An external agent took the incident over (escalated, or closed by a failed fix) and opened a
  // pull request: it waits for approval like Pitcrew's own.
  "agent.proposed": { from: ["escalated", "failed"], to: "proposed" },
  "verify.started": { from: ["fixing", "approved"], to: "verifying" },
  "verify.passed": { from: ["verifying"], to: "resolved" },
  "verify.failed": { from: ["verifying"], to: "escalated" },
  "fix.failed": { from: ["analyzing", "fixing", "proposed", "approved", "verifying"], to: "failed" },
  escalate: { from: ACTIVE, to: "escalated" },
  suppress: { from: ["detected", "analyzing"], to: "suppressed" },
  "alert.resolved": { from: OPEN_STATES, to: "resolved" },
  resolve: { from: [...OPEN_STATES, "failed", "suppressed", "rejected"], to: "resolved" },
  reopen: { from: ["resolved", "failed", "rejected", "suppressed"], to: "detected" },
};

export type TransitionResult =
  | { ok: true; from: IncidentState; to: IncidentState }
  | { ok: false; from: IncidentState; event: IncidentEvent; error: string };

export function transition(state: IncidentState, event: IncidentEvent): TransitionResult {
  const rule = TABLE[event];
  if (!rule) return { ok: false, from: state, event, error: `unknown event "${String(event)}"` };
  if (!rule.from.includes(state)) {
    return { ok: false, from: state, event, error: `cannot ${event} an incident that is ${state}` };
  }
  return { ok: true, from: state, to: rule.to };
}

/** The events accepted in a state, for error messages and the MCP surface. */
export function allowedEvents(state: IncidentState): IncidentEvent[] {
  return (Object.keys(TABLE) as IncidentEvent[]).filter((e) => TABLE[e].from.includes(state));
}
