import { z } from "zod";
import { defineTool } from "../tool.ts";
import { approvalRef, approvalsFor } from "../decisions.ts";
import { ApprovalView, approvalView, IncidentView, incidentView, mcpActor } from "../views.ts";

export const approveAction = defineTool({
  name: "approve_action",
  title: "Approve an action",
  description:
    "Approves a pending, unexpired approval, by id or as the incident's pending one. A before_run approval runs the planned fix (queued to a runner, or inline). A before_merge approval is claimed first, then its pull request is merged at the commit it was proposed at, and the alert is watched; a merge that fails (conflict, branch moved) leaves the approval pending again and says why, one the host refused for now is retried in the background. A decision already made answers who made it.",
  scope: "approve",
  input: {
    approval_id: z.string().max(80).optional().describe("Approval id (apr_…); or give incident_id."),
    incident_id: z.string().max(40).optional().describe("Approve this incident's pending approval."),
    reason: z.string().max(1000).optional().describe("Why, recorded with the decision."),
  },
  output: {
    approval: ApprovalView.describe("The approval, now approved."),
    incident: IncidentView.describe("The incident afterwards."),
    task_id: z.string().nullable().describe("The fix task queued by a before_run approval."),
    merged: z
      .object({ number: z.number().int().describe("Pull request number."), sha: z.string().describe("Merge commit.") })
      .nullable()
      .describe("The merge made by a before_merge approval."),
    merge_pending: z
      .string()
      .nullable()
      .describe("Why an approved merge is not done yet (it is retried in the background), or null."),
    inline_result: z.string().nullable().describe("What an inline skill reported, when the approved skill ran inline."),
  },
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
  async handler(args, { principal, deps }) {
    const r = await approvalsFor(deps).approve(
      await approvalRef(deps, args),
      { subject: principal.subject, ...mcpActor(principal) },
      args.reason ?? null,
    );
    const what = r.merged
      ? `merged pull request #${r.merged.number}`
      : r.mergePending
        ? `merge not done yet: ${r.mergePending}`
        : r.taskId
          ? `queued fix task ${r.taskId}`
          : r.inline
            ? `ran inline: ${r.inline.summary}`
            : "approved";
    return {
      summary: `approved ${r.approval.id}: ${what}; incident ${r.incident.id} is ${r.incident.state}`,
      data: {
        approval: approvalView(r.approval),
        incident: incidentView(r.incident),
        task_id: r.taskId,
        merged: r.merged,
        merge_pending: r.mergePending,
        inline_result: r.inline?.summary ?? null,
      },
    };
  },
});
