import type { Store } from "../store/db.ts";
import type { Executor } from "../store/sql.ts";
import type { IncidentRow } from "../store/schema.ts";
import { parseDuration } from "../shared/duration.ts";
import { enqueueTask } from "../tasks/service.ts";
import { CONTROL_POOL } from "../tasks/control-jobs.ts";
import { actionKind, type Skill } from "../skills/schema.ts";
import { templateData, type PlanContext } from "../skills/planner.ts";
import { renderTemplate, renderValue } from "../skills/template.ts";

// Queueing an incident's work: its analysis (a control job) and its fix (a runner task), both
// through the outbox in the caller's transaction.

export const ANALYSIS_POOL = CONTROL_POOL;

/** What the planner and the templates know about an incident. */
export function incidentContext(inc: IncidentRow): PlanContext {
  return {
    incident: {
      id: inc.id,
      alertname: inc.alertname ?? "",
      fingerprint: inc.fingerprint,
      namespace: inc.namespace,
      service: inc.service,
      severity: inc.severity,
      title: inc.title,
    },
    labels: JSON.parse(inc.labels) as Record<string, string>,
    annotations: JSON.parse(inc.annotations) as Record<string, string>,
  };
}

/**
 * Queues the fix with everything the runner needs, rendered now: the runner reads no skills
 * folder and runs exactly the plan that was decided (and, later, approved). `extra` adds payload
 * fields the runner reads (a rebuild's `rebuild: n`). Returns the task id.
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
  extra: Record<string, unknown> = {},
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
        ...extra,
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

/**
 * Queues an incident's analysis job through the outbox, in the caller's transaction. One job per
 * incident version; `round` tells apart a deliberate re-analysis of the same version (a resume,
 * a sweep).
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
  const job = {
    kind: "incident.analyze",
    pool: ANALYSIS_POOL,
    payload: { incidentId: incident.id },
    incidentId: incident.id,
    createdBy: by.actor,
    channel: by.channel,
    idempotencyKey: key,
  };
  return enqueueTask(trx, dialect, job, now);
}

/** After a resume: queue analysis again for every incident that waited in `detected`. */
export async function requeueDetected(
  store: Store,
  now: number,
  actor: { actor: string; channel: string },
  only: { namespace?: string } = {},
): Promise<number> {
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
