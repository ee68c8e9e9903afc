import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FastifyInstance } from "fastify";
import { createJetStreamQueue } from "../../src/bus/jetstream.ts";
import { createMemoryQueue } from "../../src/bus/memory.ts";
import { buildHttpApp } from "../../src/http/app.ts";
import { createMetrics } from "../../src/shared/metrics.ts";
import { AppError } from "../../src/shared/errors.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { hasNats, NATS_URL } from "../helpers/services.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";
import { deleteStreams, uniqueSettings } from "../helpers/queues.ts";
import { startTcpProxy } from "../helpers/tcp-proxy.ts";
import { waitFor } from "../helpers/wait.ts";
import { captureLogger } from "../helpers/assert.ts";

const natsUp = await hasNats();
const sqlite = (await storeFactories()).find((f) => f.name === "sqlite")!;

describe("HTTP shell (embedded)", () => {
  let store: TestStore;
  let app: FastifyInstance;
  const queue = createMemoryQueue({ log: silentLogger });
  const captured = captureLogger();

  beforeAll(async () => {
    store = await sqlite.make();
    app = await buildHttpApp({ log: captured.log, store, queue, metrics: createMetrics(), bodyLimit: 1_048_576 });
    // Routes that exercise the error mapping; real routes arrive with later features.
    app.post("/test/echo", async (req) => ({ got: req.body }));
    app.get("/test/unavailable", async () => {
      throw new AppError("unavailable", "store.unavailable", "database did not answer");
    });
    app.get("/test/boom", async () => {
      throw new Error("secret internals: password=hunter2");
    });
    await app.ready();
  });
  afterAll(async () => {
    await app.close();
    await queue.close();
    await store.close();
  });

  it("answers /healthz with 200", async () => {
    const res = await app.inject({ method: "GET", url: "/healthz" });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: "ok" });
  });

  it("answers /readyz with 200 when the store and queue answer", async () => {
    const res = await app.inject({ method: "GET", url: "/readyz" });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: "ready", checks: { store: "ok", queue: "ok" } });
  });

  it("exposes request durations by route and status, and the process and Node.js metrics under their usual names, on /metrics", async () => {
    await app.inject({ method: "GET", url: "/healthz" });
    await app.inject({ method: "GET", url: "/no/such/route" });
    const res = await app.inject({ method: "GET", url: "/metrics" });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toMatch(/text\/plain/);
    expect(res.body).toMatch(
      /pitcrew_http_request_duration_seconds_count\{method="GET",route="\/healthz",status_code="200"\} [1-9]/,
    );
    expect(res.body).toMatch(
      /pitcrew_http_request_duration_seconds_count\{method="GET",route="unmatched",status_code="404"\} 1/,
    );
    for (const name of [
      "process_cpu_seconds_total",
      "process_resident_memory_bytes",
      "nodejs_eventloop_lag_seconds",
      "nodejs_heap_size_used_bytes",
    ])
      expect(res.body).toMatch(new RegExp(`^${name} `, "m"));
    expect(res.body).not.toMatch(/pitcrew_(process|nodejs)_/);
  });

  it("answers an unknown route with 404 and the error shape", async () => {
    const res = await app.inject({ method: "GET", url: "/nope?x=1" });
    expect(res.statusCode).toBe(404);
    expect(res.json().error).toMatchObject({ code: "route.not_found", message: "no route for GET /nope" });
    expect(res.json().error.requestId).toMatch(/^req_/);
  });

  it("refuses a body over the limit with 413", async () => {
    const res = await app.inject({
      method: "POST",
      url: "/test/echo",
      headers: { "content-type": "application/json" },
      payload: JSON.stringify({ x: "a".repeat(1_100_000) }),
    });
    expect(res.statusCode).toBe(413);
    expect(res.json().error.code).toBe("request.too_large");
  });

  it("refuses invalid JSON with 400 request.invalid_json", async () => {
    const res = await app.inject({
      method: "POST",
      url: "/test/echo",
      headers: { "content-type": "application/json" },
      payload: '{"a":',
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe("request.invalid_json");
  });

  it("refuses prototype-pollution keys with 400", async () => {
    const res = await app.inject({
      method: "POST",
      url: "/test/echo",
      headers: { "content-type": "application/json" },
      payload: '{"__proto__":{"admin":true}}',
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe("request.invalid_json");
  });

  it("maps an unavailable error to 503 with retry-after", async () => {
    const res = await app.inject({ method: "GET", url: "/test/unavailable" });
    expect(res.statusCode).toBe(503);
    expect(res.headers["retry-after"]).toBe("5");
    expect(res.json().error).toMatchObject({ code: "store.unavailable", message: "database did not answer" });
  });

  it("answers an unexpected error with a generic 500 and logs it in full", async () => {
    const res = await app.inject({ method: "GET", url: "/test/boom" });
    expect(res.statusCode).toBe(500);
    expect(res.json().error).toMatchObject({ code: "internal", message: "internal error" });
    expect(res.body).not.toMatch(/hunter2|secret internals|at /);
    expect(captured.lines.some((l) => l.includes("secret internals") && l.includes('"stack"'))).toBe(true);
  });

  it("answers /readyz with 503 naming the store when the database is gone", async () => {
    const other = await sqlite.make();
    const app2 = await buildHttpApp({
      log: silentLogger,
      store: other,
      queue,
      metrics: createMetrics(),
      bodyLimit: 1024,
    });
    await other.db.destroy();
    const res = await app2.inject({ method: "GET", url: "/readyz" });
    expect(res.statusCode).toBe(503);
    expect(res.json().checks.store).not.toBe("ok");
    expect(res.json().error.code).toBe("service.not_ready");
    expect(res.json().error.message).toMatch(/^store: /);
    await app2.close();
  });
});

describe.skipIf(!natsUp)("HTTP readiness with NATS", () => {
  it("turns /readyz 503 within 5 s of NATS going away and back to 200 when it returns, without a restart", async () => {
    const proxy = await startTcpProxy(NATS_URL);
    const settings = uniqueSettings();
    const queue = createJetStreamQueue({
      servers: [proxy.url],
      name: "readyz-test",
      settings,
      log: silentLogger,
      publishTimeoutMs: 1000,
    });
    const store = await sqlite.make();
    const app = await buildHttpApp({ log: silentLogger, store, queue, metrics: createMetrics(), bodyLimit: 1024 });
    try {
      await queue.ready();
      expect((await app.inject({ method: "GET", url: "/readyz" })).statusCode).toBe(200);

      await proxy.down();
      const down = await waitFor(
        async () => {
          const r = await app.inject({ method: "GET", url: "/readyz" });
          return r.statusCode === 503 ? r : undefined;
        },
        5000,
        100,
      );
      expect(down.json().checks.queue).toMatch(/^nats: /);
      expect(down.json().checks.store).toBe("ok");

      await proxy.up();
      await waitFor(async () => (await app.inject({ method: "GET", url: "/readyz" })).statusCode === 200, 15_000, 200);
    } finally {
      await app.close();
      await queue.close();
      await proxy.close();
      await store.close();
      await deleteStreams(settings);
    }
  });
});
