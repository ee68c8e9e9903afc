import { z } from "zod";
import { defineTool } from "../tool.ts";
import { notFound } from "../../shared/errors.ts";
import { getIncident } from "../../incidents/repo.ts";
import { IncidentView, incidentView } from "../views.ts";

const EXPLAIN: Record<string, string> = {
  fixing: "a fix is running",
  verifying: "the fix is applied; waiting for the alert to resolve",
  awaiting_approval: "the plan needs approval (approve_action / reject_action)",
  escalated: "escalated to a human",
  suppressed: "suppressed (dry run or policy)",
  deferred: "automation is paused; analysis resumes on resume_automation",
  skipped: "nothing to do: only a detected incident is analysed",
};

export const analyzeIncident = defineTool({
  name: "analyze_incident",
  title: "Analyze an incident now",
  description:
    "Runs analysis for a detected incident now (plan, policy, guardrails) instead of waiting for the queued job, and returns what happened.",
  scope: "write",
  input: { incident_id: z.string().min(1).max(40).describe("Incident id (inc_…).") },
  output: {
    outcome: z
      .enum(["fixing", "verifying", "awaiting_approval", "escalated", "suppressed", "deferred", "skipped"])
      .describe("What analysis did."),
    incident: IncidentView.describe("The incident afterwards, with its plan."),
  },
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: true },
  async handler(args, { deps }) {
    const before = await getIncident(deps.store.db, args.incident_id);
    if (!before) throw notFound("incident.not_found", `incident ${args.incident_id} does not exist`);
    const outcome = await deps.analyze(before.id);
    deps.kick();
    const after = (await getIncident(deps.store.db, before.id))!;
    const why =
      outcome === "skipped" && before.state !== "detected"
        ? `nothing to do: the incident is ${before.state}, only a detected incident is analysed`
        : EXPLAIN[outcome];
    return { summary: `${before.id}: ${outcome} — ${why}`, data: { outcome, incident: incidentView(after) } };
  },
});
