import { createApprovalService, type ApprovalService } from "../approvals/service.ts";
import type { McpDeps } from "./tool.ts";
import { invalid, notFound } from "../shared/errors.ts";
import { getIncident } from "../incidents/repo.ts";

/**
 * The approval a decision tool names, by id or as its incident's: one of them is required, and an
 * incident that does not exist is `incident.not_found` (not "it has no approval").
 */
export async function approvalRef(
  deps: McpDeps,
  args: { approval_id?: string; incident_id?: string },
): Promise<{ approvalId?: string; incidentId?: string }> {
  if (!args.approval_id && !args.incident_id) throw invalid("approval.ref_required", "give approval_id or incident_id");
  if (!args.approval_id && args.incident_id && !(await getIncident(deps.store.db, args.incident_id))) {
    throw notFound("incident.not_found", `incident ${args.incident_id} does not exist`);
  }
  return { approvalId: args.approval_id, incidentId: args.incident_id };
}

/** The approvals service of the MCP deps: the control plane's own, or one wired from the deps. */
export function approvalsFor(deps: McpDeps): ApprovalService {
  return (
    deps.approvals ??
    createApprovalService({
      store: deps.store,
      log: deps.log,
      now: deps.now,
      skills: deps.skills,
      gitHost: deps.gitHost,
      fixPool: deps.config.runner.pool,
      inline: deps.inline ?? { argocd: deps.config.argocd, secrets: () => undefined },
      deleteMergedBranches: deps.config.gitops.deleteMergedBranches,
      sweep: deps.config.sweep,
      onEnqueued: deps.kick,
    })
  );
}
