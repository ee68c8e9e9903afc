import type { Store } from "../store/db.ts";
import type { Executor } from "../store/sql.ts";
import type { TaskRow } from "../store/schema.ts";
import { getIncident } from "./repo.ts";
import { appendEvent } from "../events/repo.ts";
import { applyTransition } from "./service.ts";
import type { IncidentState } from "./lifecycle.ts";

export type TaskOutcome = "succeeded" | "failed" | "cancelled";

/** Called (in the same transaction) when a task reaches a terminal state. */
export type TerminalHook = (trx: Executor, task: TaskRow, outcome: TaskOutcome, detail: string | null, now: number) => Promise<void>;

const FIX_KINDS = new Set(["skill", "agent"]);
const ACTIVE: IncidentState[] = ["analyzing", "fixing", "proposed", "approved", "verifying"];

/** A fix task finished: move its incident on (applied → verifying, failed → failed, cancelled → escalated). */
export function incidentFixHook(dialect: Store["dialect"]): TerminalHook {
  return async (trx, task, outcome, detail, now) => {
    if (!task.incident_id || !FIX_KINDS.has(task.kind)) return;
    const inc = await getIncident(trx, task.incident_id);
    if (!inc || !ACTIVE.includes(inc.state as IncidentState)) return;
    const by = { actor: `task:${task.id}`, channel: "runner" };
    if (outcome === "succeeded" && (inc.state === "fixing" || inc.state === "approved")) {
      const result = task.result ? (JSON.parse(task.result) as { changed?: boolean; summary?: string; pr?: { number: number; url: string; branch: string } }) : {};
      const payload = JSON.parse(task.payload) as { approval?: string };
      if (result.pr && payload.approval === "before_merge" && inc.state === "fixing") {
        // The change waits as a pull request until a person approves the merge.
        const expires = now + 24 * 3_600_000;
        await trx
          .insertInto("approvals")
          .values({ id: `apr_${task.id.slice(4)}`, incident_id: inc.id, task_id: task.id, state: "pending", risk: "unknown", action: JSON.stringify({ merge: result.pr, summary: result.summary ?? null }), requested_at: now, expires_at: expires, decided_at: null, decided_by: null, channel: null, reason: null, chat_id: null, message_id: null })
          .execute();
        await appendEvent(trx, dialect, { type: "approval.requested", incidentId: inc.id, taskId: task.id, ...by, reason: `merge of pull request #${result.pr.number} needs approval`, data: { pr: result.pr, expiresAt: expires }, occurredAt: now }, now);
        await applyTransition(trx, dialect, inc, "fix.proposed", { ...by, reason: `pull request #${result.pr.number} opened: ${result.pr.url}`, data: { taskId: task.id, pr: result.pr } }, now);
        return;
      }
      const reason = result.changed === false ? `nothing to change: ${result.summary ?? ""}`.trim() : result.pr ? `fix applied in pull request #${result.pr.number}; waiting for the alert to resolve` : "fix applied; waiting for the alert to resolve";
      await applyTransition(trx, dialect, inc, "verify.started", { ...by, reason, data: { taskId: task.id, pr: result.pr ?? null } }, now);
    } else if (outcome === "failed") {
      await applyTransition(trx, dialect, inc, "fix.failed", { ...by, reason: detail ?? "fix failed", data: { taskId: task.id } }, now, { failed_fixes: inc.failed_fixes + 1 });
    } else if (outcome === "cancelled") {
      await applyTransition(trx, dialect, inc, "escalate", { ...by, reason: `fix cancelled${detail ? `: ${detail}` : ""}`, data: { taskId: task.id } }, now);
    }
  };
}
