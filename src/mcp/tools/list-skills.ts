import { z } from "zod";
import { defineTool } from "../tool.ts";
import { actionKind } from "../../skills/schema.ts";
import { approvalFor } from "../../skills/policy.ts";
import { isInline } from "../../skills/inline.ts";

export const listSkills = defineTool({
  name: "list_skills",
  title: "List skills",
  description:
    "The loaded skills: what each matches, its risk, the approval the policy requires for it, and how it runs.",
  scope: "read",
  input: {},
  output: {
    skills: z
      .array(
        z.object({
          name: z.string().describe("Skill name."),
          description: z.string().describe("What it does."),
          risk: z.enum(["read", "low", "medium", "high"]).describe("Declared risk."),
          approval: z.enum(["none", "before_run", "before_merge"]).describe("Approval the skill asks for."),
          approval_required: z.boolean().describe("Whether the policy (AUTO_APPROVE_MAX_RISK) actually requires it."),
          action: z.enum(["builtin", "patch", "http", "agent"]).describe("How it acts."),
          inline: z.boolean().describe("True when it runs in the control plane, not on a runner."),
          alertnames: z.array(z.string()).describe("Alert names it matches."),
          priority: z.number().int().describe("Match priority."),
        }),
      )
      .describe("Skills, by name."),
  },
  annotations: { readOnlyHint: true, openWorldHint: false },
  async handler(_args, { deps }) {
    const max = deps.config.guardrails.autoApproveMaxRisk;
    const skills = [...deps.skills()]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((s) => ({
        name: s.name,
        description: s.description,
        risk: s.risk,
        approval: s.approval,
        approval_required: approvalFor(s, max).required,
        action: actionKind(s.action),
        inline: isInline(s),
        alertnames: s.match.alertname,
        priority: s.match.priority,
      }));
    return {
      summary: `${skills.length} skill(s): ${skills.map((s) => s.name).join(", ") || "none"}`,
      data: { skills },
    };
  },
});
