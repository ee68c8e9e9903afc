import { appendEvent } from "../../src/events/repo.ts";
import { newIncidentRow } from "../../src/incidents/repo.ts";
import { newId } from "../../src/shared/ids.ts";
import type { Store } from "../../src/store/db.ts";

export type OpenIncident = {
  now?: number;
  /** The fingerprint and open key (default: a fresh one). */
  key?: string;
  title?: string;
  severity?: string;
  namespace?: string;
  service?: string;
  alertname?: string;
  /** Added to the alert's own labels (alertname, namespace, severity). */
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
};

/** An incident as the intake opens one: its row and its incident.detected event, in one transaction. */
export async function openIncident(store: Store, o: OpenIncident = {}): Promise<string> {
  const now = o.now ?? Date.now();
  const key = o.key ?? Math.random().toString(36).slice(2, 10);
  const id = newId("inc", now);
  const title = o.title ?? `checkout crash-loops ${key}`;
  const severity = o.severity ?? "critical";
  const namespace = o.namespace ?? "shop";
  const alertname = o.alertname ?? "KubePodCrashLooping";
  await store.db.transaction().execute(async (trx) => {
    const row = newIncidentRow(
      {
        id,
        fingerprint: key,
        dedupe_key: null,
        open_key: key,
        title,
        source: "alertmanager",
        severity,
        namespace,
        service: o.service ?? "checkout",
        alertname,
        labels: { alertname, namespace, severity, ...o.labels },
        annotations: o.annotations ?? { summary: "pods restart" },
      },
      now,
    );
    await trx.insertInto("incidents").values(row).execute();
    await appendEvent(
      trx,
      store.dialect,
      {
        type: "incident.detected",
        incidentId: id,
        actor: "alertmanager",
        channel: "alertmanager",
        reason: title,
        occurredAt: now,
      },
      now,
    );
  });
  return id;
}
