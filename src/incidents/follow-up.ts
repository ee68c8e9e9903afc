import { appendEvent } from "../events/repo.ts";
import type { Store } from "../store/db.ts";
import type { IncidentRow } from "../store/schema.ts";
import type { Executor } from "../store/sql.ts";
import { approvalFor, pinParams } from "../skills/policy.ts";
import { inlineError, isInline, type InlineOutcome } from "../skills/inline.ts";
import { renderParams } from "../skills/planner.ts";
import { actionKind, type Skill } from "../skills/schema.ts";
import type { AnalysisOutcome } from "./analysis.ts";
import { limitsStop, type Guardrails } from "./guardrails.ts";
import { incidentContext, queueFixTask } from "./queueing.ts";
import { applyTransition } from "./service.ts";

// What follows an inline skill's run: its result on the timeline, then the incident moves on —
// to `verifying` when it applied, to a follow-up fix (a red probe hands over to a restart, a
// remote skill proposes another skill) that becomes the incident's plan, or to a person.

export type InlineRun = { skill: Skill; params: Record<string, unknown> };
export type FollowUpDeps = { dialect: Store["dialect"]; guardrails: Guardrails; fixPool: string };

const ENGINE = { actor: "pitcrew:analysis", channel: "engine" } as const;

/** The plan record stored on the incident (and in its `incident.planned` event). */
export type PlanRecord = {
  skill: string;
  params: Record<string, unknown>;
  rationale: string;
  confidence: number;
  planner: string;
  risk: string;
  approval: string;
  action: string;
  /** The skill runs in the control plane (probe, drift, http): a resumed analysis runs it again. */
  inline: boolean;
  fallback?: string;
  /** The inline skill whose result this plan follows. */
  after?: string;
};

export function parsePlanRecord(plan: string | null): Partial<PlanRecord> | null {
  if (!plan) return null;
  try {
    return JSON.parse(plan) as Partial<PlanRecord>;
  } catch {
    return null;
  }
}

/**
 * The incident's plan when it is an inline skill (older plan records, without the `inline` flag,
 * are judged by the skill of that name).
 */
export function inlinePlanOf(plan: string | null, skills: Skill[]): Partial<PlanRecord> | null {
  const p = parsePlanRecord(plan);
  if (!p) return null;
  if (p.inline !== undefined) return p.inline ? p : null;
  const skill = skills.find((s) => s.name === p.skill);
  return skill && isInline(skill) ? p : null;
}

/** Replaces the incident's plan; the caller's transaction also records why (`incident.planned`). */
export async function setPlan(
  trx: Executor,
  dialect: Store["dialect"],
  inc: IncidentRow,
  plan: PlanRecord,
  t: number,
): Promise<IncidentRow> {
  const text = JSON.stringify(plan);
  await trx.updateTable("incidents").set({ plan: text }).where("id", "=", inc.id).execute();
  await appendEvent(
    trx,
    dialect,
    { type: "incident.planned", incidentId: inc.id, ...ENGINE, reason: plan.rationale, data: plan, occurredAt: t },
    t,
  );
  return { ...inc, plan: text };
}

/** Why a follow-up runs, from what the failed skill really found (a probe: its target, status or error, latency). */
export function followUpRationale(run: InlineRun, result: InlineOutcome, next: Skill): string {
  const a = run.skill.action;
  if ("builtin" in a && a.builtin === "probe" && "details" in result) {
    const d = result.details;
    const target =
      typeof run.params.url === "string"
        ? run.params.url
        : typeof run.params.tcp === "string"
          ? `tcp ${run.params.tcp}`
          : "its target";
    const found =
      typeof d.status === "number"
        ? `HTTP ${d.status}${d.matched === false ? ", body did not match" : ""}`
        : typeof d.error === "string"
          ? d.error
          : result.summary;
    const latency = typeof d.latencyMs === "number" ? ` in ${d.latencyMs} ms` : "";
    return `probe of ${target} failed: ${found}${latency}; following with ${next.name}`;
  }
  return `${run.skill.name} failed: ${result.summary}; following with ${next.name}`;
}

/**
 * Records an inline skill's result and moves its `fixing` incident on, in the caller's
 * transaction (which has taken lockFixBudget: a follow-up is a new fix and passes the limits).
 */
export async function applyInlineResult(
  trx: Executor,
  deps: FollowUpDeps,
  incident: IncidentRow,
  run: InlineRun,
  result: InlineOutcome,
  skills: Skill[],
  t: number,
): Promise<AnalysisOutcome> {
  const { dialect } = deps;
  let inc = incident;
  const { skill } = run;
  if (result.kind === "applied") {
    await applyTransition(trx, dialect, inc, "verify.started", { ...ENGINE, reason: result.summary }, t);
    return "verifying";
  }
  const next =
    result.kind === "escalate" && skill.on_failure ? skills.find((x) => x.name === skill.on_failure) : undefined;
  if (next && !isInline(next)) {
    // Planned, policed and queued like any fix; one that must be approved before it runs goes
    // to a person (a before-merge approval still waits on its PR).
    let params: Record<string, unknown>;
    try {
      params = renderParams(next, incidentContext(inc));
    } catch (err) {
      await applyTransition(
        trx,
        dialect,
        inc,
        "escalate",
        { ...ENGINE, reason: `${result.summary}; ${next.name} cannot run: ${inlineError(err)}` },
        t,
      );
      return "escalated";
    }
    const approval = approvalFor(next, deps.guardrails.autoApproveMaxRisk);
    const when = approval.required ? approval.when : "none";
    const rationale = followUpRationale(run, result, next);
    const plan = {
      skill: next.name,
      params,
      rationale,
      confidence: 1,
      planner: "rules",
      risk: next.risk,
      approval: when,
      action: actionKind(next.action),
      inline: false,
      after: skill.name,
    };
    inc = await setPlan(trx, dialect, inc, plan, t);
    if (await limitsStop(trx, dialect, deps.guardrails, inc, t)) return "escalated";
    if (approval.required && approval.when === "before_run") {
      await applyTransition(
        trx,
        dialect,
        inc,
        "escalate",
        { ...ENGINE, reason: `${result.summary}; ${next.name} needs approval before it runs` },
        t,
      );
      return "escalated";
    }
    await queueFixTask(trx, dialect, inc, next, params, when, t, { pool: deps.fixPool, ...ENGINE });
    return "fixing";
  }
  if (result.kind === "delegate") {
    const target = skills.find((x) => x.name === result.skill);
    if (target && !isInline(target) && !approvalFor(target, deps.guardrails.autoApproveMaxRisk).required) {
      const params = pinParams(target, result.params, undefined, false).params;
      const rationale = `remote skill ${skill.name} proposed ${target.name}: ${result.summary}`;
      const plan = {
        skill: target.name,
        params,
        rationale,
        confidence: 1,
        planner: "remote",
        risk: target.risk,
        approval: "none",
        action: actionKind(target.action),
        inline: false,
        after: skill.name,
      };
      inc = await setPlan(trx, dialect, inc, plan, t);
      if (await limitsStop(trx, dialect, deps.guardrails, inc, t)) return "escalated";
      await queueFixTask(trx, dialect, inc, target, params, "none", t, { pool: deps.fixPool, ...ENGINE });
      return "fixing";
    }
    await applyTransition(
      trx,
      dialect,
      inc,
      "escalate",
      { ...ENGINE, reason: `remote skill proposed ${result.skill}, which cannot run unattended here` },
      t,
    );
    return "escalated";
  }
  await applyTransition(trx, dialect, inc, "escalate", { ...ENGINE, reason: result.summary }, t);
  return "escalated";
}
