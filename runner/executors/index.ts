import type { Config } from "../../src/config/load.ts";
import type { GitHost } from "../../src/gitops/port.ts";
import { allowedRepoUrls } from "../../src/gitops/repo-url.ts";
import { noopExecutor } from "./noop.ts";
import { createSkillExecutor } from "./skill.ts";
import type { Executor } from "./types.ts";
import { createAgentExecutor } from "./agent.ts";
import { agentPullRequest } from "./agent-pr.ts";

/** The executors of one runner, by task kind. Without a GitOps host only `noop` runs. */
export async function buildExecutors(config: Config, deps: { host?: GitHost; env: Record<string, string | undefined> }): Promise<Record<string, Executor>> {
  const executors: Record<string, Executor> = { noop: noopExecutor };
  if (!deps.host) return executors;
  const host = deps.host;
  const proposal = { host, baseBranch: config.gitops.baseBranch, author: config.gitops.author, publicUrl: config.publicUrl };
  executors.skill = createSkillExecutor(proposal);
  // Agents clone the GitOps repository read-only; their change reaches git through a fresh clone.
  // Tasks may name only allowed repositories, and only the GitOps repository's clone gets credentials.
  const { agent, prompt } = createAgentExecutor({
    commands: config.agents.commands,
    defaultAgent: config.agents.defaultAgent,
    allowEnv: config.agents.allowEnv,
    env: deps.env,
    defaultTimeoutMs: config.agents.timeoutMs,
    allowedRepos: [host.cloneUrl(), ...allowedRepoUrls(config)],
    credentials: { repoUrl: host.cloneUrl(), env: async () => (await host.auth()).env },
    uid: config.agents.uid,
    gid: config.agents.gid,
    afterRun: agentPullRequest(proposal),
  });
  const withRepo = (inner: Executor): Executor => (task, ctx) =>
    inner({ ...task, payload: { repoUrl: host.cloneUrl(), ref: config.gitops.baseBranch, ...task.payload } }, ctx);
  executors.agent = withRepo(agent);
  executors.prompt = prompt;
  return executors;
}
