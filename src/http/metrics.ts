import { collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { Store } from "../store/db.ts";
import { countIncidentsByState } from "../incidents/repo.ts";
import { INCIDENT_STATES } from "../incidents/lifecycle.ts";
import { countTasksByState } from "../tasks/repo.ts";

export type Metrics = ReturnType<typeof createMetrics>;

/** One registry per app (not prom-client's global one), so tests can build many apps. */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "pitcrew_" });
  return {
    registry,
    httpDuration: new Histogram({
      name: "pitcrew_http_request_duration_seconds",
      help: "HTTP request duration by route and status",
      labelNames: ["method", "route", "status_code"] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    ready: new Gauge({ name: "pitcrew_ready", help: "1 when the last readiness check passed", registers: [registry] }),
    // Observed once per resolve, by the replica whose verifier claims it (incidents.ttr_observed_at):
    // summed over replicas, the count is the number of resolves.
    timeToResolve: new Histogram({
      name: "pitcrew_incident_time_to_resolve_seconds",
      help: "Time from an incident's opening (or reopening) to its resolve",
      buckets: [30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14_400, 43_200, 86_400, 259_200],
      registers: [registry],
    }),
  };
}

/** Gauges read from the database at scrape time: the store is the source of truth. */
export function registerStoreGauges(metrics: Metrics, store: Store): void {
  const registry = metrics.registry;
  if (registry.getSingleMetric("pitcrew_incidents")) return;
  new Gauge({
    name: "pitcrew_incidents",
    help: "Incidents by state",
    labelNames: ["state"] as const,
    registers: [registry],
    async collect() {
      const counts = await countIncidentsByState(store.db).catch(() => undefined);
      if (!counts) return;
      for (const s of INCIDENT_STATES) this.set({ state: s }, counts[s] ?? 0);
    },
  });
  new Gauge({
    name: "pitcrew_tasks",
    help: "Tasks by state",
    labelNames: ["state"] as const,
    registers: [registry],
    async collect() {
      const counts = await countTasksByState(store.db).catch(() => undefined);
      if (!counts) return;
      for (const s of ["queued", "running", "succeeded", "failed", "cancelled"]) this.set({ state: s }, counts[s] ?? 0);
    },
  });
  new Gauge({
    name: "pitcrew_outbox_pending",
    help: "Outbox rows not yet published to the queue",
    registers: [registry],
    async collect() {
      const r = await store.db
        .selectFrom("outbox")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("sent_at", "is", null)
        .executeTakeFirst()
        .catch(() => undefined);
      if (r) this.set(Number(r.n));
    },
  });
}
