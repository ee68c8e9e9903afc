import { z } from "zod";
import { defineTool } from "../tool.ts";
import { notFound } from "../../shared/errors.ts";
import { getIncident as loadIncident } from "../../incidents/repo.ts";
import { allowedEvents, type IncidentState } from "../../incidents/lifecycle.ts";
import { ApprovalView, approvalView, EventView, eventView, IncidentView, incidentView, iso } from "../views.ts";

const AlertView = z.object({
  id: z.string().describe("Alert row id."),
  fingerprint: z.string().describe("AlertManager fingerprint."),
  status: z.string().describe("firing or resolved."),
  alertname: z.string().describe("Alert name."),
  labels: z.record(z.string(), z.string()).describe("Alert labels."),
  annotations: z.record(z.string(), z.string()).describe("Alert annotations."),
  starts_at: z.string().describe("ISO time it started firing."),
  ends_at: z.string().nullable().describe("ISO time it ended, if resolved."),
  repeat_count: z.number().int().describe("Times AlertManager repeated it."),
  received_at: z.string().describe("ISO time Pitcrew received it."),
});

export const getIncident = defineTool({
  name: "get_incident",
  title: "Get an incident",
  description: "One incident with its alerts, plan, approvals, the actions its state allows, and its last 50 events.",
  scope: "read",
  input: { incident_id: z.string().min(1).max(40).describe("Incident id (inc_…).") },
  output: {
    incident: IncidentView.describe("The incident, with its plan."),
    alerts: z.array(AlertView).describe("Its alerts, oldest first (at most 100)."),
    approvals: z.array(ApprovalView).describe("Its approvals, newest first."),
    allowed_events: z.array(z.string()).describe("Lifecycle events its current state accepts."),
    events: z.array(EventView).describe("Its last 50 events, oldest first."),
  },
  annotations: { readOnlyHint: true, openWorldHint: false },
  async handler(args, { deps }) {
    const db = deps.store.db;
    const inc = await loadIncident(db, args.incident_id);
    if (!inc) throw notFound("incident.not_found", `incident ${args.incident_id} does not exist`);
    const alerts = await db
      .selectFrom("alerts")
      .selectAll()
      .where("incident_id", "=", inc.id)
      .orderBy("id")
      .limit(100)
      .execute();
    const approvals = await db
      .selectFrom("approvals")
      .selectAll()
      .where("incident_id", "=", inc.id)
      .orderBy("requested_at", "desc")
      .orderBy("id", "desc")
      .execute();
    const events = (
      await db
        .selectFrom("events")
        .selectAll()
        .where("incident_id", "=", inc.id)
        .orderBy("seq", "desc")
        .limit(50)
        .execute()
    ).reverse();
    const pending = approvals.filter((a) => a.state === "pending").length;
    return {
      summary: `${inc.id} "${inc.title}" is ${inc.state}${pending ? `; ${pending} approval(s) pending` : ""}`,
      data: {
        incident: incidentView(inc),
        alerts: alerts.map((a) => ({
          id: a.id,
          fingerprint: a.fingerprint,
          status: a.status,
          alertname: a.alertname,
          labels: JSON.parse(a.labels) as Record<string, string>,
          annotations: JSON.parse(a.annotations) as Record<string, string>,
          starts_at: iso(a.starts_at)!,
          ends_at: iso(a.ends_at),
          repeat_count: Number(a.repeat_count),
          received_at: iso(a.received_at)!,
        })),
        approvals: approvals.map(approvalView),
        allowed_events: allowedEvents(inc.state as IncidentState),
        events: events.map(eventView),
      },
    };
  },
});
