import { appendEvent } from "../events/repo.ts";
import { AppError, errorMessage, invalid } from "../shared/errors.ts";
import { recordRunFailed } from "./run-outcome.ts";
import type { Store } from "../store/db.ts";
import { isInline, runInline, type InlineDeps } from "../skills/inline.ts";
import type { Skill } from "../skills/schema.ts";
import type { ControlJob } from "../tasks/control-jobs.ts";

// A schedule's `skill:` run: an inline skill (probe, drift, remote http) run by the control plane
// as a control job. What it found is the task's result and a `schedule.result` event; a skill that
// reports a problem (a red probe, drifted applications) fails the task, so the failure is announced
// like any failed task.

export function createScheduleSkillJob(deps: {
  store: Store;
  now: () => number;
  skills: () => Skill[];
  inline: InlineDeps;
}): ControlJob {
  const { store } = deps;
  return {
    async run(payload, job) {
      const {
        schedule,
        skill: name,
        params,
      } = payload as { schedule?: string; skill?: string; params?: Record<string, unknown> };
      const skill = deps.skills().find((s) => s.name === name);
      if (!skill || !isInline(skill))
        throw invalid("schedule.skill_not_found", `skill ${String(name)} is not loaded as an inline skill`);
      // The skill's own literal parameters are the defaults; the schedule's params add to them.
      const literal = Object.fromEntries(
        Object.entries(skill.action.with).filter(([, v]) => !JSON.stringify(v ?? null).includes("{{")),
      );
      const outcome = await runInline(skill, { ...literal, ...params }, { schedule, skill: name }, deps.inline);
      const now = deps.now();
      const ok = outcome.kind === "applied";
      await appendEvent(
        store.db,
        store.dialect,
        {
          type: "schedule.result",
          taskId: job.taskId,
          actor: `schedule:${String(schedule)}`,
          channel: "schedule",
          reason: outcome.summary,
          data: {
            schedule,
            skill: name,
            kind: outcome.kind,
            ...("details" in outcome ? { details: outcome.details } : {}),
          },
          occurredAt: now,
        },
        now,
      );
      if (!ok) throw new AppError("conflict", "schedule.skill_reported", outcome.summary, { retryable: false });
      return { kind: outcome.kind, summary: outcome.summary, details: outcome.details };
    },
    async onGiveUp(trx, payload, err, job, now) {
      await recordRunFailed(
        trx,
        store.dialect,
        job.taskId,
        String((payload as { schedule?: unknown }).schedule),
        errorMessage(err),
        now,
      );
    },
  };
}
