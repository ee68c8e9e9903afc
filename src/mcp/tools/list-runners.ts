import { z } from "zod";
import { defineTool } from "../tool.ts";
import { listRunners as queryRunners } from "../../fleet/repo.ts";
import { RunnerOut, runnerView } from "../views.ts";

export const listRunners = defineTool({
  name: "list_runners",
  title: "List runners",
  description:
    "Every runner that has sent a heartbeat, with its pool, concurrency, running tasks and whether it is stale (unseen for two heartbeat intervals).",
  scope: "read",
  input: {
    include_stale: z.boolean().default(true).describe("Include runners that have gone quiet."),
  },
  output: { runners: z.array(RunnerOut).describe("Runners, by id.") },
  annotations: { readOnlyHint: true, openWorldHint: false },
  async handler(args, { deps }) {
    const all = (await queryRunners(deps.store.db, deps.now(), deps.config.runner.heartbeatMs)).map(runnerView);
    const runners = args.include_stale ? all : all.filter((r) => !r.stale);
    const stale = runners.filter((r) => r.stale).length;
    return { summary: `${runners.length} runner(s)${stale ? `, ${stale} stale` : ""}`, data: { runners } };
  },
});
