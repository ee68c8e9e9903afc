import { z } from "zod";
import { defineTool } from "../tool.ts";
import { formatProblem } from "../../shared/yaml-folder.ts";
import { mcpActor } from "../views.ts";
import { schedulesOf } from "../schedule-views.ts";

export const syncSchedules = defineTool({
  name: "sync_schedules",
  title: "Sync schedules from their files",
  description:
    "Reads SCHEDULES_DIR and creates or updates the file schedules; with prune, deletes file schedules whose file is gone. Schedules made through MCP are never touched. Bad files are reported as file:line: message.",
  scope: "write",
  input: { prune: z.boolean().default(false).describe("Delete file schedules that no file defines any more.") },
  output: {
    created: z.array(z.string()).describe("Schedules created."),
    updated: z.array(z.string()).describe("Schedules updated."),
    unchanged: z.array(z.string()).describe("Schedules already up to date."),
    pruned: z.array(z.string()).describe("Schedules deleted because their file is gone."),
    problems: z.array(z.string()).describe("Problems, as file:line: message."),
  },
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  async handler(args, { principal, deps }) {
    const r = await schedulesOf(deps).service.sync(mcpActor(principal), { prune: args.prune });
    const summary = `schedules synced: ${r.created.length} created, ${r.updated.length} updated, ${r.unchanged.length} unchanged, ${r.pruned.length} pruned${r.problems.length ? `; ${r.problems.length} problem(s)` : ""}`;
    return {
      summary,
      data: {
        created: r.created,
        updated: r.updated,
        unchanged: r.unchanged,
        pruned: r.pruned,
        problems: r.problems.map(formatProblem),
      },
    };
  },
});
