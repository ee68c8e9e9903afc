import { z } from "zod";
import { defineTool } from "../tool.ts";
import { getPause, setPause } from "../../system/settings.ts";
import { requeueDetected } from "../../incidents/analysis.ts";
import { mcpActor } from "../views.ts";

export const resumeAutomation = defineTool({
  name: "resume_automation",
  title: "Resume automation",
  description:
    "Resumes automatic analysis and fixes, and queues analysis again for every incident that waited in detected.",
  scope: "admin",
  input: { reason: z.string().max(1000).optional().describe("Why, recorded with the resume.") },
  output: {
    paused: z.boolean().describe("Always false after this call."),
    was_paused: z.boolean().describe("Whether automation was paused."),
    requeued: z.number().int().describe("Detected incidents whose analysis was queued again."),
  },
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  async handler(args, { principal, deps }) {
    const before = await getPause(deps.store.db);
    const by = mcpActor(principal);
    const now = deps.now();
    await setPause(deps.store, false, { ...by, reason: args.reason }, now);
    const requeued = await requeueDetected(deps.store, now, by);
    if (requeued > 0) deps.kick();
    return {
      summary: `automation resumed; analysis queued again for ${requeued} detected incident(s)`,
      data: { paused: false, was_paused: before.paused, requeued },
    };
  },
});
