import { createApprovalService, type ApprovalService } from "../approvals/service.ts";
import type { McpDeps } from "./tool.ts";

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
