import type { FastifyInstance } from "fastify";
import type { HttpDeps } from "../app.ts";
import { errorMessage } from "../../shared/errors.ts";

export async function healthRoutes(app: FastifyInstance, deps: HttpDeps) {
  // Liveness: the process answers. Never touches dependencies, so a database outage does not
  // get the pod killed.
  app.get("/healthz", async () => ({ status: "ok" }));

  // Readiness: the store answers, and in distributed mode NATS does too.
  app.get("/readyz", async (_req, reply) => {
    const checks: Record<string, string> = {};
    const failures: string[] = [];
    const [store, queue] = await Promise.allSettled([deps.store.ping(1500), deps.queue.health()]);
    if (store.status === "fulfilled") checks.store = "ok";
    else {
      checks.store = errorMessage(store.reason);
      failures.push(`store: ${checks.store}`);
    }
    if (queue.status === "fulfilled" && queue.value.ok) checks.queue = "ok";
    else {
      checks.queue =
        queue.status === "fulfilled" ? (queue.value as { reason: string }).reason : errorMessage(queue.reason);
      failures.push(checks.queue);
    }
    deps.metrics.ready.set(failures.length === 0 ? 1 : 0);
    if (failures.length === 0) return { status: "ready", checks };
    reply.header("retry-after", "5");
    return reply.status(503).send({
      status: "unavailable",
      checks,
      error: { code: "service.not_ready", message: failures.join("; "), requestId: String(_req.id) },
    });
  });

  app.get("/metrics", async (_req, reply) => {
    reply.header("content-type", deps.metrics.registry.contentType);
    return deps.metrics.registry.metrics();
  });
}
