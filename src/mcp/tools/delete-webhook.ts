import { z } from "zod";
import { defineTool } from "../tool.ts";
import { deleteTarget } from "../../webhooks/service.ts";
import { notFoundAs } from "../views.ts";
import { webhookAdmin } from "./webhook-views.ts";

export const deleteWebhook = defineTool({
  name: "delete_webhook",
  title: "Delete a webhook target",
  description:
    "Deletes a target registered with register_webhook; its pending deliveries are given up. Targets defined in WEBHOOKS_DIR files cannot be deleted here (remove the file).",
  scope: "admin",
  input: { name: z.string().min(1).max(64).describe("Target name.") },
  output: { deleted: z.string().describe("The name of the deleted target.") },
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
  async handler(args, { deps }) {
    await notFoundAs("webhook.not_found", () => deleteTarget(webhookAdmin(deps), args.name));
    return { summary: `deleted webhook target ${args.name}`, data: { deleted: args.name } };
  },
});
