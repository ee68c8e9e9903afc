import { z } from "zod";
import { defineTool } from "../tool.ts";
import { getPause, setPause } from "../../system/settings.ts";
import { mcpActor } from "../views.ts";

export const pauseAutomation = defineTool({
  name: "pause_automation",
  title: "Pause automation",
  description:
    "Stops automatic analysis and fixes on every replica: new incidents wait in detected until resume_automation. Alerts are still received and recorded.",
  scope: "admin",
  input: { reason: z.string().max(1000).optional().describe("Why, recorded with the pause.") },
  output: {
    paused: z.boolean().describe("Always true after this call."),
    was_paused: z.boolean().describe("Whether automation was already paused."),
    by: z.string().describe("Who paused it."),
  },
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  async handler(args, { principal, deps }) {
    const before = await getPause(deps.store.db);
    const by = mcpActor(principal);
    await setPause(deps.store, true, { ...by, reason: args.reason }, deps.now());
    return {
      summary: `automation paused${before.paused ? " (it already was)" : ""}`,
      data: { paused: true, was_paused: before.paused, by: by.actor },
    };
  },
});
