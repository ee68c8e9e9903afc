import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

// Pitcrew's metrics: prom-client's default process_* and nodejs_* metrics under their usual names
// (so the usual dashboards work), and Pitcrew's own, prefixed pitcrew_. Every counter and
// histogram is updated where the thing happens, once the transaction that makes it true has
// committed (store/commits.ts); the gauges are set by the loop that reads them (outbox relay,
// queue depth reader, fleet monitor, sweeper), never recomputed at scrape time.

export type Metrics = ReturnType<typeof createMetrics>;

const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const MINUTES_TO_DAYS = [30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14_400, 43_200, 86_400, 259_200];

/**
 * One registry per app (not prom-client's global one), so tests can build many apps.
 * `defaults: false` leaves out the process and Node.js metrics (a registry that is never scraped).
 */
export function createMetrics(opts: { defaults?: boolean } = {}) {
  const registry = new Registry();
  if (opts.defaults !== false) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    httpDuration: new Histogram({
      name: "pitcrew_http_request_duration_seconds",
      help: "HTTP request duration by route and status",
      labelNames: ["method", "route", "status_code"] as const,
      buckets: SECONDS,
      registers,
    }),
    ready: new Gauge({ name: "pitcrew_ready", help: "1 when the last readiness check passed", registers }),

    // Alert intake (alerts/route.ts): one per alert once its payload committed, by what became of it.
    alertsReceived: new Counter({
      name: "pitcrew_alerts_received_total",
      help: "Alerts received from AlertManager, by outcome (opened, joined, reopened, repeat, resolved, resolve_recorded, ignored)",
      labelNames: ["outcome"] as const,
      registers,
    }),
    alertPayloads: new Counter({
      name: "pitcrew_alert_payloads_total",
      help: "AlertManager webhook requests, by status (accepted, unauthorized, invalid, failed)",
      labelNames: ["status"] as const,
      registers,
    }),
    intakeDuration: new Histogram({
      name: "pitcrew_alertmanager_intake_duration_seconds",
      help: "Time to validate and commit one AlertManager webhook, by outcome",
      labelNames: ["outcome"] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),

    // Incidents (counted from committed transitions, events/committed-metrics.ts).
    incidentsOpened: new Counter({
      name: "pitcrew_incidents_opened_total",
      help: "Incidents opened (alerts and MCP create_incident; reopens are alerts_received{outcome=reopened}), by severity",
      labelNames: ["severity"] as const,
      registers,
    }),
    incidentsResolved: new Counter({
      name: "pitcrew_incidents_resolved_total",
      help: "Incidents resolved, by the skill of their plan (none without a plan)",
      labelNames: ["skill"] as const,
      registers,
    }),
    incidentsEscalated: new Counter({
      name: "pitcrew_incidents_escalated_total",
      help: "Incidents escalated to a person, by the skill of their plan (none without a plan)",
      labelNames: ["skill"] as const,
      registers,
    }),
    alertToPr: new Histogram({
      name: "pitcrew_alert_to_pr_seconds",
      help: "Time from an incident's opening to the pull request of its fix",
      buckets: [5, 10, 20, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14_400],
      registers,
    }),
    // Observed once per resolve, by the replica whose verifier claims it (incidents.ttr_observed_at):
    // summed over replicas, the count is the number of resolves.
    timeToResolve: new Histogram({
      name: "pitcrew_incident_time_to_resolve_seconds",
      help: "Time from an incident's opening (or reopening) to its resolve",
      buckets: MINUTES_TO_DAYS,
      registers,
    }),

    // Analysis and planning.
    analysisDuration: new Histogram({
      name: "pitcrew_analysis_duration_seconds",
      help: "Time to analyse an incident (planning, policy, and the commit of its outcome), by planner",
      labelNames: ["planner"] as const,
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60],
      registers,
    }),
    plannerTokens: new Counter({
      name: "pitcrew_planner_tokens_total",
      help: "Tokens used by the planner's model calls, by planner and type (input, output)",
      labelNames: ["planner", "type"] as const,
      registers,
    }),
    plannerErrors: new Counter({
      name: "pitcrew_planner_errors_total",
      help: "Planner calls that failed and fell back to the rules, by planner and reason",
      labelNames: ["planner", "reason"] as const,
      registers,
    }),

    // Outbox relay and queue.
    outboxLag: new Gauge({
      name: "pitcrew_outbox_lag_seconds",
      help: "Age of the oldest outbox row not yet published, as of the relay's last pass (0 when none)",
      registers,
    }),
    outboxBatch: new Histogram({
      name: "pitcrew_outbox_batch_size",
      help: "Outbox rows published per relay pass that found work",
      buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000],
      registers,
    }),
    queueDepth: new Gauge({
      name: "pitcrew_queue_depth",
      help: "Task messages stored on the bus and not yet acknowledged (waiting or running), by pool, as of the last read",
      labelNames: ["pool"] as const,
      registers,
    }),
    queueRedeliveries: new Counter({
      name: "pitcrew_queue_redeliveries_total",
      help: "Task messages a runner started again (delivery 2 or later), by pool",
      labelNames: ["pool"] as const,
      registers,
    }),
    deadLetters: new Counter({
      name: "pitcrew_dead_letters_total",
      help: "Task messages that used all their deliveries without an ack, by pool",
      labelNames: ["pool"] as const,
      registers,
    }),
    taskDuration: new Histogram({
      name: "pitcrew_task_duration_seconds",
      help: "Runner tasks from their start to their end (as the runner reports them), by kind and outcome",
      labelNames: ["kind", "outcome"] as const,
      buckets: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600],
      registers,
    }),

    // Approvals and deliveries.
    approvals: new Counter({
      name: "pitcrew_approvals_total",
      help: "Approval decisions and merges, by channel (telegram, mcp, console, policy; none for an expiry) and outcome (approved, rejected, expired, merged, merge_failed)",
      labelNames: ["channel", "outcome"] as const,
      registers,
    }),
    deliveries: new Counter({
      name: "pitcrew_deliveries_total",
      help: "Notification and webhook deliveries, by channel (telegram, webhook) and outcome (sent, retried, dead)",
      labelNames: ["channel", "outcome"] as const,
      registers,
    }),

    // Fleet and sweeper.
    runners: new Gauge({
      name: "pitcrew_runners",
      help: "Runners by state: live (heard within two heartbeats) or stale (silent longer, heard within the last hour)",
      labelNames: ["state"] as const,
      registers,
    }),
    incidentsStuck: new Gauge({
      name: "pitcrew_incidents_stuck",
      help: "Incidents found stranded in a transient state (past STUCK_AFTER, nothing in flight) on the sweeper's last pass",
      registers,
    }),
    sweeperActions: new Counter({
      name: "pitcrew_sweeper_actions_total",
      help: "What the sweeper did with stranded incidents, by action (requeued, escalated, applied)",
      labelNames: ["action"] as const,
      registers,
    }),
  };
}
