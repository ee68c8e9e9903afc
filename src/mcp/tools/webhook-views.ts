import { z } from "zod";
import type { McpDeps } from "../tool.ts";
import type { AdminDeps, TargetListing } from "../../webhooks/service.ts";
import type { DeliveryListItem } from "../../webhooks/repo.ts";

// What the webhook tools show: targets and deliveries (never a secret, never a token).

const iso = (ms: number | null | undefined) => (ms === null || ms === undefined ? null : new Date(ms).toISOString());

/** The webhook admin functions' dependencies, from the MCP server's. */
export function webhookAdmin(deps: McpDeps): AdminDeps {
  return {
    store: deps.store,
    now: deps.now,
    dir: deps.config.webhooks.dir,
    env: deps.inline?.secrets ?? (() => undefined),
  };
}

export const WebhookTargetView = z.object({
  name: z.string().describe("Target name."),
  url: z.string().describe("Where deliveries are POSTed."),
  source: z
    .enum(["file", "mcp"])
    .describe("file: WEBHOOKS_DIR (change the file); mcp: registered with register_webhook."),
  file: z.string().nullable().describe("The file a file target is defined in."),
  events: z.array(z.string()).describe("Subscribed events (* for all)."),
  namespaces: z.array(z.string()).nullable().describe("Only incidents in these namespaces; null for all."),
  signing: z
    .enum(["standard", "jws"])
    .describe(
      "standard: HMAC (webhook-signature); jws: Ed25519 JWS (webhook-jws) checked with /.well-known/jwks.json.",
    ),
  secret_env: z.string().nullable().describe("The env var holding the whsec_ secret(s)."),
  secret_set: z.boolean().describe("Whether that env var holds a usable secret on this control plane."),
  secret_error: z.string().nullable().describe("Why the secret is not usable, if it is set but malformed."),
  header_names: z.array(z.string()).describe("Names of the extra headers sent (values are not shown)."),
  disabled: z
    .object({ at: z.string(), reason: z.string() })
    .nullable()
    .describe("Set when the target answered 410 Gone; redeliver or register it again to enable it."),
});

export function webhookTargetView(l: TargetListing): z.infer<typeof WebhookTargetView> {
  const t = l.target;
  return {
    name: t.name,
    url: t.url,
    source: t.source,
    file: t.file ?? null,
    events: t.events,
    namespaces: t.namespaces ?? null,
    signing: t.signing,
    secret_env: t.secretEnv ?? null,
    secret_set: l.secretSet,
    secret_error: l.secretError ?? null,
    header_names: Object.keys(t.headers ?? {}),
    disabled: l.disabled ? { at: iso(l.disabled.at)!, reason: l.disabled.reason } : null,
  };
}

export const DeliveryView = z.object({
  id: z.string().describe("Delivery id (dlv_…), also its webhook-id."),
  target: z.string().describe("Target name."),
  event: z.string().describe("Webhook event, e.g. incident.escalated."),
  event_id: z.string().describe("The timeline event it reports (evt_…)."),
  incident_id: z.string().nullable().describe("The incident."),
  state: z.string().describe("pending, sent or dead."),
  attempts: z.number().describe("Attempts made."),
  next_attempt_at: z.string().nullable().describe("When the next attempt is due, while pending."),
  last_status: z.number().nullable().describe("HTTP status of the last attempt (null: no answer)."),
  last_error: z.string().nullable().describe("Why the last attempt failed."),
  created_at: z.string().describe("When the delivery was made."),
  sent_at: z.string().nullable().describe("When a 2xx answered it."),
});

export function deliveryView(d: DeliveryListItem): z.infer<typeof DeliveryView> {
  return {
    id: d.id,
    target: d.target,
    event: d.eventType,
    event_id: d.eventId,
    incident_id: d.incidentId,
    state: d.state,
    attempts: d.attempts,
    next_attempt_at: iso(d.nextAttemptAt),
    last_status: d.lastStatus,
    last_error: d.lastError,
    created_at: iso(d.createdAt)!,
    sent_at: iso(d.sentAt),
  };
}
