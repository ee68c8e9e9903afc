import { createHash } from "node:crypto";
import type { Insertable } from "kysely";
import type { Executor } from "../store/sql.ts";
import type { AlertsTable, IncidentRow } from "../store/schema.ts";
import { newId } from "../shared/ids.ts";
import type { NormalizedAlert, NormalizedPayload } from "./normalize.ts";

// The rows of one payload, written in batches inside the payload's transaction: a group of
// 50,000 alerts is a few hundred statements, not 50,000 round trips. New incidents and alert
// rows wait in memory (payload-state.ts answers the payload's own lookups); a query that needs
// them calls flush() first, and finish() writes the rest before the commit.

// Rows per INSERT and bytes per INSERT: under SQLite's bound-variable limit and well under
// MySQL's max_allowed_packet (16 MiB by default) even with every quote escaped.
const BATCH_ROWS = 500;
const BATCH_BYTES = 4 * 1_048_576;
const LOOKUP_CHUNK = 1000;

/** One alert instance: the same alert repeated by AlertManager, or a retried POST, has one row. */
export function instanceKey(a: NormalizedAlert): string {
  return createHash("sha256")
    .update(`${a.fingerprint}|${a.status}|${a.startsAt}|${a.endsAt ?? ""}`)
    .digest("hex")
    .slice(0, 40);
}

export function chunks<T>(items: T[], size = LOOKUP_CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Splits rows into INSERTs by count and (estimated) size. */
function* batches<T>(rows: T[], size: (r: T) => number): Generator<T[]> {
  let i = 0;
  while (i < rows.length) {
    let bytes = 0;
    let n = 0;
    while (i + n < rows.length && n < BATCH_ROWS) {
      bytes += size(rows[i + n]!) + 256;
      if (n > 0 && bytes > BATCH_BYTES) break;
      n++;
    }
    yield rows.slice(i, i + n);
    i += n;
  }
}

export type StoredInstance = { id: string; incidentId: string | null };

/**
 * The rows of the payloads written in one transaction (one, or a group-committed batch): they
 * share the lookups, so a payload sees what the ones before it wrote.
 */
export function createPayloadWriter(trx: Executor, now: number) {
  const alerts: Insertable<AlertsTable>[] = [];
  const incidents: IncidentRow[] = [];
  const seen = new Map<string, StoredInstance>();
  const repeats = new Map<string, number>();

  async function flushIncidents(): Promise<void> {
    for (const part of batches(incidents.splice(0), (r) => r.labels.length + r.annotations.length + r.title.length)) {
      await trx.insertInto("incidents").values(part).execute();
    }
  }

  async function flush(): Promise<void> {
    await flushIncidents();
    for (const part of batches(
      alerts.splice(0),
      (r) => r.labels.length + r.annotations.length + (r.generator_url?.length ?? 0) + (r.group_key?.length ?? 0),
    )) {
      await trx.insertInto("alerts").values(part).execute();
    }
  }

  return {
    /** Loads the instances of this payload that are already stored (AlertManager re-sends). */
    async prefetch(keys: string[]): Promise<void> {
      for (const part of chunks([...new Set(keys)])) {
        const rows = await trx
          .selectFrom("alerts")
          .select(["id", "incident_id", "dedupe"])
          .where("dedupe", "in", part)
          .execute();
        for (const r of rows) seen.set(r.dedupe!, { id: r.id, incidentId: r.incident_id });
      }
    },

    /** The stored instance with this key, counted as one more repeat; undefined when new. */
    repeat(key: string): StoredInstance | undefined {
      const s = seen.get(key);
      if (s) repeats.set(s.id, (repeats.get(s.id) ?? 0) + 1);
      return s;
    },

    addIncident(row: IncidentRow): void {
      incidents.push(row);
    },

    /** Writes the new incidents, so a transition can update them. */
    flushIncidents,

    addAlert(
      a: NormalizedAlert,
      key: string,
      incidentId: string | null,
      payload: Pick<NormalizedPayload, "receiver" | "groupKey">,
    ): void {
      const id = newId("alr", now);
      alerts.push({
        id,
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
        dedupe: key,
        repeat_count: 0,
        last_received_at: now,
      });
      seen.set(key, { id, incidentId });
    },

    flush,

    /** Writes what is pending and the repeat counts (one UPDATE per distinct count). */
    async finish(): Promise<void> {
      await flush();
      const byCount = new Map<number, string[]>();
      for (const [id, n] of repeats) byCount.set(n, [...(byCount.get(n) ?? []), id]);
      for (const [n, ids] of byCount) {
        for (const part of chunks(ids)) {
          await trx
            .updateTable("alerts")
            .set((eb) => ({ repeat_count: eb("repeat_count", "+", n), last_received_at: now }))
            .where("id", "in", part)
            .execute();
        }
      }
    },
  };
}

export type PayloadWriter = ReturnType<typeof createPayloadWriter>;
