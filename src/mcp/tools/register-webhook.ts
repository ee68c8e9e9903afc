import { z } from "zod";
import { defineTool } from "../tool.ts";
import { registerTarget } from "../../webhooks/service.ts";
import { WEBHOOK_EVENTS } from "../../webhooks/targets.ts";
import { mcpActor } from "../views.ts";
import { WebhookTargetView, webhookAdmin, webhookTargetView } from "./webhook-views.ts";

export const registerWebhook = defineTool({
  name: "register_webhook",
  title: "Register a webhook target",
  description:
    "Registers (or replaces) a target for signed webhooks, for every control plane. The secret is never passed here: secret_env names the env var that holds it (whsec_…, or two space-separated while rotating). A name used by a file in WEBHOOKS_DIR is refused. Registering again enables a target a 410 disabled.",
  scope: "admin",
  input: {
    name: z.string().min(1).max(64).describe("Target name: lower-case letters, digits, '.', '_', '-'."),
    url: z
      .string()
      .min(1)
      .max(2048)
      .describe(
        "http(s) URL deliveries are POSTed to. Private, loopback and link-local addresses are refused at send time unless WEBHOOK_ALLOW_PRIVATE=true.",
      ),
    secret_env: z
      .string()
      .max(128)
      .optional()
      .describe("Env var holding the whsec_ secret(s); required unless signing is jws."),
    events: z
      .array(z.enum([...WEBHOOK_EVENTS, "*"]))
      .min(1)
      .describe("Events to send (* for all)."),
    namespaces: z
      .array(z.string().min(1).max(253))
      .min(1)
      .optional()
      .describe("Only incidents in these namespaces (default all)."),
    headers: z
      .record(z.string(), z.string())
      .optional()
      .describe("Extra headers sent with every delivery (not webhook-*, host, content-type…)."),
    signing: z
      .enum(["standard", "jws"])
      .default("standard")
      .describe(
        "standard: HMAC webhook-signature; jws: Ed25519 webhook-jws checked with /.well-known/jwks.json (plus HMAC if secret_env is set).",
      ),
  },
  output: {
    target: WebhookTargetView.describe("The target as registered."),
    replaced: z.boolean().describe("Whether a target of that name was replaced."),
  },
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  async handler(args, { principal, deps }) {
    const r = await registerTarget(webhookAdmin(deps), args, mcpActor(principal).actor);
    const warn =
      r.target.secretEnv && !r.secretSet ? `; note: ${r.target.secretEnv} is not set on this control plane` : "";
    return {
      summary: `${r.replaced ? "replaced" : "registered"} webhook target ${r.target.name} → ${r.target.url} (${r.target.events.join(", ")})${warn}`,
      data: { target: webhookTargetView({ target: r.target, secretSet: r.secretSet }), replaced: r.replaced },
    };
  },
});
