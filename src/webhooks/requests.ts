import type { Dialect } from "../store/db.ts";
import type { Executor } from "../store/sql.ts";
import { requestDelivery } from "../notify/requests.ts";
import { FANOUT, WEBHOOK } from "./repo.ts";
import type { WebhookEvent } from "./targets.ts";

// Asking for webhooks, in the transaction of the event they report: appendEvent (events/repo.ts)
// calls requestWebhooks for every new event, so no code path can forget one. The request is one
// row (a fan-out row naming the event); the deliverer turns it into one delivery per subscribed
// target, each with its body snapshotted then and sent unchanged on every attempt.

/** Timeline event type → the webhook event it is. */
const EVENTS: Record<string, WebhookEvent> = {
  "incident.detected": "incident.created",
  "incident.escalated": "incident.escalated",
  "incident.failed": "incident.fix_failed",
  "incident.resolved": "incident.resolved",
  "approval.requested": "approval.requested",
  "task.failed": "task.failed",
  // A scheduled run that failed: its task has no incident (its task.failed event asks for nothing).
  "schedule.run_failed": "task.failed",
};

export const webhookEventOf = (timelineType: string): WebhookEvent | undefined =>
  Object.hasOwn(EVENTS, timelineType) ? EVENTS[timelineType] : undefined;

export type WebhookEventRequest = { id: string; type: string; incidentId?: string | null };

/**
 * Webhooks are about incidents (their callbacks claim one): an event without an incident asks for
 * none, except a scheduled run that failed (sent without a delivery block: there is nothing to claim).
 */
export async function requestWebhooks(
  db: Executor,
  dialect: Dialect,
  e: WebhookEventRequest,
  now: number,
): Promise<void> {
  const event = webhookEventOf(e.type);
  if (!event || (!e.incidentId && e.type !== "schedule.run_failed")) return;
  await requestDelivery(
    db,
    dialect,
    { channel: WEBHOOK, kind: FANOUT, ref: e.id, incidentId: e.incidentId, payload: JSON.stringify({ event }) },
    now,
  );
}
