import { z } from "zod";
import { defineTool } from "../tool.ts";
import { notFound } from "../../shared/errors.ts";
import { getIncident } from "../../incidents/repo.ts";
import { closeAsResolved } from "../../incidents/service.ts";
import { IncidentView, incidentView, mcpActor } from "../views.ts";

export const resolveIncident = defineTool({
  name: "resolve_incident",
  title: "Resolve an incident",
  description: "Closes an incident by hand and cancels its pending approvals. A new firing of its alert opens (or, within the flap window, reopens) an incident.",
  scope: "write",
  input: {
    incident_id: z.string().min(1).max(40).describe("Incident id (inc_…)."),
    reason: z.string().min(1).max(1000).describe("Why, recorded in the timeline."),
  },
  output: {
    incident: IncidentView.describe("The incident afterwards."),
    cancelled_approvals: z.number().int().describe("Pending approvals cancelled."),
  },
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false },
  async handler(args, { principal, deps }) {
    const { store } = deps;
    const by = mcpActor(principal);
    const now = deps.now();
    const r = await store.db.transaction().execute(async (trx) => {
      const cur = await getIncident(trx, args.incident_id);
      if (!cur) throw notFound("incident.not_found", `incident ${args.incident_id} does not exist`);
      const { incident: inc, cancelled } = await closeAsResolved(trx, store.dialect, cur, "resolve", { ...by, reason: args.reason }, now);
      return { inc, cancelled };
    });
    return { summary: `${r.inc.id} resolved${r.cancelled ? `; ${r.cancelled} pending approval(s) cancelled` : ""}`, data: { incident: incidentView(r.inc), cancelled_approvals: r.cancelled } };
  },
});
