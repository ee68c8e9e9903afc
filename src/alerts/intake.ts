import { createHash } from "node:crypto";
import type { Logger } from "../shared/logger.ts";
import type { Store } from "../store/db.ts";
import type { Executor } from "../store/sql.ts";
import type { IncidentRow } from "../store/schema.ts";
import { isDuplicateKey } from "../store/sql.ts";
import { appendEvent } from "../events/repo.ts";
import { isAppError } from "../shared/errors.ts";
import { newId } from "../shared/ids.ts";
import { applyTransition, closeAsResolved } from "../incidents/service.ts";
import { countFailedIncidents, findOpenByKey, findOpenWithFingerprint, findRecentlyResolved, latestStatusByFingerprint, newIncidentRow } from "../incidents/repo.ts";
import { queueAnalysis } from "../incidents/analysis.ts";
import { rankSkills } from "../skills/match.ts";
import { renderTemplate } from "../skills/template.ts";
import type { Skill } from "../skills/schema.ts";
import { formatDuration } from "../shared/duration.ts";
import { normalizeAlert, type LabelMapping, type NormalizedAlert } from "./normalize.ts";
import type { AlertmanagerPayload } from "./payload.ts";
import { isRetryableDbError } from "../store/errors.ts";

export type IntakeSettings = { flapWindowMs: number; flapLimit: number; maxFailedFixes: number; labels: LabelMapping };

export type AlertOutcome =
  | { outcome: "opened" | "joined" | "reopened" | "repeat" | "resolved" | "resolve_recorded"; incidentId: string | null; fingerprint: string }
  | { outcome: "ignored"; incidentId: null; fingerprint: string; why: string };

export type IntakeDeps = { store: Store; log: Logger; now: () => number; skills: () => Skill[]; settings: IntakeSettings; onCommitted?: () => void };

const SYSTEM = { actor: "alertmanager", channel: "alertmanager" } as const;

/** The key an open incident is found by: the matching skill's dedupe key, else the fingerprint. */
export function openKeyFor(a: NormalizedAlert, skills: Skill[]): { key: string; skill?: string } {
  const skill = rankSkills(skills, a).find((s) => s.dedupe_key);
  if (skill?.dedupe_key) {
    try {
      const rendered = renderTemplate(skill.dedupe_key, {
        labels: a.labels,
        annotations: a.annotations,
        incident: { namespace: a.namespace, service: a.service, severity: a.severity, alertname: a.alertname, fingerprint: a.fingerprint },
      });
      return { key: `d:${skill.name}:${rendered}`.slice(0, 255), skill: skill.name };
    } catch {
      // A label the key needs is missing on this alert: fall back to the fingerprint.
    }
  }
  return { key: `f:${a.fingerprint}` };
}

/** One alert instance: the same alert repeated by AlertManager, or a retried POST, has one row. */
function instanceKey(a: NormalizedAlert): string {
  return createHash("sha256").update(`${a.fingerprint}|${a.status}|${a.startsAt}|${a.endsAt ?? ""}`).digest("hex").slice(0, 40);
}

export function createAlertIntake(deps: IntakeDeps) {
  const { store, settings } = deps;
  const log = deps.log.child({ component: "alert-intake" });

  async function insertAlert(trx: Executor, a: NormalizedAlert, incidentId: string | null, payload: AlertmanagerPayload, now: number) {
    await trx
      .insertInto("alerts")
      .values({
        id: newId("alr", now),
        incident_id: incidentId,
        fingerprint: a.fingerprint,
        status: a.status,
        alertname: a.alertname,
        labels: JSON.stringify(a.labels),
        annotations: JSON.stringify(a.annotations),
        starts_at: a.startsAt,
        ends_at: a.endsAt,
        generator_url: a.generatorURL,
        receiver: payload.receiver,
        group_key: payload.groupKey,
        received_at: now,
        dedupe: instanceKey(a),
        repeat_count: 0,
        last_received_at: now,
      })
      .execute();
  }

  /** Returns true when this alert instance was already stored (and counts the repeat). */
  async function recordRepeat(trx: Executor, a: NormalizedAlert, now: number): Promise<{ incidentId: string | null } | undefined> {
    const seen = await trx.selectFrom("alerts").select(["id", "incident_id"]).where("dedupe", "=", instanceKey(a)).executeTakeFirst();
    if (!seen) return undefined;
    await trx.updateTable("alerts").set((eb) => ({ repeat_count: eb("repeat_count", "+", 1), last_received_at: now })).where("id", "=", seen.id).execute();
    return { incidentId: seen.incident_id };
  }

  const queueAnalysisOf = (trx: Executor, incident: IncidentRow, now: number) => queueAnalysis(trx, store.dialect, incident, SYSTEM, now);


  async function firing(a: NormalizedAlert, payload: AlertmanagerPayload, now: number): Promise<AlertOutcome> {
    const { key, skill } = openKeyFor(a, deps.skills());
    return store.db.transaction().execute(async (trx) => {
      const repeat = await recordRepeat(trx, a, now);
      if (repeat) return { outcome: "repeat", incidentId: repeat.incidentId, fingerprint: a.fingerprint };

      const open = await findOpenByKey(trx, key);
      if (open) {
        await insertAlert(trx, a, open.id, payload, now);
        await trx.updateTable("incidents").set({ updated_at: now, truncated_alerts: Math.max(open.truncated_alerts, payload.truncatedAlerts) }).where("id", "=", open.id).execute();
        await appendEvent(trx, store.dialect, { type: "alert.joined", incidentId: open.id, ...SYSTEM, data: { fingerprint: a.fingerprint, alertname: a.alertname, startsAt: a.startsAt } , occurredAt: now }, now);
        return { outcome: "joined", incidentId: open.id, fingerprint: a.fingerprint };
      }

      const recent = await findRecentlyResolved(trx, a.fingerprint, now - settings.flapWindowMs);
      if (recent) {
        const flaps = recent.flap_count + 1;
        let inc = await applyTransition(trx, store.dialect, recent, "reopen", { ...SYSTEM, reason: `re-fired within ${formatDuration(settings.flapWindowMs)} of resolving (flap ${flaps})`, data: { fingerprint: a.fingerprint, flaps } }, now, {
          open_key: key,
          flap_count: flaps,
          resolved_at: null,
        });
        await insertAlert(trx, a, inc.id, payload, now);
        if (flaps > settings.flapLimit) {
          await appendEvent(trx, store.dialect, { type: "guardrail.flap_limit", incidentId: inc.id, ...SYSTEM, reason: `flapped ${flaps} times, over FLAP_LIMIT ${settings.flapLimit}`, data: { flaps, limit: settings.flapLimit }, occurredAt: now }, now);
          inc = await applyTransition(trx, store.dialect, inc, "escalate", { ...SYSTEM, reason: `flapping: ${flaps} re-fires within ${formatDuration(settings.flapWindowMs)}` }, now);
        } else {
          await queueAnalysisOf(trx, inc, now);
        }
        return { outcome: "reopened", incidentId: inc.id, fingerprint: a.fingerprint };
      }

      const id = newId("inc", now);
      const row = newIncidentRow(
        {
          id,
          fingerprint: a.fingerprint,
          dedupe_key: key.startsWith("d:") ? key : null,
          open_key: key,
          title: a.title,
          source: "alertmanager",
          severity: a.severity,
          namespace: a.namespace,
          service: a.service,
          alertname: a.alertname,
          labels: a.labels,
          annotations: a.annotations,
          truncatedAlerts: payload.truncatedAlerts,
        },
        now,
      );
      await trx.insertInto("incidents").values(row).execute();
      await insertAlert(trx, a, id, payload, now);
      await appendEvent(
        trx,
        store.dialect,
        { type: "incident.detected", incidentId: id, ...SYSTEM, reason: a.title, data: { fingerprint: a.fingerprint, alertname: a.alertname, dedupeKey: row.dedupe_key, skill: skill ?? null, truncatedAlerts: payload.truncatedAlerts }, occurredAt: now },
        now,
      );
      const failed = await countFailedIncidents(trx, a.fingerprint);
      if (failed >= settings.maxFailedFixes) {
        await appendEvent(trx, store.dialect, { type: "guardrail.failed_fixes", incidentId: id, ...SYSTEM, reason: `${failed} earlier fixes for this fingerprint failed (MAX_FAILED_FIXES ${settings.maxFailedFixes})`, data: { failed, limit: settings.maxFailedFixes }, occurredAt: now }, now);
        await applyTransition(trx, store.dialect, row, "escalate", { ...SYSTEM, reason: `fixes failed ${failed} times for this alert` }, now);
      } else {
        await queueAnalysisOf(trx, row, now);
      }
      return { outcome: "opened", incidentId: id, fingerprint: a.fingerprint };
    });
  }

  async function resolved(a: NormalizedAlert, payload: AlertmanagerPayload, now: number): Promise<AlertOutcome> {
    if (!a.fingerprintGiven) {
      log.warn({ alertname: a.alertname }, "resolved alert without a fingerprint ignored");
      return { outcome: "ignored", incidentId: null, fingerprint: a.fingerprint, why: "resolved alert without a fingerprint" };
    }
    return store.db.transaction().execute(async (trx) => {
      const repeat = await recordRepeat(trx, a, now);
      if (repeat) return { outcome: "repeat", incidentId: repeat.incidentId, fingerprint: a.fingerprint };
      // A fingerprint lives in one open incident (its open key says which); the oldest wins if a
      // change of skills ever split it.
      const inc = (await findOpenWithFingerprint(trx, a.fingerprint))[0];
      await insertAlert(trx, a, inc?.id ?? null, payload, now);
      if (!inc) {
        log.info({ fingerprint: a.fingerprint, alertname: a.alertname }, "resolve for no open incident recorded");
        return { outcome: "resolve_recorded", incidentId: null, fingerprint: a.fingerprint };
      }
      if (a.endsAt === null || a.endsAt <= inc.opened_at) {
        await appendEvent(trx, store.dialect, { type: "alert.stale_resolve", incidentId: inc.id, ...SYSTEM, reason: "the resolve ends before the incident opened", data: { fingerprint: a.fingerprint, endsAt: a.endsAt }, occurredAt: now }, now);
        return { outcome: "resolve_recorded", incidentId: inc.id, fingerprint: a.fingerprint };
      }
      const statuses = await latestStatusByFingerprint(trx, inc.id);
      if ([...statuses.values()].some((st) => st !== "resolved")) {
        await appendEvent(trx, store.dialect, { type: "alert.resolved", incidentId: inc.id, ...SYSTEM, reason: "one of the incident's alerts resolved; others still fire", data: { fingerprint: a.fingerprint }, occurredAt: now }, now);
        return { outcome: "resolve_recorded", incidentId: inc.id, fingerprint: a.fingerprint };
      }
      await closeAsResolved(trx, store.dialect, inc, "alert.resolved", { ...SYSTEM, reason: "alert resolved by itself", data: { fingerprint: a.fingerprint, endsAt: a.endsAt } }, now);
      return { outcome: "resolved", incidentId: inc.id, fingerprint: a.fingerprint };
    });
  }

  /** Concurrent intakes race on unique keys (open_key, alert instance); the loser starts over. */
  async function withRetry<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        const retry = isDuplicateKey(err) || isRetryableDbError(err) || (isAppError(err) && err.code === "incident.concurrent_update");
        if (!retry || attempt >= 8) throw err;
        await new Promise((r) => setTimeout(r, Math.random() * 20 * attempt));
      }
    }
  }

  return {
    /** Stores a validated payload; resolves only after every alert in it is committed. */
    async receive(payload: AlertmanagerPayload): Promise<AlertOutcome[]> {
      const outcomes: AlertOutcome[] = [];
      for (const raw of payload.alerts) {
        const a = normalizeAlert(raw, settings.labels);
        const now = deps.now();
        outcomes.push(await withRetry(() => (a.status === "firing" ? firing(a, payload, now) : resolved(a, payload, now))));
      }
      if (payload.truncatedAlerts > 0) log.warn({ groupKey: payload.groupKey, truncatedAlerts: payload.truncatedAlerts }, "alert group was truncated by AlertManager");
      deps.onCommitted?.();
      return outcomes;
    },
  };
}

export type AlertIntake = ReturnType<typeof createAlertIntake>;
