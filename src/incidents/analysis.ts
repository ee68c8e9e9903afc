import type { TaskQueue } from "../bus/port.ts";
import { appendEvent } from "../events/repo.ts";
import { errorMessage, invalid, isAppError } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import type { Pacer } from "../shared/pacer.ts";
import type { Metrics } from "../shared/metrics.ts";
import type { Store } from "../store/db.ts";
import { isDbUnavailable, isRetryableDbError } from "../store/errors.ts";
import type { IncidentRow } from "../store/schema.ts";
import { getPause } from "../system/settings.ts";
import { createControlJobs, type ControlJob } from "../tasks/control-jobs.ts";
import { requestRunApproval } from "../approvals/requests.ts";
import { actionKind, type Skill } from "../skills/schema.ts";
import { applyPolicy } from "../skills/policy.ts";
import { inlineError, isInline, runInline, type InlineDeps, type InlineOutcome } from "../skills/inline.ts";
import type { Plan, PlanContext, Planner } from "../skills/planner.ts";
import { applyInlineResult, inlinePlanOf, parsePlanRecord, setPlan, type InlineRun } from "./follow-up.ts";
import { guardrailEvent, limitsStop, lockFixBudget, type Guardrails } from "./guardrails.ts";
import { incidentContext, queueFixTask } from "./queueing.ts";
import { getIncident } from "./repo.ts";
import { applyTransition } from "./service.ts";

export type { Guardrails } from "./guardrails.ts";
export { ANALYSIS_POOL, incidentContext, queueAnalysis, queueFixTask, requeueDetected } from "./queueing.ts";

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
  metrics?: Pick<Metrics, "analysisDuration">;
  /**
   * Runs the parts of an analysis that use the store when their turn comes: during an alert storm
   * they take turns with the intake (its callers wait on the answer; analysis is queued work).
   */
  pacer?: Pacer;
};

const ENGINE = { actor: "pitcrew:analysis", channel: "engine" } as const;

export type AnalysisOutcome =
  | "fixing"
  | "verifying"
  | "awaiting_approval"
  | "escalated"
  | "suppressed"
  | "deferred"
  | "skipped";
/** What an analysis job did; stored as the job's result. */
export type AnalysisResult = {
  outcome: AnalysisOutcome;
  resumed?: true;
  inline?: { skill: string; kind: InlineOutcome["kind"]; summary: string };
};

/** An error worth another delivery of the job: a store that is away or busy, a dependency that said "later". */
function isRetryable(err: unknown): boolean {
  return isAppError(err) ? err.retryable : isDbUnavailable(err) || isRetryableDbError(err);
}

export function createAnalysisWorker(deps: AnalysisDeps) {
  const { store } = deps;
  const log = deps.log.child({ component: "analysis" });
  const pace = <T>(work: () => Promise<T>): Promise<T> => (deps.pacer ? deps.pacer.run(work) : work());
  const followUps = { dialect: store.dialect, guardrails: deps.guardrails, fixPool: deps.fixPool ?? "default" };

  /** The incident with its recent timeline and the closest past incidents, for the planner. */
  async function historyOf(inc: IncidentRow): Promise<PlanContext> {
    const events = await store.db
      .selectFrom("events")
      .select(["type", "reason", "occurred_at"])
      .where("incident_id", "=", inc.id)
      .orderBy("seq", "desc")
      .limit(20)
      .execute();
    const past = await store.db
      .selectFrom("incidents")
      .select(["id", "state", "plan", "updated_at"])
      .where("id", "!=", inc.id)
      .where((eb) =>
        inc.dedupe_key
          ? eb.or([eb("fingerprint", "=", inc.fingerprint), eb("dedupe_key", "=", inc.dedupe_key)])
          : eb("fingerprint", "=", inc.fingerprint),
      )
      .orderBy("id", "desc")
      .limit(5)
      .execute();
    return {
      ...incidentContext(inc),
      recentEvents: events.reverse().map((e) => ({ type: e.type, reason: e.reason, at: Number(e.occurred_at) })),
      pastIncidents: past.map((p) => ({
        id: p.id,
        state: p.state,
        skill: parsePlanRecord(p.plan)?.skill ?? null,
        outcome: p.state,
        at: Number(p.updated_at),
      })),
    };
  }

  /**
   * What an analysis reads and writes before the planner is asked: the incident, the pause, the
   * move to `analyzing` and the history. Either the job's result already, or what planning needs.
   */
  async function begin(
    incidentId: string,
  ): Promise<
    | { done: AnalysisResult }
    | { resume: IncidentRow; plan: NonNullable<ReturnType<typeof inlinePlanOf>> }
    | { first: IncidentRow; analyzing: IncidentRow; history: PlanContext }
  > {
    const first = await getIncident(store.db, incidentId);
    if (!first || !["detected", "analyzing", "fixing"].includes(first.state)) return { done: { outcome: "skipped" } };
    const inlinePlan = first.state === "fixing" ? inlinePlanOf(first.plan, deps.skills()) : null;
    if (first.state === "fixing" && !inlinePlan) return { done: { outcome: "skipped" } };

    const now = deps.now();
    const pause = await getPause(store.db);
    if (pause.paused) {
      const why = `automation is paused${pause.by ? ` by ${pause.by}` : ""}; analysis resumes on resume`;
      await store.db.transaction().execute((trx) => guardrailEvent(trx, store.dialect, first, "paused", why, now));
      return { done: { outcome: "deferred" } };
    }
    if (first.state === "fixing") return { resume: first, plan: inlinePlan! };

    const analyzing =
      first.state === "detected"
        ? await store.db
            .transaction()
            .execute((trx) =>
              applyTransition(
                trx,
                store.dialect,
                first,
                "analysis.started",
                { ...ENGINE, reason: "analysis started" },
                now,
              ),
            )
        : first;
    if (first.state === "analyzing") await resumed(first, "analysis resumed: an earlier attempt did not finish", now);
    // A store error here is not "no skill matches": it throws, and the job is delivered again.
    return { first, analyzing, history: await historyOf(analyzing) };
  }

  /**
   * Plans and applies the policy for one incident, or resumes the work an earlier attempt left:
   * a `detected` incident is analysed, one still `analyzing` (the earlier attempt failed or was
   * cut off) is planned again, and one `fixing` with an inline plan whose result was never
   * recorded runs that skill again. Anything else is skipped. A duplicate run changes nothing:
   * every outcome is applied only to the incident version it started from.
   *
   * The parts that use the store take their turns with the alert intake during a storm (`pace`);
   * the planner (a model's answer may take seconds) and inline skills run outside them.
   */
  async function run(incidentId: string): Promise<AnalysisResult> {
    const begun = await pace(() => begin(incidentId));
    if ("done" in begun) return begun.done;
    if ("resume" in begun) return resumeInline(begun.resume, begun.plan);
    const { first, analyzing, history } = begun;
    const skills = deps.skills();
    const started = performance.now();
    let plan: Plan | null;
    let failure: string | undefined;
    try {
      plan = await deps.planner.plan(history, skills);
    } catch (err) {
      if (isRetryable(err)) throw err;
      log.error({ err: { message: errorMessage(err) }, incidentId }, "planner failed");
      plan = null;
      failure = `planner failed: ${errorMessage(err).slice(0, 500)}`;
    }

    let inlineRun: (InlineRun & { version: number }) | undefined;
    const decide = () =>
      store.db.transaction().execute(async (trx): Promise<AnalysisOutcome> => {
        const t = deps.now();
        await lockFixBudget(trx, store.dialect, t);
        let inc = await getIncident(trx, incidentId);
        if (inc?.state !== "analyzing" || inc.version !== analyzing.version) return "skipped";
        const skill = plan ? skills.find((s) => s.name === plan!.skill) : undefined;
        if (!plan || !skill) {
          const reason =
            failure ??
            (plan ? `the planner chose ${plan.skill}, which is not loaded` : "no skill matches this incident");
          await applyTransition(trx, store.dialect, inc, "escalate", { ...ENGINE, reason }, t);
          return "escalated";
        }
        // A model chooses the skill; the author's literal values, and for unattended skills every
        // value, come from the skill and the alert, not from the model.
        const policed = applyPolicy(plan, skill, incidentContext(inc), deps.guardrails.autoApproveMaxRisk);
        const approval = policed.approval;
        plan = policed.plan;
        const when = approval.required ? approval.when : "none";
        const planRecord = {
          ...plan,
          risk: skill.risk,
          approval: when,
          action: actionKind(skill.action),
          inline: isInline(skill),
        };
        inc = await setPlan(trx, store.dialect, inc, planRecord, t);

        if (deps.guardrails.dryRun) {
          await guardrailEvent(
            trx,
            store.dialect,
            inc,
            "dry_run",
            "DRY_RUN is on: the plan is recorded, nothing is changed",
            t,
            { skill: plan.skill },
          );
          await applyTransition(trx, store.dialect, inc, "suppress", { ...ENGINE, reason: "dry run" }, t);
          return "suppressed";
        }
        if (await limitsStop(trx, store.dialect, deps.guardrails, inc, t)) return "escalated";
        if (approval.required && skill.approval === "before_run") {
          await requestRunApproval(trx, store.dialect, inc, planRecord, ENGINE, t);
          return "awaiting_approval";
        }
        if (isInline(skill)) {
          const fixing = await applyTransition(
            trx,
            store.dialect,
            inc,
            "fix.started",
            { ...ENGINE, reason: `running ${skill.name} inline` },
            t,
          );
          inlineRun = { skill, params: plan.params, version: fixing.version };
          return "fixing";
        }
        await queueFixTask(trx, store.dialect, inc, skill, plan.params, when, t, {
          pool: followUps.fixPool,
          ...ENGINE,
        });
        await applyTransition(
          trx,
          store.dialect,
          inc,
          "fix.started",
          { ...ENGINE, reason: `running ${skill.name}` },
          t,
        );
        return "fixing";
      });
    const outcome = await pace(decide);
    const planner = deps.planner.name ?? plan?.planner ?? "rules";
    deps.metrics?.analysisDuration.observe({ planner }, (performance.now() - started) / 1000);
    const result: AnalysisResult = { outcome, ...(first.state === "analyzing" ? { resumed: true as const } : {}) };
    if (outcome !== "fixing" || !inlineRun) return result;
    return { ...result, ...(await finishInline(incidentId, inlineRun.version, inlineRun, skills)) };
  }

  async function resumed(inc: IncidentRow, reason: string, now: number) {
    await appendEvent(
      store.db,
      store.dialect,
      {
        type: "incident.resumed",
        incidentId: inc.id,
        ...ENGINE,
        reason,
        data: { state: inc.state, requeues: inc.requeues },
        occurredAt: now,
      },
      now,
    );
  }

  /** An inline skill whose run never recorded its result (probe, drift and http skills are safe to repeat). */
  async function resumeInline(
    inc: IncidentRow,
    plan: NonNullable<ReturnType<typeof parsePlanRecord>>,
  ): Promise<AnalysisResult> {
    const now = deps.now();
    const skills = deps.skills();
    const skill = skills.find((s) => s.name === plan.skill);
    if (!skill || !isInline(skill)) {
      const outcome = await store.db.transaction().execute(async (trx): Promise<AnalysisOutcome> => {
        const cur = await getIncident(trx, inc.id);
        if (cur?.state !== "fixing" || cur.version !== inc.version) return "skipped";
        const reason = `the inline run of ${plan.skill ?? "its skill"} did not finish, and that skill is no longer loaded as an inline skill`;
        await applyTransition(trx, store.dialect, cur, "escalate", { ...ENGINE, reason }, now);
        return "escalated";
      });
      return { outcome, resumed: true };
    }
    await resumed(inc, `running ${skill.name} again: an earlier run did not record its result`, now);
    return {
      resumed: true,
      ...(await finishInline(inc.id, inc.version, { skill, params: plan.params ?? {} }, skills)),
    };
  }

  /**
   * Runs an inline skill outside any transaction, then records what it found and moves the
   * incident on, if it is still the `fixing` version the run started from.
   */
  async function finishInline(
    incidentId: string,
    version: number,
    run: InlineRun,
    skills: Skill[],
  ): Promise<Omit<AnalysisResult, "resumed">> {
    const inc0 = (await getIncident(store.db, incidentId))!;
    let result: InlineOutcome;
    try {
      const about = {
        id: inc0.id,
        title: inc0.title,
        alertname: inc0.alertname,
        namespace: inc0.namespace,
        service: inc0.service,
        severity: inc0.severity,
        labels: JSON.parse(inc0.labels),
      };
      result = await runInline(run.skill, run.params, about, deps.inline ?? { secrets: () => undefined });
    } catch (err) {
      result = {
        kind: "escalate",
        summary: `${run.skill.name} failed: ${inlineError(err)}`,
        details: { code: isAppError(err) ? err.code : "error" },
      };
    }
    const outcome = await store.db.transaction().execute(async (trx): Promise<AnalysisOutcome> => {
      const t = deps.now();
      await lockFixBudget(trx, store.dialect, t);
      const inc = await getIncident(trx, incidentId);
      // What the skill really found, whatever happens next.
      const data = {
        skill: run.skill.name,
        kind: result.kind,
        params: run.params,
        ...("details" in result ? { details: result.details } : {}),
      };
      await appendEvent(
        trx,
        store.dialect,
        { type: "skill.result", incidentId, ...ENGINE, reason: result.summary, data, occurredAt: t },
        t,
      );
      if (inc?.state !== "fixing" || inc.version !== version) return "skipped";
      return applyInlineResult(trx, followUps, inc, run, result, skills, t);
    });
    return { outcome, inline: { skill: run.skill.name, kind: result.kind, summary: result.summary } };
  }

  /** The `incident.analyze` control job: analyse or resume; when it fails for good, hand the incident to a human. */
  const job: ControlJob = {
    async run(payload) {
      if (typeof payload.incidentId !== "string")
        throw invalid("analysis.bad_job", "analysis job without an incidentId");
      return run(payload.incidentId);
    },
    async onGiveUp(trx, payload, err, _job, t) {
      const inc = typeof payload.incidentId === "string" ? await getIncident(trx, payload.incidentId) : undefined;
      if (!inc) return;
      const why = errorMessage(err).slice(0, 500);
      if (inc.state === "detected" || inc.state === "analyzing") {
        await applyTransition(trx, store.dialect, inc, "escalate", { ...ENGINE, reason: `analysis failed: ${why}` }, t);
      } else if (inc.state === "fixing" && inlinePlanOf(inc.plan, deps.skills())) {
        await applyTransition(
          trx,
          store.dialect,
          inc,
          "escalate",
          { ...ENGINE, reason: `${parsePlanRecord(inc.plan)?.skill ?? "the inline skill"} failed: ${why}` },
          t,
        );
      }
    },
  };
  const jobs = createControlJobs(
    { store, queue: deps.queue, log, now: deps.now, onDone: deps.onEnqueued },
    { "incident.analyze": job },
  );

  return {
    /** Analyses (or resumes) one incident now; the answer says where it went. */
    analyze: async (incidentId: string): Promise<AnalysisOutcome> => (await run(incidentId)).outcome,
    job,
    /** Handles a delivery of the control pool (analysis jobs only; serve.ts dispatches every kind). */
    handle: jobs.handle,
    start: jobs.start,
  };
}
