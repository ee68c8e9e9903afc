import type { Logger } from "../shared/logger.ts";
import type { Store } from "../store/db.ts";
import { errorMessage } from "../shared/errors.ts";
import { formatDuration, parseDuration } from "../shared/duration.ts";
import type { Skill } from "../skills/schema.ts";
import { getIncident } from "./repo.ts";
import { applyTransition } from "./service.ts";
import { expireDueApprovals } from "../approvals/service.ts";

const DEFAULT_WINDOW_MS = 15 * 60_000;

/**
 * Watches incidents in `verifying`: the alert resolving closes them (the intake does that); one
 * still open after its skill's `verify.alert_resolves_within` (default 15m) is escalated.
 */
export function createVerifier(deps: { store: Store; log: Logger; now: () => number; skills: () => Skill[]; intervalMs?: number }) {
  const { store } = deps;
  const log = deps.log.child({ component: "verifier" });
  let timer: NodeJS.Timeout | undefined;

  function windowFor(plan: string | null): number {
    const name = plan ? (JSON.parse(plan) as { skill?: string }).skill : undefined;
    const within = deps.skills().find((s) => s.name === name)?.verify.alert_resolves_within;
    return (within && parseDuration(within)) || DEFAULT_WINDOW_MS;
  }

  async function tick(): Promise<number> {
    const now = deps.now();
    const rows = await store.db.selectFrom("incidents").select(["id", "plan"]).where("state", "=", "verifying").orderBy("id").limit(500).execute();
    let escalated = 0;
    for (const r of rows) {
      const since = await store.db
        .selectFrom("events")
        .select("occurred_at")
        .where("incident_id", "=", r.id)
        .where("type", "=", "incident.verifying")
        .orderBy("seq", "desc")
        .limit(1)
        .executeTakeFirst();
      const start = since ? Number(since.occurred_at) : now;
      const window = windowFor(r.plan);
      if (now - start < window) continue;
      const done = await store.db.transaction().execute(async (trx) => {
        const inc = await getIncident(trx, r.id);
        if (!inc || inc.state !== "verifying") return false;
        await applyTransition(trx, store.dialect, inc, "verify.failed", { actor: "pitcrew:verifier", channel: "engine", reason: `the alert still fires ${formatDuration(window)} after the fix`, data: { window: formatDuration(window) } }, now);
        return true;
      });
      if (done) {
        escalated += 1;
        log.warn({ incidentId: r.id }, "fix did not resolve the alert in time; escalated");
      }
    }
    return escalated;
  }

  /** Pending approvals past their deadline expire: their incident goes to a human, their pull request is closed. */
  const expireApprovals = (): Promise<number> => expireDueApprovals(store, deps.now());

  return {
    tick,
    expireApprovals,
    start() {
      timer = setInterval(
        () => Promise.all([tick(), expireApprovals()]).catch((err) => log.warn({ err: { message: errorMessage(err) } }, "verification check failed")),
        deps.intervalMs ?? 30_000,
      );
      timer.unref();
    },
    stop() {
      clearInterval(timer);
    },
  };
}
