import { z } from "zod";
import { defineTool } from "../tool.ts";
import { listWebhookDeliveries } from "../../webhooks/repo.ts";
import { cursorIn, cursorOf, limitIn, nextCursorOut } from "../views.ts";
import { DeliveryView, deliveryView } from "./webhook-views.ts";

export const listDeliveries = defineTool({
  name: "list_deliveries",
  title: "List webhook deliveries",
  description:
    "Lists signed webhook deliveries, newest first, with their state (pending, sent, dead), attempts, the last HTTP status and error. Filter by target, incident or state; send one again with redeliver_webhook. Paginated: pass next_cursor back as cursor.",
  scope: "read",
  input: {
    target: z.string().max(64).optional().describe("Only deliveries to this target."),
    incident_id: z.string().max(40).optional().describe("Only deliveries about this incident."),
    state: z.enum(["pending", "sent", "dead"]).optional().describe("Only deliveries in this state."),
    cursor: cursorIn,
    limit: limitIn(200, 50),
  },
  output: {
    deliveries: z.array(DeliveryView).describe("Deliveries, newest first."),
    next_cursor: nextCursorOut,
  },
  annotations: { readOnlyHint: true, openWorldHint: false },
  async handler(args, { deps }) {
    const rows = await listWebhookDeliveries(deps.store.db, {
      target: args.target,
      incidentId: args.incident_id,
      state: args.state,
      beforeId: cursorOf("delivery", args.cursor, "dlv"),
      limit: args.limit,
    });
    const next = rows.length === args.limit ? rows[rows.length - 1]!.id : null;
    const dead = rows.filter((r) => r.state === "dead").length;
    return {
      summary: `${rows.length} deliver${rows.length === 1 ? "y" : "ies"}${dead ? ` (${dead} dead)` : ""}${next ? "; more with next_cursor" : ""}`,
      data: { deliveries: rows.map(deliveryView), next_cursor: next },
    };
  },
});
