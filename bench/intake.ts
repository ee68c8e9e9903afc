// Intake: AlertManager webhook posts at 64 connections, every post new alerts (new fingerprints),
// in payloads of 1, 10 and 100 alerts; embedded (SQLite, in-process queue) and distributed
// (MariaDB + JetStream). Each case runs on a fresh `pitcrew serve` (and a fresh database), so
// the analysis backlog one case leaves does not slow the next; beside it, the same bodies to a
// bare fastify route in a process started the same way.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { openStore, type Store } from "../src/store/db.ts";
import { NATS_URL } from "../test/helpers/services.ts";
import {
  benchDatabase,
  benchPrefix,
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
  watchRss,
} from "./lib.ts";

export const TOKEN = "bench-alertmanager-token-0123456789";
const SIZES = [1, 10, 100];
const CONNECTIONS = 64;

/** AlertManager's webhook body (version 4) with `n` alerts never sent before. */
export function alertBodies(alertname = "BenchIntake") {
  const tag = randomBytes(3).toString("hex");
  let next = 0;
  const startsAt = new Date().toISOString();
  return (n: number): string => {
    const alerts: string[] = [];
    for (let i = 0; i < n; i++) {
      const k = next++;
      alerts.push(
        `{"status":"firing","labels":{"alertname":"${alertname}","namespace":"bench-${k % 97}","pod":"load-${tag}-${k}","severity":"warning","job":"bench"},"annotations":{"summary":"benchmark alert ${k}"},"startsAt":"${startsAt}","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus:9090/graph?g0.expr=up","fingerprint":"${tag}${k.toString(16).padStart(10, "0")}"}`,
      );
    }
    return `{"receiver":"pitcrew","status":"firing","alerts":[${alerts.join(",")}],"groupLabels":{"alertname":"${alertname}"},"commonLabels":{"alertname":"${alertname}","job":"bench"},"commonAnnotations":{},"externalURL":"http://alertmanager:9093","version":"4","groupKey":"{}:{alertname=\\"${alertname}\\"}","truncatedAlerts":0}`;
  };
}

type Mode = "embedded" | "distributed";

/** The environment of a fresh control plane for `mode`, and a store on the same database to watch it. */
async function environment(mode: Mode, dir: string): Promise<{ env: Record<string, string>; store: Store }> {
  const env: Record<string, string> = { DATA_DIR: join(dir, "data"), ALERTMANAGER_TOKEN: TOKEN, LOG_LEVEL: "warn" };
  if (mode === "embedded") return { env, store: undefined as unknown as Store };
  env.DATABASE_URL = await benchDatabase();
  env.NATS_URL = NATS_URL;
  env.NATS_PREFIX = benchPrefix();
  const store = openStore({ dialect: "mysql", url: env.DATABASE_URL, poolSize: 1 });
  onCleanup(() => store.close());
  return { env, store };
}

/** Incidents by whether their analysis is done (posts still in the server when a run stops add more). */
async function analysisCounts(store: Store): Promise<{ waiting: number; done: number }> {
  const rows = await store.db
    .selectFrom("incidents")
    .select(["state", (eb) => eb.fn.countAll<number>().as("n")])
    .groupBy("state")
    .execute();
  let waiting = 0;
  let done = 0;
  for (const r of rows) {
    if (r.state === "detected" || r.state === "analyzing") waiting += Number(r.n);
    else done += Number(r.n);
  }
  return { waiting, done };
}

async function freshServer(mode: Mode) {
  const dir = mkdtempSync(join(tmpdir(), "pitcrew-bench-intake-"));
  onCleanup(async () => rmSync(dir, { recursive: true, force: true }));
  const { env, store: remote } = await environment(mode, dir);
  const server = await startServe(env);
  const store = remote ?? openStore({ dialect: "sqlite", file: join(dir, "data", "pitcrew.db") });
  if (!remote) onCleanup(() => store.close());
  return { server, store };
}

const headers = { "content-type": "application/json", authorization: `Bearer ${TOKEN}` };

async function runCase(
  target: Awaited<ReturnType<typeof freshServer>>,
  size: number,
  bare: { port: number; pid: number },
  opts: Options,
) {
  const { server, store } = target;
  const body = alertBodies();
  // The bare route is given bodies built beforehand, in turn, so that building them does not cap
  // its rate (it keeps nothing, so repeats change nothing for it); Pitcrew gets new alerts each time.
  const pool = Array.from({ length: 256 }, () => body(size));
  let turn = 0;
  const bareBody = () => pool[turn++ % pool.length]!;
  const run = (port: number, shape: { seconds?: number; amount?: number }, n = size) =>
    load(
      {
        url: `http://127.0.0.1:${port}/webhooks/alertmanager`,
        connections: opts.quick ? 8 : CONNECTIONS,
        ...shape,
        headers,
        body: port === bare.port && n === size ? bareBody : () => body(n),
      },
      opts.quick,
    );
  // --quick: 16 posts on 8 connections, all answered; else 10 s each, after a warm-up of one
  // single-alert post per connection (all answered, so none is still in the server when measuring).
  const shape = opts.quick ? { amount: 16 } : { seconds: 10 };
  if (!opts.quick) await run(bare.port, { amount: CONNECTIONS }, 1);
  let cpu0 = cpuMs(bare.pid);
  const baseline = await run(bare.port, shape);
  const bareCpu = cpuMs(bare.pid) - cpu0;
  if (!opts.quick) await run(server.port, { amount: CONNECTIONS }, 1);
  const rssIdle = rssMb(server.pid);
  const stopRss = watchRss(server.pid);
  cpu0 = cpuMs(server.pid);
  const pitcrew = await run(server.port, shape);
  // Posts still in the server when the run stopped are not counted, nor is the CPU they take after.
  const pitcrewCpu = cpuMs(server.pid) - cpu0;
  const rssLoad = stopRss();

  // How fast the analysis backlog left by the load drains (rules planner; no skill matches these
  // alerts): incidents whose analysis ended in the 5 s after the run.
  const before = await analysisCounts(store);
  let analysis: { backlog: number; analysed_per_s?: number } = { backlog: before.waiting };
  if (!opts.quick && before.waiting > 0) {
    const t0 = performance.now();
    await sleep(5000);
    const after = await analysisCounts(store);
    analysis = {
      backlog: before.waiting,
      analysed_per_s: Math.round((after.done - before.done) / ((performance.now() - t0) / 1000)),
    };
  }
  const figures = (r: Awaited<ReturnType<typeof run>>, cpu: number) => ({
    posts_per_s: r.per_s,
    alerts_per_s: r.per_s * size,
    p50_ms: r.p50_ms,
    p99_ms: r.p99_ms,
    posts: r.requests,
    cpu_ms_per_post: r.requests ? round(cpu / r.requests, 3) : null,
    ...(r.failed ? { failed: r.failed } : {}),
  });
  const p = figures(pitcrew, pitcrewCpu);
  const b = figures(baseline, bareCpu);
  return {
    pitcrew: p,
    bare: b,
    ratio: round(pitcrew.per_s / baseline.per_s, 4),
    // Bare's CPU per post over Pitcrew's: the share of a core's work per post that is the bare
    // minimum; steadier than the throughput ratio on a shared machine (MariaDB's own CPU not counted).
    cpu_ratio: p.cpu_ms_per_post && b.cpu_ms_per_post ? round(b.cpu_ms_per_post / p.cpu_ms_per_post, 4) : null,
    rss_before_mb: rssIdle,
    rss_under_load_mb: rssLoad,
    analysis,
  };
}

export async function benchIntake(opts: Options, services: { distributed: boolean }) {
  const bare = await startBare();
  const out: Record<string, unknown> = {
    connections: opts.quick ? 8 : CONNECTIONS,
    run: opts.quick ? "16 posts per case" : "10 s per case, after 64 single-alert posts",
    baseline: "bare fastify route (bench/bare-server.mjs), same bodies, its own process run by node the same way",
  };
  for (const mode of ["embedded", "distributed"] as const) {
    if (mode === "distributed" && !services.distributed) {
      out[mode] = { skipped: "MYSQL_URL or NATS_URL does not answer" };
      continue;
    }
    const cases: Record<string, unknown> = {};
    // --quick: one control plane for the three sizes; else a fresh one per size, so the analysis
    // backlog one size leaves does not slow the next.
    const shared = opts.quick ? await freshServer(mode) : undefined;
    for (const size of SIZES) {
      progress(`intake ${mode}, ${size} alert(s) per post`);
      const target = shared ?? (await freshServer(mode));
      cases[`alerts_per_post_${size}`] = await runCase(target, size, bare, opts);
      if (!shared) await target.server.stop();
    }
    await shared?.server.stop();
    out[mode] = cases;
  }
  await bare.stop();
  return out;
}
