import { z } from "zod";
import { defineTool } from "../tool.ts";
import { notFound } from "../../shared/errors.ts";
import { getIncident } from "../../incidents/repo.ts";
import { closeAsResolved } from "../../incidents/service.ts";
import { IncidentView, incidentView, mcpActor } from "../views.ts";

export const resolveIncident = defineTool({
  name: "resolve_incident",
  title: "Resolve an incident",
  description:
    "Closes an incident by hand and cancels its pending approvals (and an approved merge not yet started); a pull request it leaves unmerged is closed with a comment and its branch deleted. A new firing of its alert opens (or, within the flap window, reopens) an incident.",
  scope: "write",
  input: {
    incident_id: z.string().min(1).max(40).describe("Incident id (inc_…)."),
    reason: z.string().min(1).max(1000).describe("Why, recorded in the timeline."),
  },
  output: {
    incident: IncidentView.describe("The incident afterwards."),
    cancelled_approvals: z.number().int().describe("Pending approvals cancelled."),
    closing_pull_requests: z
      .number()
      .int()
      .describe("Pull requests being closed (their branches deleted) because the incident closed without them."),
  },
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
  async handler(args, { principal, deps }) {
    const { store } = deps;
    const by = mcpActor(principal);
    const now = deps.now();
    const r = await store.db.transaction().execute(async (trx) => {
      const cur = await getIncident(trx, args.incident_id);
      if (!cur) throw notFound("incident.not_found", `incident ${args.incident_id} does not exist`);
      const {
        incident: inc,
        cancelled,
        closing,
      } = await closeAsResolved(trx, store.dialect, cur, "resolve", { ...by, reason: args.reason }, now);
      return { inc, cancelled, closing };
    });
    if (r.closing.length > 0) deps.kick();
    const closing = r.closing.length ? `; closing ${r.closing.length} pull request(s)` : "";
    return {
      summary: `${r.inc.id} resolved${r.cancelled ? `; ${r.cancelled} pending approval(s) cancelled` : ""}${closing}`,
      data: {
        incident: incidentView(r.inc),
        cancelled_approvals: r.cancelled,
        closing_pull_requests: r.closing.length,
      },
    };
  },
});
