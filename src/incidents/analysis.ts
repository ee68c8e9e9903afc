import type { TaskQueue } from "../bus/port.ts";
import { appendEvent } from "../events/repo.ts";
import { errorMessage, invalid, isAppError } from "../shared/errors.ts";
import { formatDuration, parseDuration } from "../shared/duration.ts";
import type { Logger } from "../shared/logger.ts";
import type { Store } from "../store/db.ts";
import type { Executor } from "../store/sql.ts";
import type { IncidentRow } from "../store/schema.ts";
import { getPause } from "../system/settings.ts";
import { enqueueTask } from "../tasks/service.ts";
import { CONTROL_POOL, createControlJobs, type ControlJob } from "../tasks/control-jobs.ts";
import { actionKind, type Risk, type Skill } from "../skills/schema.ts";
import { applyPolicy, approvalFor, pinParams } from "../skills/policy.ts";
import { inlineError, isInline, runInline, type InlineDeps, type InlineOutcome } from "../skills/inline.ts";
import { renderParams, templateData } from "../skills/planner.ts";
import { renderTemplate, renderValue } from "../skills/template.ts";
import type { Plan, PlanContext, Planner } from "../skills/planner.ts";
import { getIncident } from "./repo.ts";
import { applyTransition } from "./service.ts";

export type Guardrails = {
  dryRun: boolean;
  maxPrsPerHour: number;
  maxPrsPerDay: number;
  maxFixesPerNamespace: number;
  autoApproveMaxRisk: Risk;
};

export type AnalysisDeps = {
  store: Store;
  queue: TaskQueue;
  log: Logger;
  now: () => number;
  skills: () => Skill[];
  planner: Planner;
  guardrails: Guardrails;
  /** The runner pool that fix tasks go to (RUNNER_POOL). */
  fixPool?: string;
  /** What inline skills (probe, drift, http) need. */
  inline?: InlineDeps;
  onEnqueued?: () => void;
};

export const ANALYSIS_POOL = CONTROL_POOL;
const FIX_STATES = ["fixing", "proposed", "approved", "verifying"];
const ENGINE = { actor: "pitcrew:analysis", channel: "engine" } as const;

export type AnalysisOutcome = "fixing" | "verifying" | "awaiting_approval" | "escalated" | "suppressed" | "deferred" | "skipped";

export function createAnalysisWorker(deps: AnalysisDeps) {
  const { store } = deps;
  const log = deps.log.child({ component: "analysis" });

  async function countFixTasksSince(trx: Executor, since: number): Promise<number> {
    const r = await trx.selectFrom("tasks").select((eb) => eb.fn.countAll<number>().as("n")).where("kind", "in", ["skill", "agent"]).where("created_at", ">=", since).executeTakeFirstOrThrow();
    return Number(r.n);
  }

  async function countFixesInNamespace(trx: Executor, namespace: string, except: string): Promise<number> {
    const r = await trx
      .selectFrom("incidents")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("namespace", "=", namespace)
      .where("state", "in", FIX_STATES)
      .where("id", "!=", except)
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  async function guardrail(trx: Executor, inc: IncidentRow, name: string, reason: string, now: number, data: Record<string, unknown> = {}) {
    await appendEvent(trx, store.dialect, { type: `guardrail.${name}`, incidentId: inc.id, ...ENGINE, reason, data, occurredAt: now }, now);
  }

  const contextOf = incidentContext;

  /**
   * The rate and namespace guardrails every new fix passes: when one stops it, its event is
   * written and the incident escalated, and the answer is true.
   */
  async function limitsStop(trx: Executor, inc: IncidentRow, t: number): Promise<boolean> {
    const g = deps.guardrails;
    const hour = await countFixTasksSince(trx, t - 3_600_000);
    if (hour >= g.maxPrsPerHour) return stop(trx, inc, t, "max_prs_per_hour", `${hour} fixes in the last hour (MAX_PRS_PER_HOUR ${g.maxPrsPerHour})`, "hourly fix limit reached", { count: hour });
    const day = await countFixTasksSince(trx, t - 86_400_000);
    if (day >= g.maxPrsPerDay) return stop(trx, inc, t, "max_prs_per_day", `${day} fixes in the last day (MAX_PRS_PER_DAY ${g.maxPrsPerDay})`, "daily fix limit reached", { count: day });
    if (!inc.namespace) return false;
    const busy = await countFixesInNamespace(trx, inc.namespace, inc.id);
    if (busy < g.maxFixesPerNamespace) return false;
    return stop(trx, inc, t, "namespace_busy", `${busy} fixes already under way in ${inc.namespace} (MAX_FIXES_PER_NAMESPACE ${g.maxFixesPerNamespace})`, `too many fixes under way in ${inc.namespace}`, { count: busy, namespace: inc.namespace });
  }

  async function stop(trx: Executor, inc: IncidentRow, t: number, name: string, why: string, reason: string, data: Record<string, unknown>): Promise<true> {
    await guardrail(trx, inc, name, why, t, data);
    await applyTransition(trx, store.dialect, inc, "escalate", { ...ENGINE, reason }, t);
    return true;
  }

  /** The incident with its recent timeline and the closest past incidents, for the planner. */
  async function historyOf(inc: IncidentRow): Promise<PlanContext> {
    const events = await store.db.selectFrom("events").select(["type", "reason", "occurred_at"]).where("incident_id", "=", inc.id).orderBy("seq", "desc").limit(20).execute();
    const past = await store.db
      .selectFrom("incidents")
      .select(["id", "state", "plan", "updated_at"])
      .where("id", "!=", inc.id)
      .where((eb) => (inc.dedupe_key ? eb.or([eb("fingerprint", "=", inc.fingerprint), eb("dedupe_key", "=", inc.dedupe_key)]) : eb("fingerprint", "=", inc.fingerprint)))
      .orderBy("id", "desc")
      .limit(5)
      .execute();
    return {
      ...contextOf(inc),
      recentEvents: events.reverse().map((e) => ({ type: e.type, reason: e.reason, at: Number(e.occurred_at) })),
      pastIncidents: past.map((p) => ({ id: p.id, state: p.state, skill: p.plan ? ((JSON.parse(p.plan) as { skill?: string }).skill ?? null) : null, outcome: p.state, at: Number(p.updated_at) })),
    };
  }

  /** Runs the planner and the policy for one incident. Safe to repeat: only a `detected` incident is analysed. */
  async function analyze(incidentId: string): Promise<AnalysisOutcome> {
    const now = deps.now();
    const first = await getIncident(store.db, incidentId);
    if (!first || first.state !== "detected") return "skipped";

    const pause = await getPause(store.db);
    if (pause.paused) {
      await store.db.transaction().execute((trx) => guardrail(trx, first, "paused", `automation is paused${pause.by ? ` by ${pause.by}` : ""}; analysis resumes on resume`, now));
      return "deferred";
    }

    const analyzing = await store.db.transaction().execute((trx) => applyTransition(trx, store.dialect, first, "analysis.started", { ...ENGINE, reason: "analysis started" }, now));
    const skills = deps.skills();
    let plan: Plan | null;
    try {
      plan = await deps.planner.plan(await historyOf(analyzing), skills);
    } catch (err) {
      log.error({ err: { message: errorMessage(err) }, incidentId }, "planner failed");
      plan = null;
    }

    let inlineRun: { skill: Skill; params: Record<string, unknown> } | undefined;
    const outcome = await store.db.transaction().execute(async (trx): Promise<AnalysisOutcome> => {
      const t = deps.now();
      let inc = (await getIncident(trx, incidentId))!;
      if (inc.state !== "analyzing") return "skipped";
      if (!plan) {
        await applyTransition(trx, store.dialect, inc, "escalate", { ...ENGINE, reason: "no skill matches this incident" }, t);
        return "escalated";
      }
      const skill = skills.find((s) => s.name === plan!.skill)!;
      // A model chooses the skill; the author's literal values, and for unattended skills every
      // value, come from the skill and the alert, not from the model.
      const policed = applyPolicy(plan, skill, contextOf(inc), deps.guardrails.autoApproveMaxRisk);
      const approval = policed.approval;
      plan = policed.plan;
      const needsApproval = approval.required;
      const planRecord = { ...plan, risk: skill.risk, approval: approval.required ? approval.when : "none", action: actionKind(skill.action) };
      await trx.updateTable("incidents").set({ plan: JSON.stringify(planRecord) }).where("id", "=", inc.id).execute();
      inc = { ...inc, plan: JSON.stringify(planRecord) };
      await appendEvent(trx, store.dialect, { type: "incident.planned", incidentId: inc.id, ...ENGINE, reason: plan.rationale, data: planRecord, occurredAt: t }, t);

      if (deps.guardrails.dryRun) {
        await guardrail(trx, inc, "dry_run", "DRY_RUN is on: the plan is recorded, nothing is changed", t, { skill: plan.skill });
        await applyTransition(trx, store.dialect, inc, "suppress", { ...ENGINE, reason: "dry run" }, t);
        return "suppressed";
      }
      if (await limitsStop(trx, inc, t)) return "escalated";
      if (needsApproval && skill.approval === "before_run") {
        const expires = t + 3_600_000;
        await trx
          .insertInto("approvals")
          .values({ id: `apr_${inc.id.slice(4)}_${inc.version}`, incident_id: inc.id, task_id: null, state: "pending", risk: skill.risk, action: JSON.stringify(planRecord), requested_at: t, expires_at: expires, decided_at: null, decided_by: null, channel: null, reason: null, chat_id: null, message_id: null })
          .execute();
        await appendEvent(trx, store.dialect, { type: "approval.requested", incidentId: inc.id, ...ENGINE, reason: `${skill.risk}-risk skill ${skill.name} needs approval before it runs`, data: { expiresAt: expires, within: formatDuration(3_600_000) }, occurredAt: t }, t);
        await applyTransition(trx, store.dialect, inc, "fix.proposed", { ...ENGINE, reason: "awaiting approval before running the fix" }, t);
        return "awaiting_approval";
      }
      if (isInline(skill)) {
        await applyTransition(trx, store.dialect, inc, "fix.started", { ...ENGINE, reason: `running ${skill.name} inline` }, t);
        inlineRun = { skill, params: plan.params };
        return "fixing";
      }
      await queueFix(trx, inc, skill, plan.params, planRecord.approval, t);
      await applyTransition(trx, store.dialect, inc, "fix.started", { ...ENGINE, reason: `running ${skill.name}` }, t);
      return "fixing";
    });
    if (outcome !== "fixing" || !inlineRun) return outcome;
    return finishInline(incidentId, inlineRun.skill, inlineRun.params, skills);
  }

  async function queueFix(trx: Executor, inc: IncidentRow, skill: Skill, params: Record<string, unknown>, approval: string, t: number) {
    await queueFixTask(trx, store.dialect, inc, skill, params, approval, t, { pool: deps.fixPool ?? "default", ...ENGINE });
  }

  /** Runs an inline skill outside any transaction, then records what it found. */
  async function finishInline(incidentId: string, skill: Skill, params: Record<string, unknown>, skills: Skill[]): Promise<AnalysisOutcome> {
    const inc0 = (await getIncident(store.db, incidentId))!;
    let result: InlineOutcome;
    try {
      result = await runInline(skill, params, { id: inc0.id, title: inc0.title, alertname: inc0.alertname, namespace: inc0.namespace, service: inc0.service, severity: inc0.severity, labels: JSON.parse(inc0.labels) }, deps.inline ?? { secrets: () => undefined });
    } catch (err) {
      result = { kind: "escalate", summary: `${skill.name} failed: ${inlineError(err)}`, details: { code: isAppError(err) ? err.code : "error" } };
    }
    return store.db.transaction().execute(async (trx): Promise<AnalysisOutcome> => {
      const t = deps.now();
      const inc = (await getIncident(trx, incidentId))!;
      await appendEvent(trx, store.dialect, { type: "skill.result", incidentId, ...ENGINE, reason: result.summary, data: { skill: skill.name, kind: result.kind, ...("details" in result ? { details: result.details } : {}) }, occurredAt: t }, t);
      if (inc.state !== "fixing") return "skipped";
      if (result.kind === "applied") {
        await applyTransition(trx, store.dialect, inc, "verify.started", { ...ENGINE, reason: result.summary }, t);
        return "verifying";
      }
      const next = result.kind === "escalate" && skill.on_failure ? skills.find((x) => x.name === skill.on_failure) : undefined;
      if (next && !isInline(next)) {
        // e.g. a red probe hands over to a restart: planned, policed and queued like any fix.
        let params: Record<string, unknown>;
        try {
          params = renderParams(next, contextOf(inc));
        } catch (err) {
          await applyTransition(trx, store.dialect, inc, "escalate", { ...ENGINE, reason: `${result.summary}; ${next.name} cannot run: ${inlineError(err)}` }, t);
          return "escalated";
        }
        const approval = approvalFor(next, deps.guardrails.autoApproveMaxRisk);
        await appendEvent(trx, store.dialect, { type: "incident.planned", incidentId, ...ENGINE, reason: `${skill.name} reported failure; following with ${next.name}`, data: { skill: next.name, params, planner: "rules", risk: next.risk, approval: approval.required ? approval.when : "none" }, occurredAt: t }, t);
        // The follow-up is a new fix: the same limits apply, and one that must be approved
        // before it runs goes to a person (a before-merge approval still waits on its PR).
        if (await limitsStop(trx, inc, t)) return "escalated";
        if (approval.required && approval.when === "before_run") {
          await applyTransition(trx, store.dialect, inc, "escalate", { ...ENGINE, reason: `${result.summary}; ${next.name} needs approval before it runs` }, t);
          return "escalated";
        }
        await queueFix(trx, inc, next, params, approval.required ? approval.when : "none", t);
        return "fixing";
      }
      if (result.kind === "delegate") {
        const target = skills.find((x) => x.name === result.skill);
        if (target && !isInline(target)) {
          const approval = approvalFor(target, deps.guardrails.autoApproveMaxRisk);
          if (!approval.required) {
            const pinned = pinParams(target, result.params, undefined, false).params;
            if (await limitsStop(trx, inc, t)) return "escalated";
            await queueFix(trx, inc, target, pinned, "none", t);
            return "fixing";
          }
        }
        await applyTransition(trx, store.dialect, inc, "escalate", { ...ENGINE, reason: `remote skill proposed ${result.skill}, which cannot run unattended here` }, t);
        return "escalated";
      }
      await applyTransition(trx, store.dialect, inc, "escalate", { ...ENGINE, reason: result.summary }, t);
      return "escalated";
    });
  }

  /** The `incident.analyze` control job: analyse; when it fails for good, hand the incident to a human. */
  const job: ControlJob = {
    async run(payload) {
      if (typeof payload.incidentId !== "string") throw invalid("analysis.bad_job", "analysis job without an incidentId");
      return { outcome: await analyze(payload.incidentId) };
    },
    async onGiveUp(trx, payload, err, _job, t) {
      const inc = typeof payload.incidentId === "string" ? await getIncident(trx, payload.incidentId) : undefined;
      if (inc && (inc.state === "detected" || inc.state === "analyzing")) {
        await applyTransition(trx, store.dialect, inc, "escalate", { ...ENGINE, reason: `analysis failed: ${errorMessage(err).slice(0, 500)}` }, t);
      }
    },
  };
  const jobs = createControlJobs({ store, queue: deps.queue, log, now: deps.now, onDone: deps.onEnqueued }, { "incident.analyze": job });

  return {
    analyze,
    job,
    /** Handles a delivery of the control pool (analysis jobs only; serve.ts dispatches every kind). */
    handle: jobs.handle,
    start: jobs.start,
  };
}

/** What the planner and the templates know about an incident. */
export function incidentContext(inc: IncidentRow): PlanContext {
  return {
    incident: { id: inc.id, alertname: inc.alertname ?? "", fingerprint: inc.fingerprint, namespace: inc.namespace, service: inc.service, severity: inc.severity, title: inc.title },
    labels: JSON.parse(inc.labels) as Record<string, string>,
    annotations: JSON.parse(inc.annotations) as Record<string, string>,
  };
}

/**
 * Queues the fix with everything the runner needs, rendered now: the runner reads no skills
 * folder and runs exactly the plan that was decided (and, later, approved). Returns the task id.
 */
export async function queueFixTask(
  trx: Executor,
  dialect: Store["dialect"],
  inc: IncidentRow,
  skill: Skill,
  params: Record<string, unknown>,
  approval: string,
  t: number,
  by: { pool: string; actor: string; channel: string },
): Promise<string> {
  const kind = actionKind(skill.action) === "agent" ? "agent" : "skill";
  const data = templateData(incidentContext(inc));
  const a = skill.action;
  const action =
    "builtin" in a
      ? { builtin: a.builtin }
      : "patch" in a
        ? { patch: renderValue(a.patch, data) }
        : "agent" in a
          ? { agent: { ...a.agent, prompt: renderTemplate(a.agent.prompt, data) } }
          : { http: a.http };
  return enqueueTask(
    trx,
    dialect,
    {
      kind,
      pool: by.pool,
      payload: {
        incidentId: inc.id,
        skill: skill.name,
        title: inc.title,
        params,
        approval,
        action,
        rationale: inc.plan ? ((JSON.parse(inc.plan) as { rationale?: string }).rationale ?? null) : null,
        // What the agent executor reads for agent skills.
        ...("agent" in action && action.agent
          ? { prompt: action.agent.prompt, agent: action.agent.command, timeoutMs: parseDuration(action.agent.timeout) }
          : {}),
      },
      incidentId: inc.id,
      createdBy: by.actor,
      channel: by.channel,
      idempotencyKey: `fix:${inc.id}:${inc.version}:${skill.name}`,
    },
    t,
  );
}

/** After a resume: queue analysis again for every incident that waited in `detected`. */
/**
 * Queues an incident's analysis job through the outbox, in the caller's transaction. One job per
 * incident version; `round` tells apart a deliberate re-analysis of the same version (a resume).
 */
export function queueAnalysis(
  trx: Executor,
  dialect: Store["dialect"],
  incident: Pick<IncidentRow, "id" | "version">,
  by: { actor: string; channel: string },
  now: number,
  round?: string | number,
): Promise<string> {
  const key = `analyze:${incident.id}:${incident.version}${round === undefined ? "" : `:${round}`}`;
  return enqueueTask(trx, dialect, { kind: "incident.analyze", pool: ANALYSIS_POOL, payload: { incidentId: incident.id }, incidentId: incident.id, createdBy: by.actor, channel: by.channel, idempotencyKey: key }, now);
}

export async function requeueDetected(store: Store, now: number, actor: { actor: string; channel: string }, only: { namespace?: string } = {}): Promise<number> {
  let q = store.db.selectFrom("incidents").selectAll().where("state", "=", "detected");
  if (only.namespace) q = q.where("namespace", "=", only.namespace);
  const rows = await q.orderBy("id").limit(1000).execute();
  let n = 0;
  for (const inc of rows) {
    await store.db.transaction().execute((trx) => queueAnalysis(trx, store.dialect, inc, actor, now, now));
    n += 1;
  }
  return n;
}
