import type { Executor } from "../store/sql.ts";
import type { IncidentRow } from "../store/schema.ts";
import type { IncidentState } from "./lifecycle.ts";

export async function getIncident(db: Executor, id: string): Promise<IncidentRow | undefined> {
  return db.selectFrom("incidents").selectAll().where("id", "=", id).executeTakeFirst();
}

export async function findOpenByKey(db: Executor, openKey: string): Promise<IncidentRow | undefined> {
  return db.selectFrom("incidents").selectAll().where("open_key", "=", openKey).executeTakeFirst();
}

/** Open incidents that hold an alert with this fingerprint (an incident may group several). */
export async function findOpenWithFingerprint(db: Executor, fingerprint: string): Promise<IncidentRow[]> {
  return db
    .selectFrom("incidents")
    .selectAll()
    .where("open_key", "is not", null)
    .where("id", "in", (eb) =>
      eb
        .selectFrom("alerts")
        .select("incident_id")
        .where("fingerprint", "=", fingerprint)
        .where("incident_id", "is not", null)
        .$narrowType<{ incident_id: string }>(),
    )
    .orderBy("id")
    .execute();
}

/** The newest incident with this fingerprint that resolved at or after `since`. */
export async function findRecentlyResolved(
  db: Executor,
  fingerprint: string,
  since: number,
): Promise<IncidentRow | undefined> {
  return db
    .selectFrom("incidents")
    .selectAll()
    .where("state", "=", "resolved")
    .where("resolved_at", ">=", since)
    .where("id", "in", (eb) =>
      eb
        .selectFrom("alerts")
        .select("incident_id")
        .where("fingerprint", "=", fingerprint)
        .where("incident_id", "is not", null)
        .$narrowType<{ incident_id: string }>(),
    )
    .orderBy("resolved_at", "desc")
    .limit(1)
    .executeTakeFirst();
}

export async function countFailedIncidents(db: Executor, fingerprint: string): Promise<number> {
  const r = await db
    .selectFrom("incidents")
    .select((eb) => eb.fn.countAll<number>().as("n"))
    .where("fingerprint", "=", fingerprint)
    .where("state", "=", "failed")
    .executeTakeFirstOrThrow();
  return Number(r.n);
}

/** For each fingerprint of the incident, the status of its latest alert row. */
export async function latestStatusByFingerprint(db: Executor, incidentId: string): Promise<Map<string, string>> {
  const rows = await db
    .selectFrom("alerts")
    .select(["fingerprint", "status", "id"])
    .where("incident_id", "=", incidentId)
    .orderBy("id")
    .execute();
  const latest = new Map<string, string>();
  for (const r of rows) latest.set(r.fingerprint, r.status);
  return latest;
}

export type IncidentFilter = { state?: IncidentState; namespace?: string; afterId?: string; limit?: number };

/**
 * The page of incidents a filter names, newest first, paginated by id (time-ordered): pass the last
 * id as `afterId`. The caller picks the columns (.select), so a view reads only what it shows.
 */
export function incidentsPage(db: Executor, f: IncidentFilter = {}) {
  let q = db.selectFrom("incidents");
  if (f.state) q = q.where("state", "=", f.state);
  if (f.namespace) q = q.where("namespace", "=", f.namespace);
  if (f.afterId) q = q.where("id", "<", f.afterId);
  return q.orderBy("id", "desc").limit(Math.min(f.limit ?? 50, 500));
}

export async function countIncidentsByState(db: Executor): Promise<Record<string, number>> {
  const rows = await db
    .selectFrom("incidents")
    .select(["state", (eb) => eb.fn.countAll<number>().as("n")])
    .groupBy("state")
    .execute();
  return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
}

export type NewIncident = Pick<
  IncidentRow,
  | "id"
  | "fingerprint"
  | "dedupe_key"
  | "open_key"
  | "title"
  | "source"
  | "severity"
  | "namespace"
  | "service"
  | "alertname"
> & {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  truncatedAlerts?: number;
};

/** A freshly detected incident row, every counter at zero. */
export function newIncidentRow(n: NewIncident, now: number): IncidentRow {
  const { labels, annotations, truncatedAlerts, ...fields } = n;
  return {
    ...fields,
    state: "detected",
    labels: JSON.stringify(labels),
    annotations: JSON.stringify(annotations),
    plan: null,
    flap_count: 0,
    failed_fixes: 0,
    truncated_alerts: truncatedAlerts ?? 0,
    llm_calls: 0,
    llm_input_tokens: 0,
    llm_output_tokens: 0,
    version: 0,
    opened_at: now,
    updated_at: now,
    resolved_at: null,
    state_since: now,
    requeues: 0,
    time_to_resolve_ms: null,
    ttr_observed_at: null,
  };
}
