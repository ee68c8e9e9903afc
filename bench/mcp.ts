// MCP: `tools/call` of get_incident (a random one of the seeded incidents) and list_incidents (a
// page of 50 after a random cursor), over HTTP with a bearer token, at 16 connections, on a store
// seeded with 100,000 resolved incidents (one alert and one event each, bulk INSERTs before the
// control plane starts). Embedded (SQLite), and MariaDB when it answers. Baseline: a bare fastify
// route answering the same JSON-RPC bodies.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Insertable } from "kysely";
import { newId } from "../src/shared/ids.ts";
import type { AlertsTable, EventsTable, IncidentsTable } from "../src/store/schema.ts";
import { migrateToLatest, openStore, type Store } from "../src/store/db.ts";
import {
  benchDatabase,
  load,
  onCleanup,
  type Options,
  progress,
  round,
  cpuMs,
  rssMb,
  sleep,
  startBare,
  startServe,
} from "./lib.ts";

const MCP_TOKEN = "bench-mcp-token-0123456789abcdef";
const CONNECTIONS = 16;
const BATCH = 500;

/** `n` resolved incidents, each with its alert and its detected event; returns their ids. */
async function seed(store: Store, n: number): Promise<string[]> {
  await migrateToLatest(store);
  const ids: string[] = [];
  const start = Date.now() - n * 1000;
  for (let from = 0; from < n; from += BATCH) {
    const incidents: Insertable<IncidentsTable>[] = [];
    const alerts: Insertable<AlertsTable>[] = [];
    const events: Insertable<EventsTable>[] = [];
    for (let i = from; i < Math.min(n, from + BATCH); i++) {
      const at = start + i * 1000;
      const id = newId("inc", at);
      ids.push(id);
      const fingerprint = i.toString(16).padStart(16, "0");
      const ns = `team-${i % 50}`;
      const labels = JSON.stringify({
        alertname: "KubePodCrashLooping",
        namespace: ns,
        pod: `api-${i}`,
        severity: "warning",
      });
      const annotations = JSON.stringify({ summary: "Pod is crash looping." });
      incidents.push({
        id,
        fingerprint,
        dedupe_key: null,
        open_key: null,
        title: `KubePodCrashLooping ${ns}/api-${i}`,
        state: "resolved",
        source: "alertmanager",
        severity: "warning",
        namespace: ns,
        service: `api-${i % 200}`,
        labels,
        annotations,
        plan: null,
        flap_count: 0,
        failed_fixes: 0,
        truncated_alerts: 0,
        alertname: "KubePodCrashLooping",
        version: 2,
        opened_at: at,
        updated_at: at + 500,
        resolved_at: at + 500,
      });
      alerts.push({
        id: newId("alr", at),
        incident_id: id,
        fingerprint,
        status: "resolved",
        alertname: "KubePodCrashLooping",
        labels,
        annotations,
        starts_at: at,
        ends_at: at + 500,
        generator_url: null,
        receiver: "pitcrew",
        group_key: null,
        received_at: at,
        dedupe: null,
        repeat_count: 0,
        last_received_at: at,
      });
      events.push({
        id: newId("evt", at),
        type: "incident.detected",
        task_id: null,
        incident_id: id,
        actor: "system",
        channel: "alertmanager",
        reason: null,
        data: "{}",
        occurred_at: at,
        recorded_at: at,
      });
    }
    await store.db.transaction().execute(async (trx) => {
      await trx.insertInto("incidents").values(incidents).execute();
      await trx.insertInto("alerts").values(alerts).execute();
      await trx.insertInto("events").values(events).execute();
    });
  }
  return ids;
}

const call = (name: string, args: Record<string, unknown>) =>
  JSON.stringify({
    jsonrpc: "2.0",
    id: Math.floor(Math.random() * 1e9),
    method: "tools/call",
    params: { name, arguments: args },
  });

async function measure(
  mode: "embedded" | "distributed",
  n: number,
  bare: { port: number; pid: number },
  opts: Options,
) {
  const dir = mkdtempSync(join(tmpdir(), "pitcrew-bench-mcp-"));
  onCleanup(async () => rmSync(dir, { recursive: true, force: true }));
  const env: Record<string, string> = {
    DATA_DIR: join(dir, "data"),
    LOG_LEVEL: "warn",
    MCP_TOKENS: JSON.stringify([{ name: "bench", token: MCP_TOKEN, scopes: ["read"] }]),
  };
  if (mode === "distributed") env.DATABASE_URL = await benchDatabase();
  const store =
    mode === "distributed"
      ? openStore({ dialect: "mysql", url: env.DATABASE_URL!, poolSize: 2 })
      : openStore({ dialect: "sqlite", file: join(dir, "data", "pitcrew.db") });
  const t0 = performance.now();
  const ids = await seed(store, n);
  const seedS = round((performance.now() - t0) / 1000);
  await store.close();
  const server = await startServe(env);

  const headers = {
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
    authorization: `Bearer ${MCP_TOKEN}`,
  };
  const pick = () => ids[Math.floor(Math.random() * ids.length)]!;
  const tools = {
    get_incident: () => call("get_incident", { incident_id: pick() }),
    list_incidents: () => call("list_incidents", { cursor: pick(), limit: 50 }),
  };
  const out: Record<string, unknown> = { incidents: n, seed_s: seedS };
  for (const [tool, body] of Object.entries(tools)) {
    // One call checked by hand: a 200 carrying a JSON-RPC or tool error would count as a success.
    const check = (await (
      await fetch(`http://127.0.0.1:${server.port}/mcp`, { method: "POST", headers, body: body() })
    ).json()) as { result?: { isError?: boolean }; error?: unknown };
    if (!check.result || check.result.isError) throw new Error(`${tool}: ${JSON.stringify(check).slice(0, 500)}`);
    const run = (port: number, shape: { seconds?: number; amount?: number }) =>
      load({ url: `http://127.0.0.1:${port}/mcp`, connections: CONNECTIONS, ...shape, headers, body }, opts.quick);
    const shape = opts.quick ? { amount: 200 } : { seconds: 10 };
    if (!opts.quick) await run(bare.port, { amount: 500 });
    let cpu0 = cpuMs(bare.pid);
    const baseline = await run(bare.port, shape);
    const bareCpu = round((cpuMs(bare.pid) - cpu0) / baseline.requests, 3);
    if (!opts.quick) await run(server.port, { amount: 500 });
    cpu0 = cpuMs(server.pid);
    const pitcrew = await run(server.port, shape);
    const pitcrewCpu = round((cpuMs(server.pid) - cpu0) / pitcrew.requests, 3);
    out[tool] = {
      pitcrew: {
        calls_per_s: pitcrew.per_s,
        p50_ms: pitcrew.p50_ms,
        p99_ms: pitcrew.p99_ms,
        cpu_ms_per_call: pitcrewCpu,
      },
      bare: { calls_per_s: baseline.per_s, p50_ms: baseline.p50_ms, p99_ms: baseline.p99_ms, cpu_ms_per_call: bareCpu },
      ratio: round(pitcrew.per_s / baseline.per_s, 4),
      cpu_ratio: pitcrewCpu ? round(bareCpu / pitcrewCpu, 4) : null,
    };
  }
  out.rss_after_mb = rssMb(server.pid);
  await server.stop();
  return out;
}

export async function benchMcp(opts: Options, services: { distributed: boolean }) {
  const n = opts.quick ? 1000 : 100_000;
  const bare = await startBare();
  await sleep(100);
  const out: Record<string, unknown> = {
    connections: CONNECTIONS,
    run: opts.quick ? "200 calls per case" : "10 s per case, after 500 calls",
    baseline: "bare fastify route (bench/bare-server.mjs) answering the same JSON-RPC bodies",
  };
  progress(`mcp embedded, ${n} incidents`);
  out.embedded = await measure("embedded", n, bare, opts);
  if (services.distributed) {
    progress(`mcp on MariaDB, ${n} incidents`);
    out.distributed = await measure("distributed", n, bare, opts);
  } else out.distributed = { skipped: "MYSQL_URL does not answer" };
  await bare.stop();
  return out;
}
