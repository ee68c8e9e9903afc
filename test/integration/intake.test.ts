import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listEvents } from "../../src/events/repo.ts";
import { getIncident } from "../../src/incidents/repo.ts";
import { openStore, type Store } from "../../src/store/db.ts";
import { fixture, fixtureBody, fp, manifest, newTag, postAlerts } from "../helpers/alerts.ts";
import { intakeApp, makeClock, TOKEN, type IntakeHarness } from "../helpers/intake-app.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";
import { startTcpProxy } from "../helpers/tcp-proxy.ts";
import { MYSQL_URL } from "../helpers/services.ts";

const factories = await storeFactories();

async function alertsOf(store: Store, fingerprint: string) {
  return store.db.selectFrom("alerts").selectAll().where("fingerprint", "=", fingerprint).orderBy("id").execute();
}

async function incidentsOf(store: Store, fingerprint: string) {
  const ids = (await alertsOf(store, fingerprint)).map((a) => a.incident_id).filter((x): x is string => !!x);
  if (ids.length === 0) return [];
  return store.db
    .selectFrom("incidents")
    .selectAll()
    .where("id", "in", [...new Set(ids)])
    .orderBy("id")
    .execute();
}

async function analyzeTasks(store: Store, incidentId: string) {
  return store.db
    .selectFrom("tasks")
    .selectAll()
    .where("incident_id", "=", incidentId)
    .where("kind", "=", "incident.analyze")
    .execute();
}

for (const f of factories) {
  describe.skipIf(!f.available)(`AlertManager intake on ${f.name}`, () => {
    let store: TestStore;
    let h: IntakeHarness;

    beforeAll(async () => {
      store = await f.make();
      h = await intakeApp(store);
    });
    afterAll(async () => {
      await h?.close();
      await store?.close();
    });

    it("opens an incident for a firing KubePodCrashLooping, with its alert, event and queued analysis", async () => {
      const tag = newTag();
      const res = await postAlerts(h.app, fixture("crashloop-firing.json", tag), TOKEN);
      expect(res.statusCode).toBe(200);
      const [inc] = await incidentsOf(store, fp("72f9ef95199423f0", tag));
      expect(inc).toMatchObject({
        state: "detected",
        source: "alertmanager",
        alertname: "KubePodCrashLooping",
        namespace: `payments-${tag}`,
        service: "checkout",
        severity: "warning",
      });
      expect(inc!.title).toBe(`KubePodCrashLooping payments-${tag}/checkout: Pod is crash looping.`);
      expect(res.json()).toMatchObject({ status: "accepted", alerts: 1, incidents: [inc!.id] });
      const tasks = await analyzeTasks(store, inc!.id);
      expect(tasks).toHaveLength(1);
      const outbox = await store.db.selectFrom("outbox").select("msg_id").where("msg_id", "=", tasks[0]!.id).execute();
      expect(outbox).toHaveLength(1);
      expect((await listEvents(store.db, { incidentId: inc!.id })).map((e) => e.type)).toEqual([
        "incident.detected",
        "task.created",
      ]);
    });

    it("counts a repeated notification on the same alert row and the same incident", async () => {
      const tag = newTag();
      await postAlerts(h.app, fixture("crashloop-firing.json", tag), TOKEN);
      const res = await postAlerts(h.app, fixture("crashloop-repeat.json", tag), TOKEN);
      expect(res.json().outcomes[0].outcome).toBe("repeat");
      const alerts = await alertsOf(store, fp("72f9ef95199423f0", tag));
      expect(alerts).toHaveLength(1);
      expect(alerts[0]!.repeat_count).toBe(1);
      expect(await incidentsOf(store, fp("72f9ef95199423f0", tag))).toHaveLength(1);
    });

    it("closes the incident when its alert resolves after it opened", async () => {
      const tag = newTag();
      h.clock.set("2026-11-20T08:15:00Z");
      await postAlerts(h.app, fixture("crashloop-firing.json", tag), TOKEN);
      const [opened] = await incidentsOf(store, fp("72f9ef95199423f0", tag));
      h.clock.set("2026-11-20T09:00:00Z");
      const res = await postAlerts(h.app, fixture("crashloop-resolved.json", tag), TOKEN);
      expect(res.json().outcomes[0]).toMatchObject({ outcome: "resolved", incidentId: opened!.id });
      const inc = (await getIncident(store.db, opened!.id))!;
      expect(inc.state).toBe("resolved");
      expect(inc.open_key).toBeNull();
      expect(Number(inc.resolved_at)).toBe(Date.parse("2026-11-20T09:00:00Z"));
      const resolvedEvent = (await listEvents(store.db, { incidentId: inc.id, type: "incident.resolved" }))[0]!;
      expect(resolvedEvent.actor).toBe("alertmanager");
      expect(JSON.parse(resolvedEvent.data)).toMatchObject({ from: "detected", event: "alert.resolved" });
    });

    it("closes the incident on the resolve of its occurrence even when AlertManager's endsAt is before Pitcrew opened it", async () => {
      const tag = newTag();
      // Pitcrew's clock runs ahead of AlertManager's (or the group took a while to arrive): the
      // resolve's endsAt is before opened_at, yet it names the very occurrence the incident holds.
      h.clock.set("2026-11-20T11:00:00Z");
      await postAlerts(h.app, fixture("crashloop-firing.json", tag), TOKEN);
      const [inc] = await incidentsOf(store, fp("72f9ef95199423f0", tag));
      const res = await postAlerts(h.app, fixture("crashloop-resolved.json", tag), TOKEN);
      expect(res.json().outcomes[0]).toMatchObject({ outcome: "resolved", incidentId: inc!.id });
      expect((await getIncident(store.db, inc!.id))!.state).toBe("resolved");
      expect(await listEvents(store.db, { incidentId: inc!.id, type: "alert.stale_resolve" })).toHaveLength(0);
      h.clock.set("2026-11-20T08:15:00Z");
    });

    it("ignores a resolve without a fingerprint and stores nothing for it", async () => {
      const tag = newTag();
      const body = fixture("crashloop-resolved.json", tag);
      delete body.alerts[0].fingerprint;
      const res = await postAlerts(h.app, body, TOKEN);
      expect(res.statusCode).toBe(200);
      expect(res.json().outcomes[0].outcome).toBe("ignored");
      expect(
        await store.db.selectFrom("alerts").select("id").where("labels", "like", `%payments-${tag}%`).execute(),
      ).toHaveLength(0);
    });

    it("groups three crash-looping pods of one deployment into one incident by the skill's dedupe key", async () => {
      const tag = newTag();
      const res = await postAlerts(h.app, fixture("grouped-multi.json", tag), TOKEN);
      expect(res.statusCode).toBe(200);
      const fps = manifest.good["grouped-multi.json"]!.fingerprints.map((x) => fp(x, tag));
      const incidents = new Set((await Promise.all(fps.map((x) => incidentsOf(store, x)))).flat().map((i) => i.id));
      expect(incidents.size).toBe(1);
      const inc = (await getIncident(store.db, [...incidents][0]!))!;
      expect(inc.dedupe_key).toBe(`d:crashloop-after-deploy:orders-${tag}/api`);
      expect(await store.db.selectFrom("alerts").select("id").where("incident_id", "=", inc.id).execute()).toHaveLength(
        3,
      );
      expect(await analyzeTasks(store, inc.id)).toHaveLength(1);
    });

    it("stores concurrent payloads each as it would be alone: one incident per alert, a re-sent payload a repeat", async () => {
      const tag = newTag();
      const base = fixture("crashloop-firing.json", tag);
      const payload = (i: number) => ({
        ...base,
        groupKey: `${base.groupKey}-${i}`,
        alerts: [
          {
            ...base.alerts[0],
            fingerprint: `${tag}c${String(i).padStart(4, "0")}`,
            labels: { ...base.alerts[0].labels, alertname: "ConcurrentIntake", pod: `pod-${tag}-${i}` },
          },
        ],
      });
      // 20 distinct alerts, 10 of them sent a second time at the same moment (AlertManager's retry).
      const bodies = [
        ...Array.from({ length: 20 }, (_, i) => payload(i)),
        ...Array.from({ length: 10 }, (_, i) => payload(i)),
      ];
      const answers = await Promise.all(bodies.map((b) => postAlerts(h.app, b, TOKEN)));
      expect(answers.map((a) => a.statusCode)).toEqual(bodies.map(() => 200));
      const outcomes = answers.map((a) => a.json().outcomes[0].outcome as string);
      for (let i = 0; i < 10; i++)
        expect([outcomes[i], outcomes[20 + i]].sort(), `alert ${i}`).toEqual(["opened", "repeat"]);
      expect(outcomes.slice(10, 20)).toEqual(Array(10).fill("opened"));
      for (let i = 0; i < 20; i++) {
        const fingerprint = `${tag}c${String(i).padStart(4, "0")}`;
        expect(await alertsOf(store, fingerprint), fingerprint).toHaveLength(1);
        const [inc, ...more] = await incidentsOf(store, fingerprint);
        expect(more, fingerprint).toEqual([]);
        expect(await analyzeTasks(store, inc!.id), fingerprint).toHaveLength(1);
        const opened = (await listEvents(store.db, { incidentId: inc!.id })).filter(
          (e) => e.type === "incident.detected",
        );
        expect(opened, fingerprint).toHaveLength(1);
      }
    });

    it("lets the event loop turn while it stores a 3,000-alert group, so /healthz answers meanwhile", async () => {
      const tag = newTag();
      const body = fixture("crashloop-firing.json", tag);
      const one = body.alerts[0];
      body.alerts = Array.from({ length: 3000 }, (_, i) => ({
        ...one,
        // No skill groups these: 3,000 incidents, each with its rows.
        labels: { ...one.labels, alertname: "BigGroupTest", pod: `big-${tag}-${i}` },
        fingerprint: `${tag}${i.toString(16).padStart(8, "0")}`,
      }));
      // Turns of the event loop while the payload is stored: the route and the group commit take
      // one or two; a write that never gave the loop back would add none.
      let turns = 0;
      let stored = false;
      const turn = () => {
        turns++;
        if (!stored) setImmediate(turn);
      };
      setImmediate(turn);
      const res = await postAlerts(h.app, body, TOKEN);
      stored = true;
      expect(res.statusCode).toBe(200);
      const rows = await store.db
        .selectFrom("alerts")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("fingerprint", "like", `${tag}%`)
        .executeTakeFirstOrThrow();
      expect(Number(rows.n)).toBe(3000);
      expect(turns).toBeGreaterThan(5);
    });

    it("records truncatedAlerts on the incident", async () => {
      const tag = newTag();
      const res = await postAlerts(h.app, fixture("truncated-group.json", tag), TOKEN);
      const inc = (await getIncident(store.db, res.json().incidents[0]))!;
      expect(inc.truncated_alerts).toBe(7);
      const detected = (await listEvents(store.db, { incidentId: inc.id, type: "incident.detected" }))[0]!;
      expect(JSON.parse(detected.data).truncatedAlerts).toBe(7);
    });

    it("keeps unicode and long annotations intact", async () => {
      const tag = newTag();
      const body = fixture("unicode-long.json", tag);
      const res = await postAlerts(h.app, body, TOKEN);
      expect(res.statusCode).toBe(200);
      const alert = (await alertsOf(store, body.alerts[0].fingerprint))[0]!;
      expect(JSON.parse(alert.annotations)).toEqual(body.alerts[0].annotations);
      expect(alert.annotations).toContain("🚨");
    });

    it("handles a group mixing a firing and a resolved alert, one outcome each", async () => {
      const tag = newTag();
      const res = await postAlerts(h.app, fixture("mixed-status.json", tag), TOKEN);
      expect(res.statusCode).toBe(200);
      expect(res.json().outcomes.map((o: { outcome: string }) => o.outcome)).toEqual(["opened", "resolve_recorded"]);
    });

    it("tolerates fields that newer AlertManager versions add", async () => {
      const res = await postAlerts(h.app, fixture("newer-fields.json", newTag()), TOKEN);
      expect(res.statusCode).toBe(200);
      expect(res.json().outcomes[0].outcome).toBe("opened");
    });

    // fixture (posted alone, fresh ids) → the outcome of each of its alerts.
    const OUTCOMES: Record<string, string[]> = {
      "argocd-outofsync.json": ["opened"],
      "cpu-throttling.json": ["opened"],
      "crashloop-firing.json": ["opened"],
      "crashloop-repeat.json": ["opened"],
      "crashloop-resolved.json": ["resolve_recorded"],
      "flap-1-firing.json": ["opened"],
      "flap-2-resolved.json": ["resolve_recorded"],
      "flap-3-firing.json": ["opened"],
      "grouped-multi.json": ["opened", "joined", "joined"],
      "mixed-status.json": ["opened", "resolve_recorded"],
      "newer-fields.json": ["opened"],
      "quota-exceeded.json": ["opened"],
      "replicas-mismatch.json": ["opened"],
      "target-down.json": ["opened"],
      "truncated-group.json": ["opened", "joined"],
      "unicode-long.json": ["opened"],
      "reserved-proto-label.json": ["opened"],
      "reserved-constructor-annotation.json": ["opened"],
      "reserved-js-names.json": ["opened"],
      "long-annotation.json": ["opened"],
      "long-columns.json": ["opened"],
      "many-labels.json": ["opened"],
      "unicode-names.json": ["opened"],
      "ksm-hpa-maxed.json": ["opened"],
      "ksm-job-failed.json": ["opened"],
      "ksm-daemonset.json": ["opened"],
      "kafka-exporter-lag.json": ["opened"],
    };

    it("gives every good fixture its expected outcomes, incidents, states and events", async () => {
      expect(Object.keys(OUTCOMES).sort()).toEqual(Object.keys(manifest.good).sort());
      for (const [file, m] of Object.entries(manifest.good)) {
        const tag = newTag();
        h.clock.set("2026-11-20T08:00:00Z");
        const res = await postAlerts(h.app, fixture(file, tag), TOKEN);
        expect(res.statusCode, `${file}: ${res.body}`).toBe(200);
        const outcomes = res.json().outcomes as Array<{ outcome: string; incidentId: string | null }>;
        expect(
          outcomes.map((o) => o.outcome),
          file,
        ).toEqual(OUTCOMES[file]);
        for (const x of m.fingerprints) expect((await alertsOf(store, fp(x, tag))).length, `${file} ${x}`).toBe(1);
        // Each opened incident: detected, its detection event, one analysis job through the outbox.
        for (const o of outcomes.filter((x) => x.outcome === "opened")) {
          const inc = (await getIncident(store.db, o.incidentId!))!;
          expect(inc.state, file).toBe("detected");
          expect(inc.truncated_alerts, file).toBe(m.truncatedAlerts);
          const joins = outcomes.filter((x) => x.outcome === "joined").length;
          // The alerts that joined in the same payload: one event that counts them.
          expect(
            (await listEvents(store.db, { incidentId: inc.id })).map((e) => e.type),
            file,
          ).toEqual(["incident.detected", "task.created", ...(joins ? ["alert.joined"] : [])]);
          if (joins)
            expect(
              JSON.parse((await listEvents(store.db, { incidentId: inc.id, type: "alert.joined" }))[0]!.data).alerts,
              file,
            ).toBe(joins);
          const [job] = await analyzeTasks(store, inc.id);
          expect(
            await store.db.selectFrom("outbox").select("id").where("msg_id", "=", job!.id).execute(),
            file,
          ).toHaveLength(1);
        }
        // Joined alerts sit on the incident their group opened.
        const opened = outcomes.find((o) => o.outcome === "opened")?.incidentId;
        for (const o of outcomes.filter((x) => x.outcome === "joined")) expect(o.incidentId, file).toBe(opened);
      }
      h.clock.set("2026-11-20T08:15:00Z");
    });

    it("answers every bad fixture with 400 and its code, storing nothing", async () => {
      for (const [file, m] of Object.entries(manifest.bad)) {
        const tag = newTag();
        const res = await postAlerts(
          h.app,
          fixtureBody("bad", file, tag),
          TOKEN,
          m.contentType ? { "content-type": m.contentType } : {},
        );
        expect(res.statusCode, `${file}: ${res.body}`).toBe(400);
        expect(res.json().error.code, file).toBe(m.code);
        expect(res.body).not.toMatch(/\n\s+at /);
        const stored = await store.db.selectFrom("alerts").select("id").where("labels", "like", `%-${tag}%`).execute();
        expect(stored, file).toHaveLength(0);
      }
    });

    it("refuses requests without valid credentials with 401 and a challenge", async () => {
      const body = fixture("crashloop-firing.json", newTag());
      const none = await postAlerts(h.app, body, undefined);
      expect(none.statusCode).toBe(401);
      expect(none.headers["www-authenticate"]).toContain("Bearer");
      expect((await postAlerts(h.app, body, "wrong-token-0000000000")).statusCode).toBe(401);
      const badUser = `Basic ${Buffer.from(`someone:${TOKEN}`).toString("base64")}`;
      expect((await postAlerts(h.app, body, undefined, { authorization: badUser })).statusCode).toBe(401);
      const basic = `Basic ${Buffer.from(`alertmanager:${TOKEN}`).toString("base64")}`;
      expect((await postAlerts(h.app, body, undefined, { authorization: basic })).statusCode).toBe(200);
    });

    it("refuses a body over the limit with 413 and stores nothing", async () => {
      const small = await intakeApp(store, { bodyLimit: 4096 });
      try {
        const tag = newTag();
        const res = await postAlerts(small.app, fixture("unicode-long.json", tag), TOKEN);
        expect(res.statusCode).toBe(413);
        expect(res.json().error.code).toBe("request.too_large");
        expect(
          await store.db.selectFrom("alerts").select("id").where("labels", "like", `%-${tag}%`).execute(),
        ).toHaveLength(0);
      } finally {
        await small.close();
      }
    });

    it("counts alerts by outcome, payloads by status and intake durations in /metrics", async () => {
      await postAlerts(h.app, fixture("crashloop-firing.json", newTag()), TOKEN);
      const m = (await h.app.inject({ method: "GET", url: "/metrics" })).body;
      expect(m).toMatch(/pitcrew_alerts_received_total\{outcome="opened"\} [1-9]/);
      expect(m).toMatch(/pitcrew_alert_payloads_total\{status="accepted"\} [1-9]/);
      expect(m).toMatch(/pitcrew_alert_payloads_total\{status="invalid"\} [1-9]/);
      expect(m).toMatch(/pitcrew_alertmanager_intake_duration_seconds_count\{outcome="stored"\} [1-9]/);
      expect(m).toMatch(/pitcrew_alertmanager_intake_duration_seconds_count\{outcome="invalid"\} [1-9]/);
    });

    it("accepts requests without credentials only when auth is explicitly off", async () => {
      const open = await intakeApp(store, { auth: { mode: "none" } });
      try {
        expect((await postAlerts(open.app, fixture("crashloop-firing.json", newTag()), undefined)).statusCode).toBe(
          200,
        );
      } finally {
        await open.close();
      }
    });
  });
}

describe("AlertManager intake with the database down", () => {
  const sqlite = factories.find((f) => f.name === "sqlite")!;
  it("answers 503 while SQLite is unavailable and stores the retry once", async () => {
    const store = await sqlite.make();
    const tag = newTag();
    const clock = makeClock();
    const down = openStore(store.database);
    const h1 = await intakeApp(down, { clock });
    await down.ping(); // Kysely only really closes a driver that has been used
    await down.close();
    const res = await postAlerts(h1.app, fixture("crashloop-firing.json", tag), TOKEN);
    expect(res.statusCode).toBe(503);
    expect(res.headers["retry-after"]).toBe("5");
    expect(res.json().error.code).toBe("store.unavailable");
    await h1.close();

    const h2 = await intakeApp(store, { clock });
    expect((await postAlerts(h2.app, fixture("crashloop-firing.json", tag), TOKEN)).statusCode).toBe(200);
    expect((await postAlerts(h2.app, fixture("crashloop-firing.json", tag), TOKEN)).statusCode).toBe(200);
    expect(await alertsOf(store, fp("72f9ef95199423f0", tag))).toHaveLength(1);
    expect(await incidentsOf(store, fp("72f9ef95199423f0", tag))).toHaveLength(1);
    await h2.close();
    await store.close();
  });

  const mysql = factories.find((f) => f.name === "mysql")!;
  it.skipIf(!mysql.available)(
    "answers 503 while MySQL is unreachable and stores AlertManager's retry once when it is back",
    async () => {
      const proxy = await startTcpProxy(MYSQL_URL);
      const store = openStore({ dialect: "mysql", url: proxy.url, poolSize: 4 });
      const h = await intakeApp(store);
      const tag = newTag();
      try {
        await proxy.down();
        const res = await postAlerts(h.app, fixture("crashloop-firing.json", tag), TOKEN);
        expect(res.statusCode).toBe(503);
        expect(res.json().error.code).toBe("store.unavailable");
        await proxy.up();
        let retry = await postAlerts(h.app, fixture("crashloop-firing.json", tag), TOKEN);
        // The pool may hand out a connection the outage killed once more; AlertManager retries again.
        for (let i = 0; i < 5 && retry.statusCode === 503; i++)
          retry = await postAlerts(h.app, fixture("crashloop-firing.json", tag), TOKEN);
        expect(retry.statusCode).toBe(200);
        expect(await alertsOf(store, fp("72f9ef95199423f0", tag))).toHaveLength(1);
        expect(await incidentsOf(store, fp("72f9ef95199423f0", tag))).toHaveLength(1);
      } finally {
        await h.close();
        await store.close();
        await proxy.close();
      }
    },
  );
});
