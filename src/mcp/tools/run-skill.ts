import { z } from "zod";
import { defineTool } from "../tool.ts";
import { conflict, errorMessage, invalid, isAppError, notFound } from "../../shared/errors.ts";
import { appendEvent } from "../../events/repo.ts";
import { getIncident } from "../../incidents/repo.ts";
import { incidentContext, queueFixTask } from "../../incidents/analysis.ts";
import { isOpen, type IncidentState } from "../../incidents/lifecycle.ts";
import { actionKind } from "../../skills/schema.ts";
import { approvalFor } from "../../skills/policy.ts";
import { inlineError, isInline, runInline, type InlineOutcome } from "../../skills/inline.ts";
import { renderParams } from "../../skills/planner.ts";
import { isDuplicateKey } from "../../store/sql.ts";
import { mcpActor } from "../views.ts";

export const runSkill = defineTool({
  name: "run_skill",
  title: "Run a skill",
  description:
    "Runs a skill for an incident. With dry_run (the default) it only shows the parameters rendered from the incident and the approval the policy requires; nothing changes. Otherwise an inline skill (probe, drift, http) runs now and its result is recorded; a repository skill is queued as a fix task. A skill that needs approval must go through the incident flow (analyze_incident, approve_action).",
  scope: "write",
  input: {
    skill: z.string().min(1).max(63).describe("Skill name."),
    incident_id: z.string().min(1).max(40).describe("Incident whose labels the skill's parameters are rendered from."),
    dry_run: z.boolean().default(true).describe("True (default): show what would run, change nothing."),
  },
  output: {
    dry_run: z.boolean().describe("Whether this was a dry run."),
    skill: z.string().describe("Skill name."),
    incident_id: z.string().describe("Incident."),
    action: z.enum(["builtin", "patch", "http", "agent"]).describe("How the skill acts."),
    inline: z.boolean().describe("True when it runs in the control plane."),
    params: z.record(z.string(), z.unknown()).describe("Parameters rendered for this incident."),
    approval_required: z.boolean().describe("Whether the policy requires approval."),
    approval_when: z.enum(["before_run", "before_merge"]).nullable().describe("When approval would be asked."),
    approval_why: z.string().nullable().describe("Why approval is required."),
    task_id: z.string().nullable().describe("The queued fix task (repository skill, not a dry run)."),
    result: z
      .object({
        kind: z
          .enum(["applied", "escalate", "delegate"])
          .describe("applied: done; escalate: a human should look; delegate: a remote skill proposed another skill."),
        summary: z.string().describe("What it found or did."),
      })
      .nullable()
      .describe("The inline skill's outcome (not a dry run)."),
  },
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
  async handler(args, { principal, deps, notify }) {
    const { store } = deps;
    const skill = deps.skills().find((s) => s.name === args.skill);
    if (!skill) throw notFound("skill.not_found", `no skill named ${JSON.stringify(args.skill)} is loaded`);
    const inc = await getIncident(store.db, args.incident_id);
    if (!inc) throw notFound("incident.not_found", `incident ${args.incident_id} does not exist`);
    let params: Record<string, unknown>;
    try {
      params = renderParams(skill, incidentContext(inc));
    } catch (err) {
      throw invalid("skill.render_failed", `${skill.name} cannot run for ${inc.id}: ${errorMessage(err)}`);
    }
    const approval = approvalFor(skill, deps.config.guardrails.autoApproveMaxRisk);
    const base = {
      skill: skill.name,
      incident_id: inc.id,
      action: actionKind(skill.action),
      inline: isInline(skill),
      params,
      approval_required: approval.required,
      approval_when: approval.required ? approval.when : null,
      approval_why: approval.required ? approval.why : null,
    };
    if (args.dry_run) {
      const how = approval.required ? `needs approval ${approval.when} (${approval.why})` : "would run unattended";
      return {
        summary: `dry run: ${skill.name} for ${inc.id} ${how}; params ${JSON.stringify(params)}`,
        data: { ...base, dry_run: true, task_id: null, result: null },
      };
    }
    if (approval.required) {
      throw conflict(
        "skill.approval_required",
        `${skill.name} needs approval ${approval.when} (${approval.why}); use the incident flow: analyze_incident, then approve_action`,
      );
    }
    if (deps.config.guardrails.dryRun)
      throw conflict(
        "guardrail.dry_run",
        "DRY_RUN is on: skills are planned and reported, never run; use dry_run: true",
      );
    if (!isOpen(inc.state as IncidentState))
      throw conflict("incident.closed", `incident ${inc.id} is ${inc.state}; skills run for open incidents only`);
    const by = mcpActor(principal);

    if (isInline(skill)) {
      // Progress in three steps (running, finished, recorded), with a beat every second while the
      // skill waits on its target, so a client can show it and keep its request timeout alive.
      const about = { skill: skill.name, incident_id: inc.id };
      await notify?.progress(1, 3, `running ${skill.name} for ${inc.id}`);
      await notify?.log("debug", { message: `running ${skill.name}`, ...about, params });
      const started = performance.now();
      let beats = 0;
      const beat = setInterval(() => {
        beats++;
        void notify?.progress(
          1 + beats / (beats + 1),
          3,
          `running ${skill.name}: ${Math.round((performance.now() - started) / 1000)} s`,
        );
      }, 1000);
      let outcome: InlineOutcome;
      try {
        outcome = await runInline(
          skill,
          params,
          {
            id: inc.id,
            title: inc.title,
            alertname: inc.alertname,
            namespace: inc.namespace,
            service: inc.service,
            severity: inc.severity,
            labels: JSON.parse(inc.labels),
          },
          deps.inline ?? { argocd: deps.config.argocd, secrets: () => undefined },
        );
      } catch (err) {
        outcome = {
          kind: "escalate",
          summary: `${skill.name} failed: ${inlineError(err)}`,
          details: { code: isAppError(err) ? err.code : "error" },
        };
      } finally {
        clearInterval(beat);
      }
      await notify?.progress(2, 3, `${skill.name}: ${outcome.kind}`);
      const ms = Math.round(performance.now() - started);
      await notify?.log(outcome.kind === "escalate" ? "warning" : "info", {
        message: `${skill.name}: ${outcome.kind}`,
        ...about,
        kind: outcome.kind,
        summary: outcome.summary,
        ms,
      });
      const now = deps.now();
      await appendEvent(
        store.db,
        store.dialect,
        {
          type: "skill.result",
          incidentId: inc.id,
          ...by,
          reason: outcome.summary,
          data: {
            skill: skill.name,
            kind: outcome.kind,
            params,
            ...("details" in outcome ? { details: outcome.details } : {}),
          },
          occurredAt: now,
        },
        now,
      );
      await notify?.progress(3, 3, "result recorded");
      return {
        summary: `${skill.name}: ${outcome.kind} — ${outcome.summary}`,
        data: { ...base, dry_run: false, task_id: null, result: { kind: outcome.kind, summary: outcome.summary } },
      };
    }

    const now = deps.now();
    const queue = () =>
      store.db.transaction().execute(async (trx) => {
        const id = await queueFixTask(trx, store.dialect, inc, skill, params, "none", now, {
          pool: deps.config.runner.pool,
          ...by,
        });
        await appendEvent(
          trx,
          store.dialect,
          {
            type: "skill.queued",
            incidentId: inc.id,
            taskId: id,
            ...by,
            reason: `${skill.name} queued by hand`,
            data: { skill: skill.name, params },
            occurredAt: now,
          },
          now,
        );
        return id;
      });
    let taskId: string;
    try {
      taskId = await queue();
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
      const existing = await store.db
        .selectFrom("tasks")
        .select(["id", "state"])
        .where("idempotency_key", "=", `fix:${inc.id}:${inc.version}:${skill.name}`)
        .executeTakeFirst();
      throw conflict(
        "skill.already_queued",
        `${skill.name} is already queued for ${inc.id} in its current state${existing ? ` (task ${existing.id}, ${existing.state})` : ""}`,
      );
    }
    deps.kick();
    return {
      summary: `queued ${skill.name} for ${inc.id} as task ${taskId}`,
      data: { ...base, dry_run: false, task_id: taskId, result: null },
    };
  },
});
