import type { Logger } from "../shared/logger.ts";
import type { Store } from "../store/db.ts";
import type { Executor } from "../store/sql.ts";
import type { IncidentRow } from "../store/schema.ts";
import { isDuplicateKey } from "../store/sql.ts";
import { appendEvent } from "../events/repo.ts";
import { AppError, isAppError } from "../shared/errors.ts";
import { newId } from "../shared/ids.ts";
import { applyTransition, closeAsResolved } from "../incidents/service.ts";
import { findOpenWithFingerprint, getIncident, newIncidentRow } from "../incidents/repo.ts";
import { queueAnalysis } from "../incidents/analysis.ts";
import { rankSkills } from "../skills/match.ts";
import { renderTemplate } from "../skills/template.ts";
import type { Skill } from "../skills/schema.ts";
import { formatDuration } from "../shared/duration.ts";
import {
  fitText,
  normalizePayload,
  type LabelMapping,
  type NormalizedAlert,
  type NormalizedPayload,
} from "./normalize.ts";
import type { AlertmanagerPayload } from "./payload.ts";
import { isRetryableDbError } from "../store/errors.ts";
import { createPayloadWriter, instanceKey, type PayloadWriter } from "./writer.ts";
import { loadPayloadState, type PayloadState } from "./payload-state.ts";
import { createGroupCommit } from "../shared/group-commit.ts";
import { deferInserts } from "../store/deferred-inserts.ts";
import { createRateMeter } from "../shared/pacer.ts";

export type IntakeSettings = {
  flapWindowMs: number;
  flapLimit: number;
  maxFailedFixes: number;
  labels: LabelMapping;
  /** Alerts taken from one payload (ALERTMANAGER_MAX_ALERTS); the rest count as truncated. */
  maxAlerts?: number;
  /** Group commit (shared/group-commit.ts): payloads and alerts per transaction, transactions at once (MySQL). */
  batch?: { maxPayloads?: number; maxAlerts?: number; concurrency?: number };
};

export type AlertOutcome =
  | {
      outcome: "opened" | "joined" | "reopened" | "repeat" | "resolved" | "resolve_recorded";
      incidentId: string | null;
      fingerprint: string;
    }
  | { outcome: "ignored"; incidentId: null; fingerprint: string; why: string };

export type IntakeDeps = {
  store: Store;
  log: Logger;
  now: () => number;
  skills: () => Skill[];
  settings: IntakeSettings;
  onCommitted?: () => void;
};

const SYSTEM = { actor: "alertmanager", channel: "alertmanager" } as const;

/** The longest a batch keeps the event loop to itself (see breather). */
const SLICE_MS = 20;

/**
 * Lets the event loop turn every SLICE_MS of a long write. On SQLite nothing else runs while a
 * transaction does (its calls never wait for I/O): a storm's batch of thousands of alerts, or one
 * 10,000-alert group, would hold the process for seconds, /healthz and the liveness probe with it.
 * Requests meanwhile are read and answered or queued; the store waits for the transaction.
 */
function breather(): () => Promise<void> {
  let since = performance.now();
  return async () => {
    if (performance.now() - since < SLICE_MS) return;
    await new Promise<void>((r) => setImmediate(r));
    since = performance.now();
  };
}
const DEFAULT_MAX_ALERTS = 50_000;
const DEFAULT_BATCH = { maxPayloads: 128, maxAlerts: 5_000, concurrency: 4 };
/**
 * A storm, in payloads a second (an alert counting a tenth of one more): AlertManager sends each
 * group at most every few seconds, so twenty a second is many groups changing at once.
 */
const STORM_LOAD = 20;

/** The key an open incident is found by: the matching skill's dedupe key, else the fingerprint. */
export function openKeyFor(a: NormalizedAlert, skills: Skill[]): { key: string; skill?: string } {
  const skill = rankSkills(skills, a).find((s) => s.dedupe_key);
  if (skill?.dedupe_key) {
    try {
      const rendered = renderTemplate(skill.dedupe_key, {
        labels: a.labels,
        annotations: a.annotations,
        incident: {
          namespace: a.namespace,
          service: a.service,
          severity: a.severity,
          alertname: a.alertname,
          fingerprint: a.fingerprint,
        },
      });
      return { key: fitText(`d:${skill.name}:${rendered}`, 255), skill: skill.name };
    } catch {
      // A label the key needs is missing on this alert: fall back to the fingerprint.
    }
  }
  return { key: `f:${a.fingerprint}` };
}

const truncatedData = (a: NormalizedAlert) => (a.truncated.length > 0 ? { truncated: a.truncated } : {});

export function createAlertIntake(deps: IntakeDeps) {
  const { store, settings } = deps;
  const log = deps.log.child({ component: "alert-intake" });

  /**
   * Alerts of this payload that joined an incident, or resolved while others of the incident
   * still fire: one timeline event per incident that counts them, not one per alert.
   */
  type Tally = Map<string, { fingerprints: string[]; count: number; truncated: string[] }>;
  type Payload = {
    trx: Executor;
    p: NormalizedPayload;
    w: PayloadWriter;
    state: PayloadState;
    touched: Set<string>;
    joins: Tally;
    partial: Tally;
    now: number;
  };

  const timeline = (c: Payload, incidentId: string, type: string, reason: string, data: Record<string, unknown>) =>
    appendEvent(c.trx, store.dialect, { type, incidentId, ...SYSTEM, reason, data, occurredAt: c.now }, c.now);

  function note(t: Tally, incidentId: string, a: NormalizedAlert): void {
    const e = t.get(incidentId) ?? { fingerprints: [], count: 0, truncated: [] };
    t.set(incidentId, e);
    e.count++;
    if (e.fingerprints.length < 100) e.fingerprints.push(a.fingerprint);
    if (a.truncated.length > 0 && e.truncated.length < 20)
      e.truncated.push(`${a.fingerprint}: ${a.truncated.join(", ")}`);
  }

  async function record(
    c: Payload,
    t: Tally,
    type: string,
    reason: (n: number) => string,
    only?: string,
  ): Promise<void> {
    for (const [incidentId, e] of t) {
      if (only !== undefined && incidentId !== only) continue;
      t.delete(incidentId);
      const data = {
        alerts: e.count,
        fingerprints: e.fingerprints,
        ...(e.count > e.fingerprints.length ? { more: e.count - e.fingerprints.length } : {}),
        ...(e.truncated.length ? { truncated: e.truncated } : {}),
      };
      await timeline(c, incidentId, type, reason(e.count), data);
    }
  }

  const recordJoins = (c: Payload, only?: string) =>
    record(c, c.joins, "alert.joined", (n) => (n === 1 ? "an alert joined" : `${n} alerts joined`), only);
  const recordPartialResolves = (c: Payload, only?: string) =>
    record(
      c,
      c.partial,
      "alert.resolved",
      (n) => `${n === 1 ? "one" : n} of the incident's alerts resolved; others still fire`,
      only,
    );

  /**
   * Payloads in one transaction: every alert of them is stored, or none is. They share one writer
   * and one set of lookups (a group-committed batch reads once, not once per payload), and each is
   * stored in turn, exactly as it would be alone after the ones before it.
   */
  async function storePayloads(
    trx: Executor,
    ps: NormalizedPayload[],
    skills: Skill[],
    now: number,
  ): Promise<AlertOutcome[][]> {
    const w = createPayloadWriter(trx, now);
    const keys = ps.map((p) => p.alerts.map(instanceKey));
    const openKeys = ps.map((p) => p.alerts.map((a) => (a.status === "firing" ? openKeyFor(a, skills) : undefined)));
    const all = ps.flatMap((p) => p.alerts);
    await w.prefetch(keys.flat());
    const state = await loadPayloadState(trx, {
      openKeys: openKeys.flat().flatMap((k) => (k ? [k.key] : [])),
      firing: all.filter((a) => a.status === "firing").map((a) => a.fingerprint),
      resolved: all.filter((a) => a.status === "resolved").map((a) => a.fingerprint),
      flapSince: now - settings.flapWindowMs,
    });
    const results: AlertOutcome[][] = [];
    const breathe = breather();
    for (let j = 0; j < ps.length; j++) {
      const p = ps[j]!;
      // Incidents this payload already touched (updated_at, truncated_alerts): one UPDATE each.
      const c: Payload = { trx, p, w, state, touched: new Set(), joins: new Map(), partial: new Map(), now };
      const outcomes: AlertOutcome[] = [];
      for (let i = 0; i < p.alerts.length; i++) {
        const a = p.alerts[i]!;
        const key = keys[j]![i]!;
        if (a.status === "resolved" && !a.fingerprintGiven) {
          outcomes.push({
            outcome: "ignored",
            incidentId: null,
            fingerprint: a.fingerprint,
            why: "resolved alert without a fingerprint",
          });
          continue;
        }
        const repeat = w.repeat(key);
        if (repeat) {
          outcomes.push({ outcome: "repeat", incidentId: repeat.incidentId, fingerprint: a.fingerprint });
          continue;
        }
        outcomes.push(a.status === "firing" ? await firing(c, a, key, openKeys[j]![i]!) : await resolved(c, a, key));
        await breathe();
      }
      await recordJoins(c);
      await recordPartialResolves(c);
      results.push(outcomes);
    }
    await w.finish();
    return results;
  }

  function addAlert(c: Payload, a: NormalizedAlert, instance: string, incidentId: string | null) {
    c.w.addAlert(a, instance, incidentId, c.p);
    c.state.noteAlert(a, incidentId);
  }

  async function firing(
    c: Payload,
    a: NormalizedAlert,
    instance: string,
    { key, skill }: { key: string; skill?: string },
  ): Promise<AlertOutcome> {
    const { trx, p, now, state } = c;
    const open = state.openByKey(key);
    if (open) {
      if (!c.touched.has(open.id)) {
        // Joins only an incident that is still open: a resolve committed meanwhile makes this
        // payload start over, and its alerts then open or reopen as they should.
        const res = await trx
          .updateTable("incidents")
          .set({ updated_at: now, truncated_alerts: Math.max(open.truncated_alerts, p.truncatedAlerts) })
          .where("id", "=", open.id)
          .where("open_key", "=", key)
          .executeTakeFirst();
        if (Number(res.numUpdatedRows) === 0)
          throw new AppError("conflict", "incident.concurrent_update", `incident ${open.id} closed meanwhile`, {
            retryable: true,
          });
        c.touched.add(open.id);
      }
      addAlert(c, a, instance, open.id);
      note(c.joins, open.id, a);
      return { outcome: "joined", incidentId: open.id, fingerprint: a.fingerprint };
    }

    const recent = state.recentlyResolved(a.fingerprint);
    if (recent) {
      const flaps = recent.flap_count + 1;
      await c.w.flushIncidents();
      let inc = await applyTransition(
        trx,
        store.dialect,
        recent,
        "reopen",
        {
          ...SYSTEM,
          reason: `re-fired within ${formatDuration(settings.flapWindowMs)} of resolving (flap ${flaps})`,
          data: { fingerprint: a.fingerprint, flaps },
        },
        now,
        {
          open_key: key,
          flap_count: flaps,
          resolved_at: null,
        },
      );
      state.put(inc);
      addAlert(c, a, instance, inc.id);
      if (flaps > settings.flapLimit) {
        await appendEvent(
          trx,
          store.dialect,
          {
            type: "guardrail.flap_limit",
            incidentId: inc.id,
            ...SYSTEM,
            reason: `flapped ${flaps} times, over FLAP_LIMIT ${settings.flapLimit}`,
            data: { flaps, limit: settings.flapLimit },
            occurredAt: now,
          },
          now,
        );
        inc = state.put(
          await applyTransition(
            trx,
            store.dialect,
            inc,
            "escalate",
            { ...SYSTEM, reason: `flapping: ${flaps} re-fires within ${formatDuration(settings.flapWindowMs)}` },
            now,
          ),
        );
      } else {
        await queueAnalysis(trx, store.dialect, inc, SYSTEM, now);
      }
      c.touched.add(inc.id);
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
        truncatedAlerts: p.truncatedAlerts,
      },
      now,
    );
    c.w.addIncident(row);
    state.put(row);
    c.touched.add(id);
    addAlert(c, a, instance, id);
    await appendEvent(
      trx,
      store.dialect,
      {
        type: "incident.detected",
        incidentId: id,
        ...SYSTEM,
        reason: a.title,
        data: {
          fingerprint: a.fingerprint,
          alertname: a.alertname,
          dedupeKey: row.dedupe_key,
          skill: skill ?? null,
          truncatedAlerts: p.truncatedAlerts,
          ...truncatedData(a),
        },
        occurredAt: now,
        incident: row,
      },
      now,
    );
    const failed = state.failedFixes(a.fingerprint);
    if (failed >= settings.maxFailedFixes) {
      await c.w.flushIncidents();
      await appendEvent(
        trx,
        store.dialect,
        {
          type: "guardrail.failed_fixes",
          incidentId: id,
          ...SYSTEM,
          reason: `${failed} earlier fixes for this fingerprint failed (MAX_FAILED_FIXES ${settings.maxFailedFixes})`,
          data: { failed, limit: settings.maxFailedFixes },
          occurredAt: now,
        },
        now,
      );
      state.put(
        await applyTransition(
          trx,
          store.dialect,
          row,
          "escalate",
          { ...SYSTEM, reason: `fixes failed ${failed} times for this alert` },
          now,
        ),
      );
    } else {
      await queueAnalysis(trx, store.dialect, row, SYSTEM, now);
    }
    return { outcome: "opened", incidentId: id, fingerprint: a.fingerprint };
  }

  /** The incident a resolve belongs to: the one holding its occurrence, else the open one with its fingerprint. */
  async function incidentOfResolve(c: Payload, a: NormalizedAlert): Promise<IncidentRow | undefined> {
    const ownerId = c.state.owner(a.fingerprint, a.startsAt);
    if (ownerId) return c.state.get(ownerId) ?? c.state.put((await getIncident(c.trx, ownerId))!);
    const open = c.state.openWithFingerprint(a.fingerprint);
    if (open !== undefined) return open ?? undefined;
    // The open incident we knew of closed in this payload: ask the database for another.
    await c.w.flush();
    const found = (await findOpenWithFingerprint(c.trx, a.fingerprint))[0];
    return found ? (c.state.get(found.id) ?? c.state.put(found)) : undefined;
  }

  /**
   * A resolve belongs to the occurrence it names: same fingerprint and startsAt, both on
   * AlertManager's clock (Pitcrew's own clock says nothing about when an alert started). Only a
   * resolve of an older occurrence than the one the incident holds is stale.
   */
  async function resolved(c: Payload, a: NormalizedAlert, instance: string): Promise<AlertOutcome> {
    const { trx, now } = c;
    const inc = await incidentOfResolve(c, a);
    if (!inc) {
      addAlert(c, a, instance, null);
      log.info({ fingerprint: a.fingerprint, alertname: a.alertname }, "resolve for no incident recorded");
      return { outcome: "resolve_recorded", incidentId: null, fingerprint: a.fingerprint };
    }
    addAlert(c, a, instance, inc.id);
    const recorded = { outcome: "resolve_recorded", incidentId: inc.id, fingerprint: a.fingerprint } as const;
    const data = { fingerprint: a.fingerprint, startsAt: a.startsAt, endsAt: a.endsAt };
    if (inc.open_key === null) {
      // Closed without it (rejected, failed, suppressed, resolved by a person): the timeline
      // still learns that the alert stopped firing.
      await timeline(c, inc.id, "alert.resolved", `the alert resolved after the incident closed as ${inc.state}`, data);
      return recorded;
    }
    // Every fingerprint of the incident, with this payload's rows (this resolve included).
    const occurrences = await c.state.occurrences(inc.id);
    const latest = occurrences.byFp.get(a.fingerprint)!.fired;
    if (a.startsAt < latest) {
      const when = (t: number) => new Date(t).toISOString();
      const reason = `the resolve is for an older occurrence (started ${when(a.startsAt)}) than the one that fires (started ${when(latest)})`;
      await timeline(c, inc.id, "alert.stale_resolve", reason, { ...data, firingStartsAt: latest });
      return recorded;
    }
    if (occurrences.firing > 0) {
      note(c.partial, inc.id, a);
      return recorded;
    }
    await c.w.flushIncidents();
    await recordJoins(c, inc.id);
    await recordPartialResolves(c, inc.id);
    const { incident } = await closeAsResolved(
      trx,
      store.dialect,
      inc,
      "alert.resolved",
      { ...SYSTEM, reason: "alert resolved by itself", data },
      now,
    );
    c.state.put(incident);
    return { outcome: "resolved", incidentId: inc.id, fingerprint: a.fingerprint };
  }

  /** Concurrent intakes race on unique keys (open_key, alert instance); the loser starts over. */
  async function withRetry<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        const retry =
          isDuplicateKey(err) ||
          isRetryableDbError(err) ||
          (isAppError(err) && err.code === "incident.concurrent_update");
        if (!retry || attempt >= 8) throw err;
        await new Promise((r) => setTimeout(r, Math.random() * 20 * attempt));
      }
    }
  }

  // MySQL: the rows each new alert asks for (its events, their notice and webhook requests, its
  // analysis task and outbox message) go out as a few multi-row INSERTs instead of six round trips
  // per alert (store/deferred-inserts.ts); every one is new, under a fresh id. On SQLite a statement
  // is a function call, and merging costs more than it saves.
  const batched = (trx: Executor) =>
    store.dialect === "mysql" ? deferInserts(trx, ["events", "deliveries", "tasks", "outbox"]) : Promise.resolve();
  const storeOne = (p: NormalizedPayload) =>
    withRetry(() =>
      store.db.transaction().execute(async (trx) => {
        await batched(trx);
        return (await storePayloads(trx, [p], deps.skills(), deps.now()))[0]!;
      }),
    );
  // Payloads that arrive while one is being written are written together by the next transaction,
  // each as it would have been alone (in arrival order, each seeing the ones before it).
  const batches = createGroupCommit<NormalizedPayload, AlertOutcome[]>(
    {
      maxItems: settings.batch?.maxPayloads ?? DEFAULT_BATCH.maxPayloads,
      maxWeight: settings.batch?.maxAlerts ?? DEFAULT_BATCH.maxAlerts,
      concurrency: store.dialect === "sqlite" ? 1 : (settings.batch?.concurrency ?? DEFAULT_BATCH.concurrency),
    },
    (p) => p.alerts.length,
    (ps) =>
      store.db.transaction().execute(async (trx) => {
        await batched(trx);
        return storePayloads(trx, ps, deps.skills(), deps.now());
      }),
    storeOne,
  );

  const load = createRateMeter(1000);
  return {
    /**
     * Whether the intake is in a storm: STORM_LOAD payloads a second or more, a payload counting
     * one and a tenth per alert. Background work that competes for the process and the store
     * (analysis) then takes turns with it, so that alerts go first.
     */
    busy: () => load.count() >= STORM_LOAD,

    /**
     * Stores a validated payload and resolves only after the transaction holding it committed: a
     * payload that fails half way stores nothing, and AlertManager's retry stores it whole.
     */
    async receive(payload: AlertmanagerPayload): Promise<AlertOutcome[]> {
      load.mark(1 + payload.alerts.length / 10);
      const p = normalizePayload(payload, settings.labels, settings.maxAlerts ?? DEFAULT_MAX_ALERTS);
      const outcomes = await batches.submit(p);
      log.info(receivedFields(p, payload.status, outcomes), "alerts received");
      if (p.truncatedAlerts > 0)
        log.warn(
          { groupKey: p.groupKey, truncatedAlerts: p.truncatedAlerts, received: payload.alerts.length },
          "alert group was truncated",
        );
      const cut = p.alerts.filter((a) => a.truncated.length > 0);
      if (cut.length > 0)
        log.warn(
          { groupKey: p.groupKey, alerts: cut.length, example: cut[0]!.truncated.slice(0, 5) },
          "alert values truncated to fit",
        );
      deps.onCommitted?.();
      return outcomes;
    },
  };
}

export type AlertIntake = ReturnType<typeof createAlertIntake>;

/** The payload's log line: how many alerts, what became of them, and the incidents they touched. */
function receivedFields(p: NormalizedPayload, status: string, outcomes: AlertOutcome[]) {
  const counts: Partial<Record<AlertOutcome["outcome"], number>> = {};
  for (const o of outcomes) counts[o.outcome] = (counts[o.outcome] ?? 0) + 1;
  const incidentIds = [...new Set(outcomes.map((o) => o.incidentId).filter((id) => id !== null))];
  return {
    groupKey: p.groupKey,
    receiver: p.receiver,
    status,
    alerts: outcomes.length,
    outcomes: counts,
    // A storm's payload names thousands: the first ones, and how many.
    incidentIds: incidentIds.slice(0, 20),
    incidents: incidentIds.length,
    ...(p.truncatedAlerts > 0 ? { truncatedAlerts: p.truncatedAlerts } : {}),
  };
}
