import { readFileSync } from "node:fs";
import type { Config } from "../config/load.ts";
import { parseAlertmanagerJson } from "../alerts/json.ts";
import { normalizeAlert } from "../alerts/normalize.ts";
import { AlertmanagerPayload } from "../alerts/payload.ts";
import { describePayloadProblem } from "../alerts/route.ts";
import { openKeyFor } from "../alerts/intake.ts";
import type { Logger } from "../shared/logger.ts";
import { loadSkills } from "../skills/load.ts";
import { applyPolicy } from "../skills/policy.ts";
import type { PlanContext, Planner } from "../skills/planner.ts";

export type ReplayResult = {
  alert: { alertname: string; status: string; fingerprint: string };
  incident: {
    title: string;
    namespace: string | null;
    service: string | null;
    severity: string | null;
    dedupeKey: string | null;
  };
  plan: null | {
    skill: string;
    params: Record<string, unknown>;
    rationale: string;
    confidence: number;
    planner: string;
    fallback?: string;
    risk: string;
    approval: string;
  };
  note?: string;
};

/**
 * `pitcrew replay <alert.json>`: what Pitcrew would do with this AlertManager payload — the
 * incident it would open and the plan — without touching the database, the queue or any repo.
 */
export async function replay(file: string, config: Config, planner: Planner, log: Logger): Promise<ReplayResult[]> {
  const raw = parseAlertmanagerJson(readFileSync(file, "utf8"));
  const parsed = AlertmanagerPayload.safeParse(raw);
  if (!parsed.success) throw describePayloadProblem(raw, parsed.error);
  const { skills, problems } = loadSkills(config.skillsDir);
  for (const p of problems) log.warn({ problem: `${p.file}:${p.line}: ${p.message}` }, "skill not loaded");
  const results: ReplayResult[] = [];
  for (const a of parsed.data.alerts) {
    const n = normalizeAlert(a, config.labels);
    const { key } = openKeyFor(n, skills);
    const base = {
      alert: { alertname: n.alertname, status: n.status, fingerprint: n.fingerprint },
      incident: {
        title: n.title,
        namespace: n.namespace,
        service: n.service,
        severity: n.severity,
        dedupeKey: key.startsWith("d:") ? key : null,
      },
    };
    if (n.status === "resolved") {
      results.push({ ...base, plan: null, note: "a resolved alert closes its open incident; nothing is planned" });
      continue;
    }
    const ctx: PlanContext = {
      incident: {
        id: "inc_replay",
        alertname: n.alertname,
        fingerprint: n.fingerprint,
        namespace: n.namespace,
        service: n.service,
        severity: n.severity,
        title: n.title,
      },
      labels: n.labels,
      annotations: n.annotations,
    };
    const chosen = await planner.plan(ctx, skills);
    if (!chosen) {
      results.push({ ...base, plan: null, note: "no skill matches: the incident would be escalated" });
      continue;
    }
    const skill = skills.find((s) => s.name === chosen.skill)!;
    const { plan, approval } = applyPolicy(chosen, skill, ctx, config.guardrails.autoApproveMaxRisk);
    results.push({
      ...base,
      plan: { ...plan, risk: skill.risk, approval: approval.required ? approval.when : "none" },
    });
  }
  return results;
}

export function formatReplay(results: ReplayResult[]): string {
  const out: string[] = [];
  for (const r of results) {
    out.push(`${r.alert.alertname} (${r.alert.status}, fingerprint ${r.alert.fingerprint})`);
    out.push(`  incident: ${r.incident.title}`);
    out.push(
      `    namespace ${r.incident.namespace ?? "-"}, service ${r.incident.service ?? "-"}, severity ${r.incident.severity ?? "-"}${r.incident.dedupeKey ? `, dedupe ${r.incident.dedupeKey}` : ""}`,
    );
    if (r.plan) {
      out.push(
        `  plan: ${r.plan.skill} (planner ${r.plan.planner}${r.plan.fallback ? `, fell back: ${r.plan.fallback}` : ""}, confidence ${r.plan.confidence})`,
      );
      out.push(`    params ${JSON.stringify(r.plan.params)}`);
      out.push(`    why: ${r.plan.rationale}`);
      out.push(
        `    risk ${r.plan.risk}; approval ${r.plan.approval === "none" ? "not needed" : `needed ${r.plan.approval.replace("_", " ")}`}`,
      );
    } else out.push(`  plan: none — ${r.note}`);
  }
  return out.join("\n");
}
