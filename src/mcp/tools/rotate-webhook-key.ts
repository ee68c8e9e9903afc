import { z } from "zod";
import { defineTool } from "../tool.ts";
import { rotateSigningKey } from "../../webhooks/service.ts";

export const rotateWebhookKey = defineTool({
  name: "rotate_webhook_key",
  title: "Rotate the webhook signing key",
  description:
    "Makes a new Ed25519 key for JWS-signed webhooks and retires the one in use (its private half is erased). Every control plane signs with the new key within a minute; the retired public key stays at /.well-known/jwks.json for 30 days, so deliveries signed just before still verify.",
  scope: "admin",
  input: {},
  output: {
    kid: z.string().describe("The new key's id (its JWK thumbprint)."),
    retired: z.string().nullable().describe("The retired key's id; null when there was none."),
  },
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  async handler(_args, { deps }) {
    const r = await rotateSigningKey({ store: deps.store, now: deps.now });
    return { summary: `webhook signing key ${r.kid} in use${r.retired ? `; ${r.retired} retired` : ""}`, data: r };
  },
});
