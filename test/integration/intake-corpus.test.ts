import { connect } from "node:net";
import { join } from "node:path";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load.ts";
import { getIncident } from "../../src/incidents/repo.ts";
import { replay } from "../../src/main/replay.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { rulesPlanner } from "../../src/skills/planner.ts";
import type { Store } from "../../src/store/db.ts";
import { amPayload, fixture, fp, manifest, newTag, postAlerts } from "../helpers/alerts.ts";
import { intakeApp, TOKEN, type IntakeHarness } from "../helpers/intake-app.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";

// The corpus of valid-but-unusual AlertManager payloads: every one is stored completely, on both
// dialects, with 2xx. AlertManager never retries a 4xx, so a valid payload refused is lost.

const factories = await storeFactories();
const VALUE_CAP = 16_384;
const GOOD = join(import.meta.dirname, "..", "fixtures", "alertmanager", "good");

async function alertsOf(store: Store, fingerprint: string) {
  return store.db.selectFrom("alerts").selectAll().where("fingerprint", "=", fingerprint).orderBy("id").execute();
}

/** The stored set holds every name of the sent one; values are equal, or cut with their length. */
function expectSameSet(stored: Record<string, string>, sent: Record<string, string>, what: string) {
  expect(Object.keys(stored).sort(), what).toEqual(Object.keys(sent).sort());
  for (const [name, value] of Object.entries(sent)) {
    const kept = stored[name]!;
    if (value.length <= VALUE_CAP) expect(kept, `${what}.${name}`).toBe(value);
    else {
      expect(kept.length, `${what}.${name}`).toBeLessThanOrEqual(VALUE_CAP);
      expect(kept, `${what}.${name}`).toMatch(new RegExp(`…\\[truncated, ${value.length} chars\\]$`));
      expect(value.startsWith(kept.slice(0, kept.indexOf("…["))), `${what}.${name}`).toBe(true);
    }
  }
}

/** A group of `n` alerts as AlertManager sends it with max_alerts: 0. */
function group(n: number, tag: string, opts: { oneDeployment?: boolean } = {}) {
  const alerts = Array.from({ length: n }, (_, i) => ({
    status: "firing",
    labels: opts.oneDeployment
      ? {
          alertname: "KubePodCrashLooping",
          namespace: `big-${tag}`,
          pod: `api-7d9f8b6c5-${i.toString(36).padStart(5, "0")}`,
          container: "api",
          severity: "warning",
        }
      : {
          alertname: "NodeExporterDown",
          namespace: `big-${tag}`,
          instance: `10.0.${i >> 8}.${i & 255}:9100`,
          severity: "warning",
        },
    annotations: { summary: `alert ${i} of ${n}`, description: "d".repeat(200) },
    startsAt: "2026-11-20T08:00:00Z",
    endsAt: "0001-01-01T00:00:00Z",
    generatorURL: "http://prometheus-k8s-0:9090/graph?g0.expr=up",
    fingerprint: fp(`group-${i}`, tag),
  }));
  return amPayload(alerts, `{}:{namespace="big-${tag}"}`);
}

for (const f of factories) {
  describe.skipIf(!f.available)(`AlertManager corpus on ${f.name}`, () => {
    let store: TestStore;
    let h: IntakeHarness;

    beforeAll(async () => {
      // A private MySQL database: these groups add tens of thousands of rows.
      store = await f.make({ own: true });
      h = await intakeApp(store);
    });
    afterAll(async () => {
      await h?.close();
      await store?.close();
    });

    it("stores every alert of every valid fixture with 2xx, labels and annotations complete", async () => {
      for (const file of Object.keys(manifest.good)) {
        const tag = newTag();
        const body = fixture(file, tag);
        const res = await postAlerts(h.app, body, TOKEN);
        expect(res.statusCode, `${file}: ${res.body}`).toBe(200);
        for (const sent of body.alerts) {
          const rows = await alertsOf(store, sent.fingerprint);
          expect(rows, file).toHaveLength(1);
          const row = rows[0]!;
          expectSameSet(JSON.parse(row.labels), sent.labels, `${file} labels`);
          expectSameSet(JSON.parse(row.annotations ?? "{}"), sent.annotations ?? {}, `${file} annotations`);
          expect(row.receiver!.length, file).toBeLessThanOrEqual(255);
          expect(row.alertname.length, file).toBeLessThanOrEqual(255);
          if (row.incident_id) {
            const inc = (await getIncident(store.db, row.incident_id))!;
            expect(inc.severity?.length ?? 0, file).toBeLessThanOrEqual(64);
            expect(inc.namespace?.length ?? 0, file).toBeLessThanOrEqual(253);
          }
        }
      }
    });

    it("keeps values wider than their columns, cut with a marker that records the original length", async () => {
      const tag = newTag();
      const body = fixture("long-columns.json", tag);
      expect((await postAlerts(h.app, body, TOKEN)).statusCode).toBe(200);
      const [row] = await alertsOf(store, body.alerts[0].fingerprint);
      expect(row!.receiver).toMatch(/^team-platform-operations-.*…\[truncated, 305 chars\]$/);
      expect(row!.alertname).toMatch(/…\[truncated, 300 chars\]$/);
      expect(JSON.parse(row!.labels).alertname).toBe(body.alerts[0].labels.alertname);
      const inc = (await getIncident(store.db, row!.incident_id!))!;
      expect(inc.severity).toMatch(/…\[truncated, 80 chars\]$/);
      expect(inc.namespace!.length).toBeLessThanOrEqual(253);
    });

    it("keeps labels named __proto__, constructor and toString as data without polluting anything", async () => {
      const tags = [newTag(), newTag(), newTag()];
      for (const [i, file] of [
        "reserved-proto-label.json",
        "reserved-constructor-annotation.json",
        "reserved-js-names.json",
      ].entries()) {
        const body = fixture(file, tags[i]!);
        const res = await postAlerts(h.app, body, TOKEN);
        expect(res.statusCode, res.body).toBe(200);
        const [row] = await alertsOf(store, body.alerts[0].fingerprint);
        const inc = (await getIncident(store.db, row!.incident_id!))!;
        for (const stored of [row!.labels, inc.labels]) expect(stored).toBe(JSON.stringify(body.alerts[0].labels));
        expect(row!.annotations).toBe(JSON.stringify(body.alerts[0].annotations));
      }
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect(Object.prototype.toString.call({})).toBe("[object Object]");
      const [proto] = await alertsOf(store, fp("72f9ef95199423f0", tags[0]!));
      expect(proto!.labels).toContain('"__proto__":"polluted"');
    });

    it("stores a 10,000-alert group (over 1 MiB and the old 1,000-alert cap) in one payload", async () => {
      const tag = newTag();
      const body = JSON.stringify(group(10_000, tag, { oneDeployment: true }));
      expect(body.length).toBeGreaterThan(1_048_576);
      const res = await postAlerts(h.app, body, TOKEN);
      expect(res.statusCode, res.body.slice(0, 300)).toBe(200);
      expect(res.json().alerts).toBe(10_000);
      const [inc] = res.json().incidents as string[];
      const n = await store.db
        .selectFrom("alerts")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("incident_id", "=", inc!)
        .executeTakeFirstOrThrow();
      expect(Number(n.n)).toBe(10_000);
    }, 120_000);

    it("opens an incident for each of 1,001 alerts of one group", async () => {
      const tag = newTag();
      const res = await postAlerts(h.app, group(1001, tag), TOKEN);
      expect(res.statusCode, res.body.slice(0, 300)).toBe(200);
      const rows = await store.db
        .selectFrom("incidents")
        .select(["id", "state"])
        .where("namespace", "=", `big-${tag}`)
        .execute();
      expect(rows).toHaveLength(1001);
      expect(new Set(rows.map((r) => r.state))).toEqual(new Set(["detected"]));
      // The same group again (AlertManager's retry after a timeout): all repeats, nothing new.
      const again = await postAlerts(h.app, group(1001, tag), TOKEN);
      expect(new Set(again.json().outcomes.map((o: { outcome: string }) => o.outcome))).toEqual(new Set(["repeat"]));
    }, 120_000);

    it("takes at most ALERTMANAGER_MAX_ALERTS alerts of a payload and counts the rest as truncated", async () => {
      const capped = await intakeApp(store, { settings: { maxAlerts: 5 } });
      try {
        const tag = newTag();
        const res = await postAlerts(capped.app, group(8, tag, { oneDeployment: true }), TOKEN);
        expect(res.statusCode).toBe(200);
        expect(res.json().alerts).toBe(5);
        const inc = (await getIncident(store.db, res.json().incidents[0]))!;
        expect(inc.truncated_alerts).toBe(3);
      } finally {
        await capped.close();
      }
    });

    it("names the workload, never the exporter, as the service of kube-state-metrics and exporter alerts; replay agrees", async () => {
      const expected: Record<string, string | null> = {
        "replicas-mismatch.json": "cart",
        "quota-exceeded.json": null,
        "ksm-hpa-maxed.json": "web",
        "ksm-job-failed.json": "nightly-report-29180160",
        "ksm-daemonset.json": "log-shipper",
        "kafka-exporter-lag.json": null,
        "crashloop-firing.json": "checkout",
      };
      const config = loadConfig({ SKILLS_DIR: join(import.meta.dirname, "..", "..", "skills") });
      for (const [file, service] of Object.entries(expected)) {
        const res = await postAlerts(h.app, fixture(file, newTag()), TOKEN);
        const inc = (await getIncident(store.db, res.json().incidents[0]))!;
        expect(inc.service, file).toBe(service);
        const [replayed] = await replay(join(GOOD, file), config, rulesPlanner, silentLogger);
        expect(replayed!.incident.service, `replay ${file}`).toBe(service);
      }
    });
  });
}

describe.skipIf(!factories.every((f) => f.available))("a payload commits as a whole", () => {
  for (const f of factories) {
    it(`stores nothing of a payload that fails half way on ${f.name}, and all of it when AlertManager retries`, async () => {
      // A private database: the trigger that makes the 3rd alert's insert fail must not touch
      // other test files.
      const store = await f.make({ own: true });
      const h = await intakeApp(store);
      const tag = newTag();
      try {
        const body = group(6, tag);
        body.alerts[2]!.labels.alertname = `Boom${tag}`;
        if (f.name === "sqlite") {
          await sql
            .raw(
              `CREATE TRIGGER boom BEFORE INSERT ON alerts WHEN NEW.alertname = 'Boom${tag}' BEGIN SELECT RAISE(ABORT, 'boom'); END`,
            )
            .execute(store.db);
        } else {
          await sql
            .raw(
              `CREATE TRIGGER boom BEFORE INSERT ON alerts FOR EACH ROW BEGIN IF NEW.alertname = 'Boom${tag}' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'boom'; END IF; END`,
            )
            .execute(store.db);
        }
        const failed = await postAlerts(h.app, body, TOKEN);
        expect(failed.statusCode).toBe(500);
        const count = async (table: "alerts" | "incidents") =>
          Number(
            (
              await store.db
                .selectFrom(table)
                .select((eb) => eb.fn.countAll<number>().as("n"))
                .where("labels", "like", `%big-${tag}%`)
                .executeTakeFirstOrThrow()
            ).n,
          );
        expect(await count("alerts")).toBe(0);
        expect(await count("incidents")).toBe(0);
        expect(
          Number(
            (
              await store.db
                .selectFrom("outbox")
                .select((eb) => eb.fn.countAll<number>().as("n"))
                .executeTakeFirstOrThrow()
            ).n,
          ),
        ).toBe(0);

        await sql.raw("DROP TRIGGER boom").execute(store.db);
        const retried = await postAlerts(h.app, body, TOKEN);
        expect(retried.statusCode).toBe(200);
        expect(retried.json().outcomes.map((o: { outcome: string }) => o.outcome)).toEqual(Array(6).fill("opened"));
        expect(await count("alerts")).toBe(6);
        expect(await count("incidents")).toBe(6);
      } finally {
        await h.close();
        await store.close();
      }
    });
  }
});

describe("AlertManager webhook over a real connection", () => {
  const sqlite = factories.find((f) => f.name === "sqlite")!;

  /**
   * Sends the headers, then the body one byte every 200 ms; resolves with what came back once the
   * server closes, and how many bytes of the body had been sent by then.
   */
  function trickle(port: number, body: string, headers: string): Promise<{ text: string; sent: number }> {
    const socket = connect(port, "127.0.0.1");
    socket.write(
      `POST /webhooks/alertmanager HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n${headers}\r\n`,
    );
    let sent = 0;
    const timer = setInterval(() => {
      if (sent < body.length && !socket.destroyed) socket.write(body[sent++]!);
    }, 200);
    return new Promise((resolve) => {
      let text = "";
      const done = () => (clearInterval(timer), socket.destroy(), resolve({ text, sent }));
      socket.on("data", (d) => (text += d.toString()));
      socket.on("close", done);
      socket.on("error", done);
      setTimeout(() => ((text ||= "no answer"), done()), 8000);
    });
  }

  it("answers 408 to a body trickled slower than BODY_TIMEOUT and stores nothing; without a token the connection is cut too", async () => {
    const store = await sqlite.make();
    const h = await intakeApp(store, { requestTimeoutMs: 1000 });
    try {
      await h.app.listen({ port: 0, host: "127.0.0.1" });
      const port = (h.app.server.address() as { port: number }).port;
      const body = JSON.stringify(fixture("crashloop-firing.json", newTag()));
      const [authed, anonymous] = await Promise.all([
        trickle(port, body, `Authorization: Bearer ${TOKEN}\r\n`),
        trickle(port, body, ""),
      ]);
      // Both answered (within trickle's 8 s) long before the whole body could have arrived.
      expect(authed.text).toMatch(/^HTTP\/1\.1 408/);
      expect(authed.sent).toBeLessThan(body.length);
      // Refused at once, and the connection does not stay open for the rest of the body.
      expect(anonymous.text).toMatch(/^HTTP\/1\.1 401/);
      expect(anonymous.sent).toBeLessThan(body.length);
      expect(await store.db.selectFrom("alerts").select("id").execute()).toHaveLength(0);
    } finally {
      await h.close();
      await store.close();
    }
  });
});
