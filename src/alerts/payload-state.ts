import type { Executor } from "../store/sql.ts";
import type { IncidentRow } from "../store/schema.ts";
import { chunks } from "./writer.ts";
import type { NormalizedAlert } from "./normalize.ts";

// What one payload's alerts look up, loaded with a few queries up front and kept current in
// memory as the payload opens, joins, reopens and closes incidents. A group of 2,000 resolves
// then costs no read per alert, and the rows the payload wrote need not be flushed to be seen.

/** The newest firing and the newest resolved startsAt of one fingerprint in one incident. */
export type Occurrence = { fired: number; ended: number };
/** An incident's fingerprints, and how many of them still fire (newest occurrence not resolved). */
export type IncidentOccurrences = { byFp: Map<string, Occurrence>; firing: number };

const occKey = (fingerprint: string, startsAt: number) => `${fingerprint}|${startsAt}`;

function mergeOccurrence(io: IncidentOccurrences, fingerprint: string, status: string, startsAt: number): void {
  const o = io.byFp.get(fingerprint) ?? { fired: -Infinity, ended: -Infinity };
  const was = o.fired > o.ended;
  if (status === "firing") o.fired = Math.max(o.fired, startsAt);
  else o.ended = Math.max(o.ended, startsAt);
  io.byFp.set(fingerprint, o);
  io.firing += Number(o.fired > o.ended) - Number(was);
}

export type PayloadLookups = { openKeys: string[]; firing: string[]; resolved: string[]; flapSince: number };

export async function loadPayloadState(trx: Executor, want: PayloadLookups) {
  const incidents = new Map<string, IncidentRow>();
  const openByKey = new Map<string, string>();
  const recentByFp = new Map<string, string>();
  const owners = new Map<string, string>();
  const openByFp = new Map<string, string>();
  const occurrences = new Map<string, IncidentOccurrences>();
  const loaded = new Set<string>();
  const failed = new Map<string, number>();

  function put(inc: IncidentRow): IncidentRow {
    const before = incidents.get(inc.id);
    if (before?.open_key && before.open_key !== inc.open_key && openByKey.get(before.open_key) === inc.id)
      openByKey.delete(before.open_key);
    if (inc.open_key) openByKey.set(inc.open_key, inc.id);
    incidents.set(inc.id, inc);
    return inc;
  }

  for (const part of chunks([...new Set(want.openKeys)])) {
    for (const r of await trx.selectFrom("incidents").selectAll().where("open_key", "in", part).execute()) put(r);
  }
  for (const part of chunks([...new Set(want.firing)])) {
    // A re-fire within FLAP_WINDOW reopens the newest incident that resolved with this fingerprint.
    const rows = await trx
      .selectFrom("incidents")
      .innerJoin("alerts", "alerts.incident_id", "incidents.id")
      .selectAll("incidents")
      .select("alerts.fingerprint as alert_fingerprint")
      .where("incidents.state", "=", "resolved")
      .where("incidents.resolved_at", ">=", want.flapSince)
      .where("alerts.fingerprint", "in", part)
      .orderBy("incidents.resolved_at", "desc")
      .execute();
    for (const { alert_fingerprint, ...inc } of rows) {
      if (recentByFp.has(alert_fingerprint)) continue;
      recentByFp.set(alert_fingerprint, inc.id);
      if (!incidents.has(inc.id)) put(inc);
    }
    const counts = await trx
      .selectFrom("incidents")
      .select(["fingerprint", (eb) => eb.fn.countAll<number>().as("n")])
      .where("fingerprint", "in", part)
      .where("state", "=", "failed")
      .groupBy("fingerprint")
      .execute();
    for (const r of counts) failed.set(r.fingerprint, Number(r.n));
  }
  const ownerIds = new Set<string>();
  for (const part of chunks([...new Set(want.resolved)])) {
    // The incident each firing occurrence went to (the newest, should there be several).
    const rows = await trx
      .selectFrom("alerts")
      .select(["fingerprint", "starts_at", "incident_id"])
      .where("fingerprint", "in", part)
      .where("status", "=", "firing")
      .where("incident_id", "is not", null)
      .orderBy("id")
      .execute();
    for (const r of rows) owners.set(occKey(r.fingerprint, Number(r.starts_at)), r.incident_id!);
    for (const r of rows) ownerIds.add(r.incident_id!);
    // A fingerprint lives in one open incident; the oldest wins if a change of skills split it.
    const open = await trx
      .selectFrom("incidents")
      .innerJoin("alerts", "alerts.incident_id", "incidents.id")
      .selectAll("incidents")
      .select("alerts.fingerprint as alert_fingerprint")
      .where("incidents.open_key", "is not", null)
      .where("alerts.fingerprint", "in", part)
      .orderBy("incidents.id")
      .execute();
    for (const { alert_fingerprint, ...inc } of open) {
      if (!openByFp.has(alert_fingerprint)) openByFp.set(alert_fingerprint, inc.id);
      if (!incidents.has(inc.id)) put(inc);
    }
  }
  for (const part of chunks([...ownerIds].filter((id) => !incidents.has(id)))) {
    for (const r of await trx.selectFrom("incidents").selectAll().where("id", "in", part).execute()) put(r);
  }
  // The occurrences of every incident a resolve may close, for "do others still fire?".
  for (const part of chunks([...new Set([...ownerIds, ...openByFp.values()])])) {
    const rows = await trx
      .selectFrom("alerts")
      .select(["incident_id", "fingerprint", "status", (eb) => eb.fn.max("starts_at").as("starts")])
      .where("incident_id", "in", part)
      .groupBy(["incident_id", "fingerprint", "status"])
      .execute();
    for (const id of part) loaded.add(id);
    for (const r of rows) mergeOccurrence(occurrencesOf(r.incident_id!), r.fingerprint, r.status, Number(r.starts));
  }

  function occurrencesOf(incidentId: string): IncidentOccurrences {
    const io = occurrences.get(incidentId) ?? { byFp: new Map<string, Occurrence>(), firing: 0 };
    occurrences.set(incidentId, io);
    return io;
  }

  const isOpenRow = (id: string | undefined) => (id ? incidents.get(id) : undefined)?.open_key != null;

  return {
    /** Records the current version of an incident (after an insert or a transition). */
    put,
    get: (id: string) => incidents.get(id),
    openByKey: (key: string) => incidents.get(openByKey.get(key) ?? ""),
    failedFixes: (fingerprint: string) => failed.get(fingerprint) ?? 0,

    /** The incident this fingerprint may reopen; undefined when none (or it reopened already). */
    recentlyResolved(fingerprint: string): IncidentRow | undefined {
      const inc = incidents.get(recentByFp.get(fingerprint) ?? "");
      return inc?.state === "resolved" ? inc : undefined;
    },

    /** The incident holding the firing occurrence (fingerprint, startsAt). */
    owner: (fingerprint: string, startsAt: number) => owners.get(occKey(fingerprint, startsAt)),

    /**
     * The open incident holding this fingerprint: `null` when there is surely none, undefined
     * when the one we knew has closed and the caller must ask the database.
     */
    openWithFingerprint(fingerprint: string): IncidentRow | null | undefined {
      const id = openByFp.get(fingerprint);
      if (id === undefined) return null;
      return isOpenRow(id) ? incidents.get(id) : undefined;
    },

    /** Notes an alert row this payload writes (it is not in the database until a flush). */
    noteAlert(a: NormalizedAlert, incidentId: string | null): void {
      if (!incidentId) return;
      if (a.status === "firing") owners.set(occKey(a.fingerprint, a.startsAt), incidentId);
      const current = openByFp.get(a.fingerprint);
      if (isOpenRow(incidentId) && (current === undefined || !isOpenRow(current)))
        openByFp.set(a.fingerprint, incidentId);
      mergeOccurrence(occurrencesOf(incidentId), a.fingerprint, a.status, a.startsAt);
    },

    /**
     * Each fingerprint of the incident with its newest firing and resolved startsAt: the stored
     * rows (read once per incident) merged with this payload's. Max is idempotent, so a row both
     * flushed and noted counts once.
     */
    async occurrences(incidentId: string): Promise<IncidentOccurrences> {
      const io = occurrencesOf(incidentId);
      if (!loaded.has(incidentId)) {
        loaded.add(incidentId);
        const rows = await trx
          .selectFrom("alerts")
          .select(["fingerprint", "status", (eb) => eb.fn.max("starts_at").as("starts")])
          .where("incident_id", "=", incidentId)
          .groupBy(["fingerprint", "status"])
          .execute();
        for (const r of rows) mergeOccurrence(io, r.fingerprint, r.status, Number(r.starts));
      }
      return io;
    },
  };
}

export type PayloadState = Awaited<ReturnType<typeof loadPayloadState>>;
