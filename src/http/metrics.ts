import { collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

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
  };
}
