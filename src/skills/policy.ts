import { RISK_ORDER, type Risk, type Skill } from "./schema.ts";

export type ApprovalDecision = { required: false } | { required: true; when: "before_run" | "before_merge"; why: string };

/**
 * The policy, not the model, decides approval: a skill whose risk is above AUTO_APPROVE_MAX_RISK
 * needs the approval its `approval` field names; at or below it, none.
 */
export function approvalFor(skill: Skill, autoApproveMaxRisk: Risk): ApprovalDecision {
  if (skill.approval === "none") return { required: false };
  if (RISK_ORDER[skill.risk] <= RISK_ORDER[autoApproveMaxRisk]) return { required: false };
  return { required: true, when: skill.approval, why: `${skill.risk} risk is above AUTO_APPROVE_MAX_RISK (${autoApproveMaxRisk})` };
}
