import { z } from "zod";
import { defineTool } from "../tool.ts";
import { notFound } from "../../shared/errors.ts";
import { approvalFor } from "../../skills/policy.ts";
import { isInline } from "../../skills/inline.ts";
import { Skill } from "../../skills/schema.ts";

export const getSkill = defineTool({
  name: "get_skill",
  title: "Get a skill",
  description:
    "One loaded skill as parsed (match, risk, approval, action, verify), with the approval the policy requires for it.",
  scope: "read",
  input: { name: z.string().min(1).max(63).describe("Skill name.") },
  output: {
    skill: Skill.describe("The parsed skill, as in its YAML with defaults applied."),
    approval_required: z.boolean().describe("Whether the policy (AUTO_APPROVE_MAX_RISK) requires approval."),
    approval_why: z.string().nullable().describe("Why approval is required."),
    inline: z.boolean().describe("True when it runs in the control plane, not on a runner."),
  },
  annotations: { readOnlyHint: true, openWorldHint: false },
  async handler(args, { deps }) {
    const skill = deps.skills().find((s) => s.name === args.name);
    if (!skill) throw notFound("skill.not_found", `no skill named ${JSON.stringify(args.name)} is loaded`);
    const a = approvalFor(skill, deps.config.guardrails.autoApproveMaxRisk);
    return {
      summary: `${skill.name}: ${skill.risk} risk, ${a.required ? `needs approval ${a.when}` : "runs unattended"}`,
      data: {
        skill: { ...skill },
        approval_required: a.required,
        approval_why: a.required ? a.why : null,
        inline: isInline(skill),
      },
    };
  },
});
