import { z } from "zod";
import { defineTool } from "../tool.ts";
import { redeliver as redeliverDelivery } from "../../webhooks/service.ts";
import { notFoundAs } from "../views.ts";

export const redeliver = defineTool({
  name: "redeliver_webhook",
  title: "Send a webhook delivery again",
  description:
    "Sends a webhook delivery again — the same body and webhook-id, so a receiver that already handled it can tell — with its attempts counted from zero. Enables its target if a 410 Gone had disabled it.",
  scope: "write",
  input: { delivery_id: z.string().min(1).max(40).describe("Delivery id (dlv_…), from list_deliveries.") },
  output: {
    delivery_id: z.string().describe("The delivery, pending again."),
    previous_state: z.string().describe("Its state before: sent, dead or pending."),
    enabled_target: z.boolean().describe("Whether its target had been disabled by a 410 and is enabled again."),
  },
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
  async handler(args, { deps }) {
    const r = await notFoundAs("delivery.not_found", () =>
      redeliverDelivery({ store: deps.store, now: deps.now }, args.delivery_id),
    );
    return {
      summary: `delivery ${args.delivery_id} (was ${r.previousState}) queued again${r.enabledTarget ? "; its target is enabled again" : ""}`,
      data: { delivery_id: args.delivery_id, previous_state: r.previousState, enabled_target: r.enabledTarget },
    };
  },
});
