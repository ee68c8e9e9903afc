import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newTag } from "../helpers/alerts.ts";
import { intakeApp, TOKEN, type Clock, type IntakeHarness } from "../helpers/intake-app.ts";
import { freePort } from "../helpers/process.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";
import { waitFor } from "../helpers/wait.ts";

// A real AlertManager (Debian's prometheus-alertmanager 0.25) on loopback, notifying real
// listening Pitcrew apps through its own webhook notifier, one receiver per database dialect.
// Alerts are fired and resolved through AlertManager's API, as Prometheus would.

const BINARY = process.env.ALERTMANAGER_BIN ?? "/usr/bin/prometheus-alertmanager";
const IN_CI = !!process.env.CI && process.env.CI !== "false" && process.env.CI !== "0";
const available = existsSync(BINARY);
if (!available) {
  if (IN_CI) throw new Error(`${BINARY} is required in CI (.ci/run installs prometheus-alertmanager)`);
  process.stderr.write(
    `\n!!!!!!!! SKIPPING the real AlertManager test: ${BINARY} is missing (apt-get install prometheus-alertmanager) !!!!!!!!\n\n`,
  );
}

const factories = (await storeFactories()).filter((f) => f.available);
const DEPLOYMENTS = ["api", "web", "worker", "billing"];
const GROUP = 2000;

/** Pitcrew's clock is the wall clock here: AlertManager stamps real times. */
const wallClock: Clock = {
  get now() {
    return Date.now();
  },
  set() {},
  advance() {},
};

type Side = { name: string; store: TestStore; h: IntakeHarness; port: number; namespace: string };

describe.skipIf(!available)("a real AlertManager posting to Pitcrew", () => {
  const tag = newTag();
  const dir = mkdtempSync(join(tmpdir(), "pitcrew-am-"));
  const sides: Side[] = [];
  let am: ChildProcess | undefined;
  let amUrl = "";
  let amLog = "";

  beforeAll(async () => {
    for (const f of factories) {
      // A private MySQL database: each run stores thousands of alerts.
      const store = await f.make({ own: true });
      const h = await intakeApp(store, { clock: wallClock });
      await h.app.listen({ port: 0, host: "127.0.0.1" });
      sides.push({
        name: f.name,
        store,
        h,
        port: (h.app.server.address() as { port: number }).port,
        namespace: `am-${f.name}-${tag}`,
      });
    }
    const receivers = sides.map(
      (s) => `  - name: ${s.name}
    webhook_configs:
      - url: http://127.0.0.1:${s.port}/webhooks/alertmanager
        send_resolved: true
        max_alerts: 0
        http_config:
          authorization: { type: Bearer, credentials: ${TOKEN} }`,
    );
    writeFileSync(
      join(dir, "alertmanager.yml"),
      `route:
  receiver: ${sides[0]!.name}
  group_by: [namespace, alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
  routes:
${sides.map((s) => `    - receiver: ${s.name}\n      matchers: [ 'namespace="${s.namespace}"' ]`).join("\n")}
receivers:
${receivers.join("\n")}
`,
    );
    const port = await freePort();
    amUrl = `http://127.0.0.1:${port}`;
    am = spawn(
      BINARY,
      [
        `--config.file=${join(dir, "alertmanager.yml")}`,
        `--storage.path=${join(dir, "data")}`,
        `--web.listen-address=127.0.0.1:${port}`,
        "--cluster.listen-address=",
        "--log.level=warn",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    am.stdout!.on("data", (b) => (amLog += b));
    am.stderr!.on("data", (b) => (amLog += b));
    await waitFor(async () => (await fetch(`${amUrl}/-/ready`).catch(() => undefined))?.ok, 15_000, 100);
  }, 60_000);

  afterAll(async () => {
    if (am && am.exitCode === null) {
      const exited = new Promise((resolve) => am!.once("exit", resolve));
      am.kill("SIGTERM");
      await exited;
    }
    for (const s of sides) {
      await s.h.close();
      await s.store.close();
    }
    rmSync(dir, { recursive: true, force: true });
  });

  /** AlertManager's API v2, as Prometheus posts alerts. */
  async function postToAlertmanager(alerts: unknown[]) {
    const res = await fetch(`${amUrl}/api/v2/alerts`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(alerts),
    });
    expect(res.status, `${await res.text()}\n${amLog}`).toBe(200);
  }

  function alertsFor(s: Side, startsAt: string, endsAt?: string) {
    // A crash-looping rollout: 2,000 pods of four Deployments, one group (namespace, alertname).
    const pods = Array.from({ length: GROUP }, (_, i) => ({
      labels: {
        alertname: "KubePodCrashLooping",
        namespace: s.namespace,
        pod: `${DEPLOYMENTS[i % DEPLOYMENTS.length]}-7d9f8b6c5-${i.toString(36).padStart(5, "0")}`,
        container: DEPLOYMENTS[i % DEPLOYMENTS.length],
        severity: "warning",
        job: "kube-state-metrics",
      },
      annotations: { summary: "Pod is crash looping.", description: `pod ${i} restarts` },
    }));
    // A small group beside it: one alert, its own incident.
    const down = {
      labels: {
        alertname: "TargetDown",
        namespace: s.namespace,
        service: "payments-api",
        job: "payments-api",
        severity: "warning",
      },
      annotations: { summary: "Target is down." },
    };
    return [...pods, down].map((a) => ({
      ...a,
      startsAt,
      ...(endsAt ? { endsAt } : {}),
      generatorURL: "http://prometheus:9090/graph?g0.expr=up",
    }));
  }

  const count = async (s: Side, status: "firing" | "resolved") =>
    Number(
      (
        await s.store.db
          .selectFrom("alerts")
          .select((eb) => eb.fn.countAll<number>().as("n"))
          .where("status", "=", status)
          .where("labels", "like", `%"${s.namespace}"%`)
          .executeTakeFirstOrThrow()
      ).n,
    );
  const incidentsOf = (s: Side) =>
    s.store.db
      .selectFrom("incidents")
      .select(["id", "state", "service", "alertname"])
      .where("namespace", "=", s.namespace)
      .orderBy("id")
      .execute();

  it("stores every alert of a 2,000-alert group (max_alerts: 0) and resolves every incident after the resolves", async () => {
    const startsAt = new Date().toISOString();
    for (const s of sides) await postToAlertmanager(alertsFor(s, startsAt));
    for (const s of sides)
      await waitFor(async () => (await count(s, "firing")) === GROUP + 1, 30_000, 200).catch((err) =>
        Promise.reject(new Error(`${s.name}: ${err}\n${amLog}`)),
      );

    for (const s of sides) {
      const incidents = await incidentsOf(s);
      // Four Deployments (the crashloop skill's dedupe key) and the target: five incidents.
      expect(incidents.map((i) => i.service).sort(), s.name).toEqual([...DEPLOYMENTS, "payments-api"].sort());
      expect(new Set(incidents.map((i) => i.state)), s.name).toEqual(new Set(["detected"]));
      expect(
        await s.store.db
          .selectFrom("alerts")
          .select("id")
          .where("labels", "like", `%"${s.namespace}"%`)
          .where("incident_id", "is", null)
          .execute(),
        s.name,
      ).toHaveLength(0);
    }

    // The alerts ended half a second after they started: before Pitcrew had received the group
    // (group_wait alone is a second). The resolve still names the occurrence it ends.
    const endsAt = new Date(Date.parse(startsAt) + 500).toISOString();
    for (const s of sides) await postToAlertmanager(alertsFor(s, startsAt, endsAt));
    for (const s of sides) {
      await waitFor(async () => (await incidentsOf(s)).every((i) => i.state === "resolved"), 30_000, 200).catch(
        async (err) =>
          Promise.reject(new Error(`${s.name}: ${err}; states ${JSON.stringify(await incidentsOf(s))}\n${amLog}`)),
      );
      expect(await count(s, "resolved"), s.name).toBe(GROUP + 1);
      expect(await count(s, "firing"), s.name).toBe(GROUP + 1);
      const stale = await s.store.db
        .selectFrom("events")
        .select("id")
        .where("type", "=", "alert.stale_resolve")
        .where(
          "incident_id",
          "in",
          (await incidentsOf(s)).map((i) => i.id),
        )
        .execute();
      expect(stale, s.name).toHaveLength(0);
    }
  }, 90_000);
});
