import type { Skill } from "./schema.ts";
import { rankSkills } from "./match.ts";
import { renderValue, type TemplateData } from "./template.ts";
import { errorMessage } from "../shared/errors.ts";

export type PlanContext = {
  incident: {
    id: string;
    alertname: string;
    fingerprint: string;
    namespace: string | null;
    service: string | null;
    severity: string | null;
    title: string;
  };
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** The incident's latest timeline events, oldest first (only the Claude planner reads them). */
  recentEvents?: Array<{ type: string; reason: string | null; at: number }>;
  /** The closest past incidents (same fingerprint or dedupe key), newest first, with what was done and how it ended. */
  pastIncidents?: Array<{ id: string; state: string; skill: string | null; outcome: string | null; at: number }>;
};

export type Plan = {
  skill: string;
  params: Record<string, unknown>;
  rationale: string;
  confidence: number;
  planner: "rules" | "claude";
  /** Why the planner fell back to rules, when it did. */
  fallback?: string;
};

export type Planner = {
  /** Which planner this is, for the metrics (a fallback's plan still names the planner that fell back). */
  name?: Plan["planner"];
  plan(ctx: PlanContext, skills: Skill[]): Promise<Plan | null>;
};

export function templateData(ctx: PlanContext): TemplateData {
  const i = ctx.incident;
  return {
    labels: ctx.labels,
    annotations: ctx.annotations,
    incident: {
      id: i.id,
      alertname: i.alertname,
      fingerprint: i.fingerprint,
      namespace: i.namespace,
      service: i.service,
      severity: i.severity,
      title: i.title,
    },
  };
}

/** A skill's `with:` parameters rendered for this incident; throws when a template has no value. */
export function renderParams(skill: Skill, ctx: PlanContext): Record<string, unknown> {
  return renderValue(skill.action.with, templateData(ctx)) as Record<string, unknown>;
}

/**
 * Deterministic: the best matching skill (priority, then specificity, then name) whose
 * parameters can be filled from this incident. A skill whose template needs a missing label is
 * skipped, with the reason kept in the rationale of the one chosen.
 */
export function planFromRules(ctx: PlanContext, skills: Skill[]): Plan | null {
  const skipped: string[] = [];
  for (const skill of rankSkills(skills, { alertname: ctx.incident.alertname, labels: ctx.labels })) {
    try {
      const params = renderParams(skill, ctx);
      const why = `matched ${skill.match.alertname.length ? `alertname ${ctx.incident.alertname}` : "labels"}${Object.keys(skill.match.labels).length ? ` and ${Object.keys(skill.match.labels).join(", ")}` : ""} (priority ${skill.match.priority})`;
      return {
        skill: skill.name,
        params,
        rationale: `${why}${skipped.length ? `; skipped ${skipped.join("; ")}` : ""}`,
        confidence: 1,
        planner: "rules",
      };
    } catch (err) {
      skipped.push(`${skill.name}: ${errorMessage(err)}`);
    }
  }
  return null;
}

export const rulesPlanner: Planner = { name: "rules", plan: async (ctx, skills) => planFromRules(ctx, skills) };
