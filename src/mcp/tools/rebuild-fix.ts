import { z } from "zod";
import { defineTool } from "../tool.ts";
import { approvalRef, approvalsFor } from "../decisions.ts";
import { ApprovalView, approvalView, IncidentView, incidentView, mcpActor } from "../views.ts";

export const rebuildFix = defineTool({
  name: "rebuild_fix",
  title: "Rebuild a fix on the current base",
  description:
    "After a merge failed with a conflict (or its pull request moved), re-runs the incident's fix on the current base branch as a new pull request on its own branch; the old pull request is closed and its approval cancelled, and the new pull request asks for a new approval. Refused for a pull request whose merge did not fail that way.",
  scope: "approve",
  input: {
    approval_id: z
      .string()
      .max(80)
      .optional()
      .describe("The approval whose merge failed (apr_…); or give incident_id."),
    incident_id: z.string().max(40).optional().describe("Rebuild this incident's fix (its newest approval)."),
    reason: z.string().max(1000).optional().describe("Why, recorded in the timeline."),
  },
  output: {
    approval: ApprovalView.describe("The approval the rebuild replaces (cancelled)."),
    incident: IncidentView.describe("The incident afterwards (fixing)."),
    task_id: z.string().describe("The new fix task."),
    rebuild: z.number().int().describe("Which rebuild of this incident it is; its branch ends in -rebuild-<n>."),
    closing_pull_requests: z.number().int().describe("Pull requests being closed because the rebuild replaces them."),
  },
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
  async handler(args, { principal, deps }) {
    const r = await approvalsFor(deps).rebuild(
      await approvalRef(deps, args),
      { subject: principal.subject, ...mcpActor(principal) },
      args.reason ?? null,
    );
    return {
      summary: `rebuilding incident ${r.incident.id} on the current base (rebuild ${r.rebuild}, task ${r.taskId}); approval ${r.approval.id} is ${r.approval.state}`,
      data: {
        approval: approvalView(r.approval),
        incident: incidentView(r.incident),
        task_id: r.taskId,
        rebuild: r.rebuild,
        closing_pull_requests: r.closing.length,
      },
    };
  },
});
