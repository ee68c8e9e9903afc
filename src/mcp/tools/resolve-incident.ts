import { z } from "zod";
import { defineTool } from "../tool.ts";
import { notFound } from "../../shared/errors.ts";
import { appendEvent } from "../../events/repo.ts";
import { getIncident } from "../../incidents/repo.ts";
import { applyTransition } from "../../incidents/service.ts";
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
      const wasProposed = cur.state === "proposed";
      const inc = await applyTransition(trx, store.dialect, cur, "resolve", { ...by, reason: args.reason }, now);
      // As when the alert resolves by itself: a pending approval is moot once the incident is closed.
      const res = await trx.updateTable("approvals").set({ state: "cancelled", decided_at: now, decided_by: by.actor, channel: by.channel, reason: `incident resolved: ${args.reason}` }).where("incident_id", "=", cur.id).where("state", "=", "pending").executeTakeFirst();
      const cancelled = Number(res.numUpdatedRows);
      if (wasProposed || cancelled > 0) {
        await appendEvent(trx, store.dialect, { type: "approval.cancelled", incidentId: cur.id, ...by, reason: "incident resolved by hand", data: { approvals: cancelled }, occurredAt: now }, now);
      }
      return { inc, cancelled };
    });
    return { summary: `${r.inc.id} resolved${r.cancelled ? `; ${r.cancelled} pending approval(s) cancelled` : ""}`, data: { incident: incidentView(r.inc), cancelled_approvals: r.cancelled } };
  },
});
