// Dispatch latency: from the intake's commit of a new incident to a runner starting its fix task
// (rules planner: a crash-looping pod → the rollback skill), at light load (one alert every
// 100 ms). Read from what the system records: the `incident.detected` event's recorded_at (the
// intake transaction's clock; its commit follows within a few ms, so this errs long) and the
// fix task's started_at (the runner's clock when it reported task.started). The client's view,
// from the 2xx to started_at, is given beside it. Baseline: a raw JetStream round trip.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStore, type Store } from "../src/store/db.ts";
import { fixture, newTag } from "../test/helpers/alerts.ts";
import { makeBareRepo } from "../test/helpers/git.ts";
import { NATS_URL } from "../test/helpers/services.ts";
import { TOKEN } from "./intake.ts";
import { rawRoundTrip } from "./jetstream-raw.ts";
import {
  benchDatabase,
  benchPrefix,
  latencySummary,
  onCleanup,
  type Options,
  progress,
  round,
  sleep,
  startRunnerProcess,
  startServe,
} from "./lib.ts";

type Mode = "embedded" | "jetstream";

async function measure(mode: Mode, n: number) {
  const dir = mkdtempSync(join(tmpdir(), "pitcrew-bench-dispatch-"));
  onCleanup(async () => rmSync(dir, { recursive: true, force: true }));
  const repo = makeBareRepo(dir, [{ message: "init", files: { "README.md": "gitops\n" } }]);
  const common = { DATA_DIR: join(dir, "data"), GITOPS_PROVIDER: "local", GITOPS_REPO: repo, LOG_LEVEL: "warn" };
  const env: Record<string, string> = {
    ...common,
    ALERTMANAGER_TOKEN: TOKEN,
    MAX_PRS_PER_HOUR: "10000",
    MAX_PRS_PER_DAY: "100000",
    MAX_FIXES_PER_NAMESPACE: "1000",
  };
  let store: Store;
  if (mode === "jetstream") {
    env.DATABASE_URL = await benchDatabase();
    env.NATS_URL = NATS_URL;
    env.NATS_PREFIX = benchPrefix();
    store = openStore({ dialect: "mysql", url: env.DATABASE_URL, poolSize: 2 });
  }
  const server = await startServe(env);
  if (mode === "jetstream") {
    await startRunnerProcess({ ...common, NATS_URL, NATS_PREFIX: env.NATS_PREFIX!, RUNNER_CONCURRENCY: "4" });
  } else {
    store = openStore({ dialect: "sqlite", file: join(dir, "data", "pitcrew.db") });
  }
  onCleanup(() => store.close());

  const answered = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const res = await fetch(`http://127.0.0.1:${server.port}/webhooks/alertmanager`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify(fixture("crashloop-firing.json", newTag())),
    });
    const at = Date.now();
    if (!res.ok) throw new Error(`intake answered ${res.status}: ${await res.text()}`);
    const body = (await res.json()) as { incidents: string[] };
    for (const id of body.incidents) answered.set(id, at);
    await sleep(100);
  }

  const ids = [...answered.keys()];
  const deadline = Date.now() + 60_000;
  let started: Array<{ incident_id: string | null; started_at: number | null }> = [];
  for (;;) {
    started = await store!.db
      .selectFrom("tasks")
      .select(["incident_id", "started_at"])
      .where("incident_id", "in", ids)
      .where("kind", "in", ["skill", "agent"])
      .where("started_at", "is not", null)
      .execute();
    if (new Set(started.map((t) => t.incident_id)).size >= ids.length) break;
    if (Date.now() > deadline)
      throw new Error(`${ids.length - started.length} of ${ids.length} fix tasks not started after 60 s`);
    await sleep(100);
  }
  const detected = await store!.db
    .selectFrom("events")
    .select(["incident_id", "recorded_at"])
    .where("incident_id", "in", ids)
    .where("type", "=", "incident.detected")
    .execute();
  const detectedAt = new Map(detected.map((e) => [e.incident_id!, Number(e.recorded_at)]));
  const firstStart = new Map<string, number>();
  for (const t of started) {
    const at = Number(t.started_at);
    if (!firstStart.has(t.incident_id!) || at < firstStart.get(t.incident_id!)!) firstStart.set(t.incident_id!, at);
  }
  const fromCommit = ids.map((id) => firstStart.get(id)! - detectedAt.get(id)!);
  const fromResponse = ids.map((id) => firstStart.get(id)! - answered.get(id)!);
  await server.stop();
  return { incidents: ids.length, from_commit: latencySummary(fromCommit), from_2xx: latencySummary(fromResponse) };
}

export async function benchDispatch(opts: Options, services: { distributed: boolean; nats: boolean }) {
  const n = opts.quick ? 3 : 100;
  const out: Record<string, unknown> = {};
  if (services.nats) {
    progress("dispatch baseline: raw JetStream round trip");
    out.baseline_jetstream_round_trip = await rawRoundTrip(opts.quick ? 10 : 500);
  }
  if (services.distributed) {
    progress("dispatch on MariaDB + JetStream, runner process");
    const r = await measure("jetstream", n);
    const base = out.baseline_jetstream_round_trip as { p50_ms: number };
    out.jetstream = { ...r, p50_times_raw_round_trip: round(r.from_commit.p50_ms / base.p50_ms, 1) };
  } else out.jetstream = { skipped: "MYSQL_URL or NATS_URL does not answer" };
  progress("dispatch embedded (SQLite, in-process queue and runners)");
  out.embedded = await measure("embedded", n);
  return out;
}
