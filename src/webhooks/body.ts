import type { Executor } from "../store/sql.ts";
import { loadIncidentView } from "../notify/views.ts";
import { getApproval, mergeActionOf } from "../approvals/repo.ts";

// A webhook's body: a snapshot of the event, taken once when the event is fanned out to its
// targets and sent unchanged on every attempt. It holds the event, the incident (with the link to
// its timeline), the plan and a diagnosis (why it came to this: the event's reason, the firing
// alerts, the recent timeline), the approval or task the event is about, and — per target — the
// `delivery` block an agent needs to answer (the claim and result URLs, the lease it will get,
// and a bearer token valid for this delivery only).

const MAX_ALERTS = 20;
const MAX_TIMELINE = 20;

export type WebhookBody = {
  type: string;
  timestamp: string;
  event: {
    id: string;
    type: string;
    actor: string;
    channel: string;
    reason: string | null;
    occurred_at: string;
    data: Record<string, unknown>;
  };
  /** Null only for a scheduled run that failed (task.failed of a schedule's task). */
  incident: (Record<string, unknown> & { id: string; namespace: string | null; url: string }) | null;
  plan: Record<string, unknown> | null;
  diagnosis: {
    summary: string | null;
    alerts: Array<Record<string, unknown>>;
    timeline: Array<Record<string, unknown>>;
  };
  approval?: Record<string, unknown>;
  task?: Record<string, unknown>;
  schedule?: { name: string };
  delivery?: DeliveryBlock;
};

export type DeliveryBlock = {
  id: string;
  target: string;
  claim_url: string;
  result_url: string;
  lease_ttl_seconds: number;
  token?: string;
};

const iso = (ms: number | null | undefined): string | null =>
  ms === null || ms === undefined ? null : new Date(Number(ms)).toISOString();

function json(text: string | null | undefined): Record<string, unknown> {
  if (!text) return {};
  try {
    const v = JSON.parse(text) as unknown;
    return typeof v === "object" && v !== null ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** The body of `event` (a webhook event name) for the timeline event `eventId`; undefined when the event or its incident is gone. */
export async function buildWebhookBody(
  db: Executor,
  eventId: string,
  event: string,
  publicUrl: string,
): Promise<WebhookBody | undefined> {
  const e = await db.selectFrom("events").selectAll().where("id", "=", eventId).executeTakeFirst();
  if (!e) return undefined;
  if (!e.incident_id) return e.type === "schedule.run_failed" ? scheduleRunBody(db, e, event) : undefined;
  const inc = await loadIncidentView(db, e.incident_id);
  if (!inc) return undefined;
  const alerts = await db
    .selectFrom("alerts")
    .select(["alertname", "status", "labels", "annotations", "starts_at", "ends_at", "generator_url"])
    .where("incident_id", "=", inc.id)
    .orderBy("starts_at", "desc")
    .limit(MAX_ALERTS)
    .execute();
  const body: WebhookBody = {
    type: event,
    timestamp: iso(Number(e.occurred_at))!,
    event: eventBlock(e),
    incident: {
      id: inc.id,
      title: inc.title,
      state: inc.state,
      severity: inc.severity,
      namespace: inc.namespace,
      service: inc.service,
      labels: inc.labels,
      annotations: inc.annotations,
      opened_at: iso(inc.openedAt),
      resolved_at: iso(inc.resolvedAt),
      flap_count: inc.flapCount,
      url: `${publicUrl}/incidents/${encodeURIComponent(inc.id)}`,
    },
    plan: inc.plan ? { ...inc.plan } : null,
    diagnosis: {
      summary: e.reason,
      alerts: alerts.map((a) => ({
        alertname: a.alertname,
        status: a.status,
        labels: json(a.labels),
        annotations: json(a.annotations),
        starts_at: iso(Number(a.starts_at)),
        ends_at: iso(a.ends_at === null ? null : Number(a.ends_at)),
        generator_url: a.generator_url,
      })),
      timeline: inc.timeline
        .slice(-MAX_TIMELINE)
        .map((t) => ({ type: t.type, at: iso(t.at), actor: t.actor, reason: t.reason })),
    },
  };
  const data = body.event.data;
  if (e.type === "approval.requested" && typeof data.approvalId === "string") {
    const a = await getApproval(db, data.approvalId);
    if (a) {
      const pr = mergeActionOf(a)?.merge;
      body.approval = {
        id: a.id,
        state: a.state,
        risk: a.risk,
        requested_at: iso(Number(a.requested_at)),
        expires_at: iso(Number(a.expires_at)),
        pull_request: pr ?? null,
      };
    }
  }
  if (e.type === "task.failed" && e.task_id) {
    const task = await taskBlock(db, e.task_id);
    if (task) body.task = task;
  }
  return body;
}

async function taskBlock(db: Executor, taskId: string): Promise<Record<string, unknown> | undefined> {
  const t = await db
    .selectFrom("tasks")
    .select(["id", "kind", "pool", "state", "error", "attempts", "created_by"])
    .where("id", "=", taskId)
    .executeTakeFirst();
  return (
    t && {
      id: t.id,
      kind: t.kind,
      pool: t.pool,
      state: t.state,
      error: t.error,
      attempts: Number(t.attempts),
      created_by: t.created_by,
    }
  );
}

type EventRowish = {
  id: string;
  type: string;
  actor: string;
  channel: string;
  reason: string | null;
  occurred_at: number | string;
  data: string | null;
  task_id: string | null;
};

const eventBlock = (e: EventRowish): WebhookBody["event"] => ({
  id: e.id,
  type: e.type,
  actor: e.actor,
  channel: e.channel,
  reason: e.reason,
  occurred_at: iso(Number(e.occurred_at))!,
  data: json(e.data),
});

/** A scheduled run that failed: the schedule, its task and why; no incident, no callbacks. */
async function scheduleRunBody(db: Executor, e: EventRowish, event: string): Promise<WebhookBody> {
  const task = e.task_id ? await taskBlock(db, e.task_id) : undefined;
  const block = eventBlock(e);
  return {
    type: event,
    timestamp: block.occurred_at,
    event: block,
    incident: null,
    plan: null,
    diagnosis: { summary: e.reason, alerts: [], timeline: [] },
    ...(task && { task }),
    schedule: { name: String(block.data.schedule ?? "") },
  };
}

export function deliveryBlock(
  publicUrl: string,
  incidentId: string,
  deliveryId: string,
  target: string,
  leaseTtlMs: number,
): DeliveryBlock {
  const base = `${publicUrl}/api/v1/incidents/${encodeURIComponent(incidentId)}`;
  return {
    id: deliveryId,
    target,
    claim_url: `${base}/claims`,
    result_url: `${base}/results`,
    lease_ttl_seconds: Math.round(leaseTtlMs / 1000),
  };
}

/** The body as sent: the stored snapshot with the delivery's token put in (the token is never stored). */
export function bodyWithToken(payload: string, token: string): string {
  const body = JSON.parse(payload) as WebhookBody;
  // A body without a delivery block (no incident to claim) carries no token either.
  if (body.delivery) body.delivery = { ...body.delivery, token };
  return JSON.stringify(body);
}
