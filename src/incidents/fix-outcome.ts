import type { Store } from "../store/db.ts";
import type { Executor } from "../store/sql.ts";
import type { IncidentRow, TaskRow } from "../store/schema.ts";
import { RISK_ORDER, type Risk } from "../skills/schema.ts";
import { POLICY, type Decider, type PullRef } from "../approvals/repo.ts";
import { approveMergeAtOnce, requestMergeApproval, type ProposedPull } from "../approvals/requests.ts";
import { queuePullRequestClose } from "../approvals/pull-requests.ts";
import { diffOfResult } from "../approvals/binding.ts";
import { appendEvent } from "../events/repo.ts";
import { getIncident } from "./repo.ts";
import { applyTransition } from "./service.ts";
import type { IncidentState } from "./lifecycle.ts";

export type TaskOutcome = "succeeded" | "failed" | "cancelled";

/** Called (in the same transaction) when a task reaches a terminal state. */
export type TerminalHook = (
  trx: Executor,
  task: TaskRow,
  outcome: TaskOutcome,
  detail: string | null,
  now: number,
) => Promise<void>;

/** One hook that runs each of `hooks` in turn (fix outcomes, scheduled runs, …). */
export function composeHooks(...hooks: TerminalHook[]): TerminalHook {
  return async (trx, task, outcome, detail, now) => {
    for (const h of hooks) await h(trx, task, outcome, detail, now);
  };
}

const FIX_KINDS = new Set(["skill", "agent"]);
const ACTIVE: IncidentState[] = ["analyzing", "fixing", "proposed", "approved", "verifying"];
/**
 * Failures a person must resolve, not failed fixes: the runner could not start the agent (install
 * or configure something), or the repository has no safe version to roll back to. The incident is
 * escalated with the reason and a hint, and the fingerprint's failed-fix count stays as it was.
 */
const NEEDS_PERSON: Record<string, (p: FixPayload) => string> = {
  "agent.not_installed": (p) =>
    `install ${p.agent ?? "the coding agent's CLI"} on the runners, or set AGENT_COMMANDS to a command they have`,
  "agent.not_startable": (p) =>
    `install ${p.agent ?? "the coding agent's CLI"} on the runners, or set AGENT_COMMANDS to a command they have`,
  "gitops.no_safe_version": () => "roll forward with a fixed image, or choose the version to deploy by hand",
};

type FixPayload = {
  approval?: string;
  skill?: string;
  risk?: string;
  agent?: string;
  action?: { revert?: { sha?: string; number?: number } };
};
type FixResult = {
  changed?: boolean;
  summary?: string;
  pr?: PullRef & { url: string; branch: string };
  diffSummary?: unknown;
  diffExcerpt?: unknown;
};

/**
 * A fix task finished: move its incident on. A pull request is merged through the approvals
 * domain: it waits for a person (before_merge), or is approved at once — by policy, or by whoever
 * approved the plan before it ran — and takes the same merge path. A fix applied without a pull
 * request is verified; a failure closes the incident (`failed`, its pull request closed) unless a
 * person must act first (NEEDS_PERSON: escalated, with a hint).
 */
export function incidentFixHook(dialect: Store["dialect"], opts: { autoApproveMaxRisk?: Risk } = {}): TerminalHook {
  return async (trx, task, outcome, detail, now) => {
    if (!task.incident_id || !FIX_KINDS.has(task.kind)) return;
    const inc = await getIncident(trx, task.incident_id);
    const payload = JSON.parse(task.payload) as FixPayload;
    const by = { actor: `task:${task.id}`, channel: "runner" };
    if (inc && payload.action?.revert) return revertOutcome(trx, dialect, inc, task, payload, outcome, detail, by, now);
    if (!inc || !ACTIVE.includes(inc.state as IncidentState)) return;
    if (outcome === "succeeded") {
      if (inc.state !== "fixing") return;
      const result = task.result ? (JSON.parse(task.result) as FixResult) : {};
      if (result.pr) {
        const p: ProposedPull = {
          incident: inc,
          task,
          pr: result.pr,
          risk: riskOf(payload, inc),
          skill: payload.skill ?? null,
          summary: result.summary ?? null,
          diff: diffOfResult(result),
        };
        if (payload.approval === "before_merge") await requestMergeApproval(trx, dialect, p, by, now);
        else {
          const { approver, reason } = await decidedAlready(trx, inc, payload, p.risk, opts.autoApproveMaxRisk);
          await approveMergeAtOnce(trx, dialect, p, approver, reason, by, now);
        }
        return;
      }
      const reason =
        result.changed === false
          ? `nothing to change: ${result.summary ?? ""}`.trim()
          : "fix applied; waiting for the alert to resolve";
      await applyTransition(trx, dialect, inc, "verify.started", { ...by, reason, data: { taskId: task.id } }, now);
    } else if (outcome === "failed") {
      const code = await failureCode(trx, task.id);
      const needsPerson = code ? NEEDS_PERSON[code] : undefined;
      if (code && needsPerson) {
        const hint = needsPerson(payload);
        await applyTransition(
          trx,
          dialect,
          inc,
          "escalate",
          { ...by, reason: `${detail ?? code}; ${hint}`, data: { taskId: task.id, code, hint } },
          now,
        );
        return;
      }
      await applyTransition(
        trx,
        dialect,
        inc,
        "fix.failed",
        { ...by, reason: detail ?? "fix failed", data: { taskId: task.id, ...(code ? { code } : {}) } },
        now,
        { failed_fixes: inc.failed_fixes + 1 },
      );
      await queuePullRequestClose(
        trx,
        dialect,
        inc.id,
        `the fix failed${detail ? `: ${detail.slice(0, 300)}` : ""}`,
        by,
        now,
      );
    } else if (outcome === "cancelled") {
      await applyTransition(
        trx,
        dialect,
        inc,
        "escalate",
        { ...by, reason: `fix cancelled${detail ? `: ${detail}` : ""}`, data: { taskId: task.id } },
        now,
      );
    }
  };
}

/**
 * The revert of an unverified fix (queued by the verifier while the incident escalated): its pull
 * request asks for approval as any other (`revert.proposed`); a revert that failed or found
 * nothing to undo is a timeline event, and the incident stays with the person it went to.
 */
async function revertOutcome(
  trx: Executor,
  dialect: Store["dialect"],
  inc: IncidentRow,
  task: TaskRow,
  payload: FixPayload,
  outcome: TaskOutcome,
  detail: string | null,
  by: { actor: string; channel: string },
  now: number,
): Promise<void> {
  if (inc.state !== "escalated") return;
  const of = `pull request #${payload.action?.revert?.number ?? "?"}`;
  const result = task.result ? (JSON.parse(task.result) as FixResult) : {};
  if (outcome === "succeeded" && result.pr) {
    const p: ProposedPull = {
      incident: inc,
      task,
      pr: result.pr,
      risk: riskOf(payload, inc),
      skill: "revert",
      summary: result.summary ?? null,
      diff: diffOfResult(result),
    };
    await requestMergeApproval(trx, dialect, p, by, now, "revert.proposed");
    return;
  }
  const [type, reason] =
    outcome === "succeeded"
      ? ["revert.not_needed", `nothing to revert for ${of}: ${result.summary ?? "no change"}`]
      : [
          "revert.failed",
          `the revert of ${of} ${outcome === "cancelled" ? "was cancelled" : "failed"}${detail ? `: ${detail.slice(0, 500)}` : ""}; revert it by hand if it must go`,
        ];
  await appendEvent(
    trx,
    dialect,
    {
      type,
      incidentId: inc.id,
      taskId: task.id,
      ...by,
      reason,
      data: { pr: payload.action?.revert ?? null },
      occurredAt: now,
    },
    now,
  );
}

/** The plan's risk: from the task, or from the incident's plan for the same skill. */
function riskOf(payload: FixPayload, inc: IncidentRow): string {
  if (payload.risk) return payload.risk;
  const plan = inc.plan ? (JSON.parse(inc.plan) as { skill?: string; risk?: string }) : {};
  return (plan.skill === payload.skill || !payload.skill) && plan.risk ? plan.risk : "unknown";
}

/** Who approved a pull request nobody is asked about: the person who approved the plan before it ran, or the policy. */
async function decidedAlready(
  trx: Executor,
  inc: IncidentRow,
  payload: FixPayload,
  risk: string,
  max: Risk | undefined,
): Promise<{ approver: Decider; reason: string }> {
  if (payload.approval === "before_run") {
    const run = await trx
      .selectFrom("approvals")
      .select(["id", "decided_by", "channel"])
      .where("incident_id", "=", inc.id)
      .where("state", "=", "approved")
      .where("pr_number", "is", null)
      .orderBy("decided_at", "desc")
      .limit(1)
      .executeTakeFirst();
    if (run?.decided_by && run.channel) {
      return {
        approver: { subject: run.decided_by, actor: `${run.channel}:${run.decided_by}`, channel: run.channel },
        reason: `approved before it ran (${run.id}) by ${run.decided_by} via ${run.channel}`,
      };
    }
  }
  const skill = payload.skill ?? "the skill";
  const within = max && risk in RISK_ORDER && RISK_ORDER[risk as Risk] <= RISK_ORDER[max];
  const reason = within
    ? `approved by policy: ${risk}-risk skill ${skill} is at or below AUTO_APPROVE_MAX_RISK (${max})`
    : `approved by policy: ${skill} (${risk} risk) needs no approval under AUTO_APPROVE_MAX_RISK${max ? ` (${max})` : ""} and its approval setting`;
  return { approver: POLICY, reason };
}

/** The runner's error code of the task's failure, from its `task.failed` event (stored just before). */
async function failureCode(trx: Executor, taskId: string): Promise<string | null> {
  const e = await trx
    .selectFrom("events")
    .select("data")
    .where("task_id", "=", taskId)
    .where("type", "=", "task.failed")
    .orderBy("seq", "desc")
    .limit(1)
    .executeTakeFirst();
  if (!e) return null;
  const code = (JSON.parse(e.data) as { code?: unknown }).code;
  return typeof code === "string" ? code : null;
}
