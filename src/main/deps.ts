import type { Config } from "../config/load.ts";
import { createQueue } from "../bus/create.ts";
import { createMetrics } from "../shared/metrics.ts";
import type { Deps } from "../shared/deps.ts";
import type { Logger } from "../shared/logger.ts";
import { openStore } from "../store/db.ts";
import { createTaskService } from "../tasks/service.ts";
import { composeHooks, incidentFixHook, type TerminalHook } from "../incidents/fix-outcome.ts";
import { scheduleRunHook } from "../schedules/run-outcome.ts";
import { createOutboxRelay, type OutboxRelay } from "../bus/outbox.ts";
import { createLifecycleLog } from "../incidents/lifecycle-log.ts";
import { createLifecycleMetrics } from "../incidents/lifecycle-metrics.ts";

/** Builds the control plane's dependencies; nothing runs until serve.ts starts the loops. */
export async function createDeps(
  config: Config,
  log: Logger,
): Promise<{ deps: Deps; relay: OutboxRelay; onTerminal: TerminalHook }> {
  const now = Date.now;
  const store = openStore(config.database);
  // One info line per committed step of an incident's life.
  store.onEventsCommitted(createLifecycleLog(log));
  // The incident and approval counters, from the same committed events.
  const metrics = createMetrics();
  store.onEventsCommitted(createLifecycleMetrics(metrics));
  const queue = await createQueue(config, log, "pitcrew-serve");
  const relay = createOutboxRelay({ store, queue, log, now, metrics }, config.outbox);
  // A committed task is relayed at once instead of at the next poll.
  // What a task reaching its end moves on: its incident (a fix), its schedule (a scheduled run).
  const onTerminal = composeHooks(
    incidentFixHook(store.dialect, { autoApproveMaxRisk: config.guardrails.autoApproveMaxRisk }),
    scheduleRunHook(store.dialect),
  );
  const tasks = createTaskService({ store, log, now, onEnqueued: () => relay.kick(), onTerminal });
  return { deps: { config, log, store, queue, metrics, tasks, now }, relay, onTerminal };
}
