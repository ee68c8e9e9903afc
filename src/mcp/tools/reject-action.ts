import { z } from "zod";
import { defineTool } from "../tool.ts";
import { approvalRef, approvalsFor } from "../decisions.ts";
import { ApprovalView, approvalView, IncidentView, incidentView, mcpActor } from "../views.ts";

export const rejectAction = defineTool({
  name: "reject_action",
  title: "Reject an action",
  description:
    "Rejects a pending, unexpired approval, by id or as the incident's pending one: the incident becomes rejected, and a proposed pull request is closed with a comment saying why and its branch deleted. A decision already made answers who made it.",
  scope: "approve",
  input: {
    approval_id: z.string().max(80).optional().describe("Approval id (apr_…); or give incident_id."),
    incident_id: z.string().max(40).optional().describe("Reject this incident's pending approval."),
    reason: z.string().max(1000).optional().describe("Why, recorded with the decision."),
  },
  output: {
    approval: ApprovalView.describe("The approval, now rejected."),
    incident: IncidentView.describe("The incident afterwards."),
  },
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
  async handler(args, { principal, deps }) {
    const r = await approvalsFor(deps).reject(
      await approvalRef(deps, args),
      { subject: principal.subject, ...mcpActor(principal) },
      args.reason ?? null,
    );
    return {
      summary: `rejected ${r.approval.id}; incident ${r.incident.id} is ${r.incident.state}`,
      data: { approval: approvalView(r.approval), incident: incidentView(r.incident) },
    };
  },
});
