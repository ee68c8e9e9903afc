import type { Store } from "../store/db.ts";
import type { Executor } from "../store/sql.ts";
import type { TaskRow } from "../store/schema.ts";
import { getIncident } from "./repo.ts";
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
      await applyTransition(trx, dialect, inc, "verify.started", { ...by, reason: "fix applied; waiting for the alert to resolve", data: { taskId: task.id } }, now);
    } else if (outcome === "failed") {
      await applyTransition(trx, dialect, inc, "fix.failed", { ...by, reason: detail ?? "fix failed", data: { taskId: task.id } }, now, { failed_fixes: inc.failed_fixes + 1 });
    } else if (outcome === "cancelled") {
      await applyTransition(trx, dialect, inc, "escalate", { ...by, reason: `fix cancelled${detail ? `: ${detail}` : ""}`, data: { taskId: task.id } }, now);
    }
  };
}
