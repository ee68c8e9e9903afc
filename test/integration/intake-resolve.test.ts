import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listEvents } from "../../src/events/repo.ts";
import { applyTransition } from "../../src/incidents/service.ts";
import type { IncidentEvent } from "../../src/incidents/lifecycle.ts";
import { getIncident } from "../../src/incidents/repo.ts";
import { amPayload, fixture, fp, newTag, postAlerts } from "../helpers/alerts.ts";
import { intakeApp, TOKEN, type IntakeHarness } from "../helpers/intake-app.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";

// A resolve is matched to the occurrence it ends by fingerprint and startsAt, both written by
// AlertManager; Pitcrew's own clock (when it opened the incident) plays no part.

const factories = await storeFactories();
const SYSTEM = { actor: "test", channel: "test" };

/** A group of `n` firing alerts that each open their own incident, and its resolves `afterMs` later. */
function group(n: number, tag: string, startsAt: string) {
  const alerts = Array.from({ length: n }, (_, i) => ({
    status: "firing",
    labels: {
      alertname: "NodeExporterDown",
      namespace: `grp-${tag}`,
      instance: `10.1.${i >> 8}.${i & 255}:9100`,
      severity: "warning",
    },
    annotations: { summary: `node ${i} down` },
    startsAt,
    endsAt: "0001-01-01T00:00:00Z",
    fingerprint: fp(`node-${i}`, tag),
  }));
  return amPayload(alerts, `{}:{namespace="grp-${tag}"}`);
}

function resolvesOf(body: ReturnType<typeof group>, endsAt: string) {
  return { ...body, status: "resolved", alerts: body.alerts.map((a) => ({ ...a, status: "resolved", endsAt })) };
}

for (const f of factories) {
  describe.skipIf(!f.available)(`resolve matching on ${f.name}`, () => {
    let store: TestStore;
    let h: IntakeHarness;

    beforeAll(async () => {
      store = await f.make({ own: true });
      h = await intakeApp(store);
    });
    afterAll(async () => {
      await h?.close();
      await store?.close();
    });

    it("resolves all 400 incidents of a group whose resolves end before Pitcrew's clock says the incidents opened", async () => {
      const tag = newTag();
      // Pitcrew's clock is ten minutes ahead of AlertManager's: every endsAt is "before" opened_at.
      h.clock.set("2026-11-20T09:10:00Z");
      const body = group(400, tag, "2026-11-20T09:00:00Z");
      const fired = await postAlerts(h.app, body, TOKEN);
      expect(fired.statusCode).toBe(200);
      expect(fired.json().incidents).toHaveLength(400);
      h.clock.advance(5000);
      const res = await postAlerts(h.app, resolvesOf(body, "2026-11-20T09:00:05Z"), TOKEN);
      expect(res.statusCode).toBe(200);
      expect(new Set(res.json().outcomes.map((o: { outcome: string }) => o.outcome))).toEqual(new Set(["resolved"]));
      const states = await store.db
        .selectFrom("incidents")
        .select("state")
        .where("namespace", "=", `grp-${tag}`)
        .execute();
      expect(states.filter((s) => s.state !== "resolved")).toEqual([]);
      expect(states).toHaveLength(400);
      expect(
        await store.db
          .selectFrom("events")
          .select("id")
          .where("type", "=", "alert.stale_resolve")
          .where("data", "like", `%${fp("node-0", tag)}%`)
          .execute(),
      ).toHaveLength(0);
    });

    it("treats only a resolve of an older occurrence as stale: the re-fired incident stays open", async () => {
      const tag = newTag();
      h.clock.set("2026-11-20T11:06:00Z");
      const opened = (await postAlerts(h.app, fixture("flap-1-firing.json", tag), TOKEN)).json().incidents[0];
      h.clock.set("2026-11-20T11:10:00Z");
      const resolve = fixture("flap-2-resolved.json", tag);
      await postAlerts(h.app, resolve, TOKEN);
      h.clock.set("2026-11-20T11:26:00Z");
      expect((await postAlerts(h.app, fixture("flap-3-firing.json", tag), TOKEN)).json().incidents[0]).toBe(opened);
      // The first occurrence's resolve again, with a later endsAt (as after an AlertManager restart).
      h.clock.set("2026-11-20T11:30:00Z");
      resolve.alerts[0].endsAt = "2026-11-20T11:29:00Z";
      const late = await postAlerts(h.app, resolve, TOKEN);
      expect(late.json().outcomes[0]).toMatchObject({ outcome: "resolve_recorded", incidentId: opened });
      expect((await getIncident(store.db, opened))!.state).toBe("detected");
      const stale = await listEvents(store.db, { incidentId: opened, type: "alert.stale_resolve" });
      expect(stale).toHaveLength(1);
      expect(stale[0]!.reason).toMatch(/older occurrence/);
      // The resolve of the occurrence that fires now closes it.
      const current = fixture("flap-3-firing.json", tag);
      current.status = "resolved";
      current.alerts[0].status = "resolved";
      current.alerts[0].endsAt = "2026-11-20T11:31:00Z";
      expect((await postAlerts(h.app, current, TOKEN)).json().outcomes[0]).toMatchObject({
        outcome: "resolved",
        incidentId: opened,
      });
      h.clock.set("2026-11-20T08:15:00Z");
    });

    it("closes a grouped incident only when the last of its alerts resolves", async () => {
      const tag = newTag();
      const body = fixture("grouped-multi.json", tag);
      const id = (await postAlerts(h.app, body, TOKEN)).json().incidents[0];
      const resolves = (...i: number[]) => ({
        ...body,
        status: "resolved",
        alerts: i.map((n) => ({ ...body.alerts[n], status: "resolved", endsAt: "2026-11-20T10:00:00Z" })),
      });
      const two = await postAlerts(h.app, resolves(0, 2), TOKEN);
      expect(two.json().outcomes.map((o: { outcome: string }) => o.outcome)).toEqual([
        "resolve_recorded",
        "resolve_recorded",
      ]);
      expect((await getIncident(store.db, id))!.state).toBe("detected");
      // One timeline event for the two resolves of one payload.
      const partial = await listEvents(store.db, { incidentId: id, type: "alert.resolved" });
      expect(partial.map((e) => [e.reason, JSON.parse(e.data).alerts])).toEqual([
        ["2 of the incident's alerts resolved; others still fire", 2],
      ]);
      expect((await postAlerts(h.app, resolves(1), TOKEN)).json().outcomes[0]).toMatchObject({
        outcome: "resolved",
        incidentId: id,
      });
    });

    const closings: Record<string, IncidentEvent[]> = {
      rejected: ["analysis.started", "fix.proposed", "approval.rejected"],
      failed: ["analysis.started", "fix.failed"],
      suppressed: ["suppress"],
    };
    for (const [state, path] of Object.entries(closings)) {
      it(`attaches the resolve of a ${state} incident's alert to it and records it on its timeline`, async () => {
        const tag = newTag();
        const id = (await postAlerts(h.app, fixture("crashloop-firing.json", tag), TOKEN)).json().incidents[0];
        let inc = (await getIncident(store.db, id))!;
        for (const event of path)
          inc = await store.db
            .transaction()
            .execute((trx) => applyTransition(trx, store.dialect, inc, event, SYSTEM, h.clock.now));
        expect(inc.state).toBe(state);
        const res = await postAlerts(h.app, fixture("crashloop-resolved.json", tag), TOKEN);
        expect(res.json().outcomes[0]).toMatchObject({ outcome: "resolve_recorded", incidentId: id });
        const rows = await store.db
          .selectFrom("alerts")
          .select(["status", "incident_id"])
          .where("fingerprint", "=", fp("72f9ef95199423f0", tag))
          .orderBy("id")
          .execute();
        expect(rows).toEqual([
          { status: "firing", incident_id: id },
          { status: "resolved", incident_id: id },
        ]);
        const events = await listEvents(store.db, { incidentId: id, type: "alert.resolved" });
        expect(events).toHaveLength(1);
        expect(events[0]!.reason).toBe(`the alert resolved after the incident closed as ${state}`);
        expect((await getIncident(store.db, id))!.state).toBe(state);
      });
    }
  });
}
