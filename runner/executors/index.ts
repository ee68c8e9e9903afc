import type { Config } from "../../src/config/load.ts";
import type { GitHost } from "../../src/gitops/port.ts";
import { noopExecutor } from "./noop.ts";
import { createSkillExecutor } from "./skill.ts";
import type { Executor } from "./types.ts";
import { createAgentExecutor } from "./agent.ts";
import { agentPullRequest } from "./agent-pr.ts";

/** The executors of one runner, by task kind. Without a GitOps host only `noop` runs. */
export async function buildExecutors(config: Config, deps: { host?: GitHost; env: Record<string, string | undefined> }): Promise<Record<string, Executor>> {
  const executors: Record<string, Executor> = { noop: noopExecutor };
  if (!deps.host) return executors;
  const proposal = { host: deps.host, baseBranch: config.gitops.baseBranch, author: config.gitops.author, publicUrl: config.publicUrl };
  executors.skill = createSkillExecutor(proposal);
  // Agents clone the GitOps repository read-only; their change reaches git through a fresh clone.
  const { agent, prompt } = createAgentExecutor({
    commands: config.agents.commands,
    defaultAgent: config.agents.defaultAgent,
    allowEnv: config.agents.allowEnv,
    env: deps.env,
    defaultTimeoutMs: config.agents.timeoutMs,
    gitEnv: async () => (await deps.host!.auth()).env,
    afterRun: agentPullRequest(proposal),
  });
  const withRepo = (inner: Executor): Executor => (task, ctx) =>
    inner({ ...task, payload: { repoUrl: deps.host!.cloneUrl(), ref: config.gitops.baseBranch, ...task.payload } }, ctx);
  executors.agent = withRepo(agent);
  executors.prompt = prompt;
  return executors;
}
