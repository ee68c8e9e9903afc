import { createApprovalDecisions } from "../incidents/approvals.ts";
import type { McpDeps } from "./tool.ts";

/** The approval decisions, wired from the MCP deps. */
export function decisionsFor(deps: McpDeps) {
  return createApprovalDecisions({
    store: deps.store,
    log: deps.log,
    now: deps.now,
    skills: deps.skills,
    gitHost: deps.gitHost,
    fixPool: deps.config.runner.pool,
    inline: deps.inline ?? { argocd: deps.config.argocd, secrets: () => undefined },
    onEnqueued: deps.kick,
  });
}
