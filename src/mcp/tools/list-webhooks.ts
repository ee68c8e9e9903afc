import { z } from "zod";
import { defineTool } from "../tool.ts";
import { listTargets } from "../../webhooks/service.ts";
import { WebhookTargetView, webhookAdmin, webhookTargetView } from "./webhook-views.ts";

export const listWebhooks = defineTool({
  name: "list_webhooks",
  title: "List webhook targets",
  description:
    "Lists the targets signed webhooks go to: those in WEBHOOKS_DIR files (GitOps; not deletable here) and those registered with register_webhook, each with its events, namespace filter, signing, whether its secret env var is set, and whether a 410 Gone disabled it. Files that do not load are reported as file:line: message.",
  scope: "read",
  input: {},
  output: {
    targets: z.array(WebhookTargetView).describe("Targets, file targets first."),
    problems: z.array(z.string()).describe("Target files that did not load, as file:line: message."),
  },
  annotations: { readOnlyHint: true, openWorldHint: false },
  async handler(_args, { deps }) {
    const { targets, problems } = await listTargets(webhookAdmin(deps));
    const off = targets.filter((t) => t.disabled).length;
    return {
      summary: `${targets.length} webhook target(s)${off ? `, ${off} disabled` : ""}${problems.length ? `; ${problems.length} problem(s): ${problems.join("; ")}` : ""}`,
      data: { targets: targets.map(webhookTargetView), problems },
    };
  },
});
