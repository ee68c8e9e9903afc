import { RISK_ORDER, type Risk, type Skill } from "./schema.ts";
import { renderParams, type Plan, type PlanContext } from "./planner.ts";

export type ApprovalDecision =
  | { required: false }
  | { required: true; when: "before_run" | "before_merge"; why: string };

/**
 * The policy, not the model, decides approval: a skill whose risk is above AUTO_APPROVE_MAX_RISK
 * needs the approval its `approval` field names; at or below it, none.
 */
export function approvalFor(skill: Skill, autoApproveMaxRisk: Risk): ApprovalDecision {
  if (skill.approval === "none") return { required: false };
  if (RISK_ORDER[skill.risk] <= RISK_ORDER[autoApproveMaxRisk]) return { required: false };
  return {
    required: true,
    when: skill.approval,
    why: `${skill.risk} risk is above AUTO_APPROVE_MAX_RISK (${autoApproveMaxRisk})`,
  };
}

const TEMPLATED = /\{\{/;

/**
 * Limits what a model may choose. Values the skill author wrote literally (caps, factors, modes)
 * are always the author's; when the skill would run with no human approval, every parameter is
 * the one rendered from the alert's own labels. Returns the params to use and the overrides made.
 */
export function pinParams(
  skill: Skill,
  proposed: Record<string, unknown>,
  rendered: Record<string, unknown> | undefined,
  approvalRequired: boolean,
): { params: Record<string, unknown>; pinned: string[] } {
  const params = { ...proposed };
  const pinned: string[] = [];
  for (const [key, authored] of Object.entries(skill.action.with)) {
    const literal =
      !(typeof authored === "string" && TEMPLATED.test(authored)) && !JSON.stringify(authored ?? null).includes("{{");
    const fixed = literal ? authored : !approvalRequired ? rendered?.[key] : undefined;
    if (fixed === undefined) continue;
    if (JSON.stringify(params[key]) !== JSON.stringify(fixed)) pinned.push(key);
    params[key] = fixed;
  }
  return { params, pinned };
}

/**
 * The policy applied to a plan: the approval it needs and, when a model chose it, its params
 * pinned by pinParams against the values rendered from the alert.
 */
export function applyPolicy(
  plan: Plan,
  skill: Skill,
  ctx: PlanContext,
  autoApproveMaxRisk: Risk,
): { plan: Plan; approval: ApprovalDecision } {
  const approval = approvalFor(skill, autoApproveMaxRisk);
  if (plan.planner === "rules") return { plan, approval };
  let rendered: Record<string, unknown> | undefined;
  try {
    rendered = renderParams(skill, ctx);
  } catch {
    rendered = undefined;
  }
  const { params, pinned } = pinParams(skill, plan.params, rendered, approval.required);
  return {
    plan: {
      ...plan,
      params,
      rationale: pinned.length ? `${plan.rationale} [pinned by policy: ${pinned.join(", ")}]` : plan.rationale,
    },
    approval,
  };
}
