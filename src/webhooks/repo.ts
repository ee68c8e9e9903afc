import { createHash } from "node:crypto";
import type { Dialect } from "../store/db.ts";
import { upsert, type Executor } from "../store/sql.ts";
import type { DeliveryRow } from "../notify/repo.ts";

// Webhook deliveries are rows of the `deliveries` table (channel `webhook`), sent by the notices'
// deliverer. Two kinds of rows: the fan-out row an event asks for in its own transaction (kind
// `webhook.fanout`, the body snapshot in `payload`), and one row per target it fans out to (kind:
// the webhook event; ref: the timeline event; target: the target's name).

export const WEBHOOK = "webhook";
export const FANOUT = "webhook.fanout";

export type WebhookDelivery = {
  id: string;
  target: string;
  incidentId: string | null;
  eventType: string;
  /** Hex sha256 of the `delivery.token` the body carried. */
  tokenHash: string;
  createdAt: number;
  /** pending | sent | dead */
  state: string;
};

export const hashToken = (token: string): string => createHash("sha256").update(token).digest("hex");

function toDelivery(r: DeliveryRow): WebhookDelivery {
  return {
    id: r.id,
    target: r.target,
    incidentId: r.incident_id,
    eventType: r.kind,
    tokenHash: r.token_hash ?? "",
    createdAt: Number(r.created_at),
    state: r.state,
  };
}

/** One delivery to one target (undefined for any other row, fan-out rows included). */
export async function getWebhookDelivery(db: Executor, id: string): Promise<WebhookDelivery | undefined> {
  const r = await db
    .selectFrom("deliveries")
    .selectAll()
    .where("id", "=", id)
    .where("channel", "=", WEBHOOK)
    .where("kind", "!=", FANOUT)
    .executeTakeFirst();
  return r?.token_hash ? toDelivery(r) : undefined;
}

export type DeliveryListItem = WebhookDelivery & {
  eventId: string;
  attempts: number;
  nextAttemptAt: number | null;
  lastStatus: number | null;
  lastError: string | null;
  sentAt: number | null;
};

export type DeliveryFilter = { target?: string; incidentId?: string; state?: string; beforeId?: string; limit: number };

/** Deliveries to targets, newest first, paginated by id. */
export async function listWebhookDeliveries(db: Executor, f: DeliveryFilter): Promise<DeliveryListItem[]> {
  let q = db.selectFrom("deliveries").selectAll().where("channel", "=", WEBHOOK).where("kind", "!=", FANOUT);
  if (f.target) q = q.where("target", "=", f.target);
  if (f.incidentId) q = q.where("incident_id", "=", f.incidentId);
  if (f.state) q = q.where("state", "=", f.state);
  if (f.beforeId) q = q.where("id", "<", f.beforeId);
  const rows = await q.orderBy("id", "desc").limit(f.limit).execute();
  return rows.map((r) => ({
    ...toDelivery(r),
    eventId: r.ref,
    attempts: Number(r.attempts),
    nextAttemptAt: r.state === "pending" ? Number(r.next_attempt_at) : null,
    lastStatus: r.last_status === null ? null : Number(r.last_status),
    lastError: r.last_error,
    sentAt: r.sent_at === null ? null : Number(r.sent_at),
  }));
}

/**
 * Sends a finished delivery again: the same row, the same body and webhook-id, attempts counted
 * from zero. A pending one is made due now. Returns the state it was in (undefined: no such delivery).
 */
export async function redeliverWebhook(db: Executor, id: string, now: number): Promise<string | undefined> {
  const r = await db
    .selectFrom("deliveries")
    .select(["id", "state", "channel", "kind", "target", "ref"])
    .where("id", "=", id)
    .executeTakeFirst();
  if (!r || r.channel !== WEBHOOK || r.kind === FANOUT) return undefined;
  await db
    .updateTable("deliveries")
    .set({
      state: "pending",
      pending_key: `${WEBHOOK}|${r.kind}|${r.target}|${r.ref}`.slice(0, 255),
      attempts: 0,
      next_attempt_at: now,
      last_error: null,
      updated_at: now,
    })
    .where("id", "=", id)
    .execute();
  return r.state;
}

// --- targets registered through MCP, and targets a 410 disabled ---

export async function saveRegisteredTarget(
  db: Executor,
  dialect: Dialect,
  name: string,
  spec: unknown,
  by: string,
  now: number,
): Promise<void> {
  const json = JSON.stringify(spec);
  // Registering again replaces the target and enables it.
  const update = {
    spec: json,
    source: "mcp",
    disabled_at: null,
    disabled_url: null,
    disabled_reason: null,
    created_by: by.slice(0, 255),
    updated_at: now,
  };
  await upsert(db, dialect, "webhook_targets", { name, ...update, created_at: now }, "name", update);
}

/** Deletes an MCP-registered target; false when there is none of that name. */
export async function deleteRegisteredTarget(db: Executor, name: string): Promise<boolean> {
  const r = await db
    .deleteFrom("webhook_targets")
    .where("name", "=", name)
    .where("source", "=", "mcp")
    .executeTakeFirst();
  return Number(r.numDeletedRows) > 0;
}

export type Disabled = { at: number; url: string; reason: string };

/** Disabled targets by name; a disablement holds only for the URL that answered 410. */
export async function disabledTargets(db: Executor): Promise<Map<string, Disabled>> {
  const rows = await db
    .selectFrom("webhook_targets")
    .select(["name", "disabled_at", "disabled_url", "disabled_reason"])
    .where("disabled_at", "is not", null)
    .execute();
  return new Map(
    rows.map((r) => [
      r.name,
      { at: Number(r.disabled_at), url: r.disabled_url ?? "", reason: r.disabled_reason ?? "" },
    ]),
  );
}

export async function disableTarget(
  db: Executor,
  dialect: Dialect,
  name: string,
  url: string,
  reason: string,
  now: number,
): Promise<void> {
  const set = {
    disabled_at: now,
    disabled_url: url.slice(0, 2048),
    disabled_reason: reason.slice(0, 1000),
    updated_at: now,
  };
  // A file target has no row until it is disabled: the row then only says so (source file, no spec).
  await upsert(
    db,
    dialect,
    "webhook_targets",
    { name, source: "file", spec: null, created_by: "pitcrew:webhooks", created_at: now, ...set },
    "name",
    set,
  );
}

/** Enables a disabled target; a file target's row (it only held the disablement) goes. */
export async function enableTarget(db: Executor, name: string, now: number): Promise<boolean> {
  const file = await db
    .deleteFrom("webhook_targets")
    .where("name", "=", name)
    .where("source", "=", "file")
    .executeTakeFirst();
  const mcp = await db
    .updateTable("webhook_targets")
    .set({ disabled_at: null, disabled_url: null, disabled_reason: null, updated_at: now })
    .where("name", "=", name)
    .where("disabled_at", "is not", null)
    .executeTakeFirst();
  return Number(file.numDeletedRows) + Number(mcp.numUpdatedRows) > 0;
}
