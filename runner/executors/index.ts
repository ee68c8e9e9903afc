import type { Config } from "../../src/config/load.ts";
import type { GitHost } from "../../src/gitops/port.ts";
import { noopExecutor } from "./noop.ts";
import { createSkillExecutor } from "./skill.ts";
import type { Executor } from "./types.ts";

/** The executors of one runner, by task kind. Without a GitOps host only `noop` runs. */
export function buildExecutors(config: Config, deps: { host?: GitHost }): Record<string, Executor> {
  const executors: Record<string, Executor> = { noop: noopExecutor };
  if (deps.host) {
    executors.skill = createSkillExecutor({ host: deps.host, baseBranch: config.gitops.baseBranch, author: config.gitops.author, publicUrl: config.publicUrl });
  }
  return executors;
}
