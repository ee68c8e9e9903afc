import { z } from "zod";
import { defineTool } from "../tool.ts";
import { notFound } from "../../shared/errors.ts";
import { getIncident } from "../../incidents/repo.ts";
import { applyTransition } from "../../incidents/service.ts";
import { IncidentView, incidentView, mcpActor } from "../views.ts";

export const escalateIncident = defineTool({
  name: "escalate_incident",
  title: "Escalate an incident",
  description:
    "Hands an active incident to a human: automation stops acting on it (it stays open and still absorbs its alerts).",
  scope: "write",
  input: {
    incident_id: z.string().min(1).max(40).describe("Incident id (inc_…)."),
    reason: z.string().min(1).max(1000).describe("Why, recorded in the timeline."),
  },
  output: { incident: IncidentView.describe("The incident afterwards.") },
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  async handler(args, { principal, deps }) {
    const { store } = deps;
    const now = deps.now();
    const inc = await store.db.transaction().execute(async (trx) => {
      const cur = await getIncident(trx, args.incident_id);
      if (!cur) throw notFound("incident.not_found", `incident ${args.incident_id} does not exist`);
      return applyTransition(trx, store.dialect, cur, "escalate", { ...mcpActor(principal), reason: args.reason }, now);
    });
    return { summary: `${inc.id} escalated: ${args.reason}`, data: { incident: incidentView(inc) } };
  },
});
