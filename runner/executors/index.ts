import { ConfigError, type Config } from "../../src/config/load.ts";
import type { GitHost } from "../../src/gitops/port.ts";
import { allowedRepoUrls } from "../../src/gitops/repo-url.ts";
import { noopExecutor } from "./noop.ts";
import { branchSuffixFor, createSkillExecutor } from "./skill.ts";
import type { Executor } from "./types.ts";
import { createAgentExecutor } from "./agent.ts";
import { agentPullRequest } from "./agent-pr.ts";
import type { Logger } from "../../src/shared/logger.ts";

/** The executors of one runner, by task kind. Without a GitOps host only `noop` runs. */
export async function buildExecutors(
  config: Config,
  deps: { host?: GitHost; env: Record<string, string | undefined> },
): Promise<Record<string, Executor>> {
  const executors: Record<string, Executor> = { noop: noopExecutor };
  if (!deps.host) return executors;
  const host = deps.host;
  const proposal = {
    host,
    baseBranch: config.gitops.baseBranch,
    author: config.gitops.author,
    publicUrl: config.publicUrl,
  };
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
    // A rebuild's pull request goes on its own branch, as for skill tasks (the raw payload says which).
    afterRun: (run) => agentPullRequest({ ...proposal, branchSuffix: branchSuffixFor(run.task.payload) })(run),
  });
  const withRepo =
    (inner: Executor): Executor =>
    (task, ctx) =>
      inner({ ...task, payload: { repoUrl: host.cloneUrl(), ref: config.gitops.baseBranch, ...task.payload } }, ctx);
  executors.agent = withRepo(agent);
  executors.prompt = prompt;
  return executors;
}

/**
 * Who coding agents run as, checked once at start. A root runner without AGENT_UID would run them
 * as root, able to read the runner's secrets (/proc/<runner>/environ, the GitHub App key): a loud
 * warning. AGENT_UID on a runner that is not root cannot work (only root switches users): an error.
 */
export function checkAgentIdentity(agents: Config["agents"], runnerUid: number | undefined, log: Logger): void {
  if (agents.uid === undefined) {
    if (agents.gid !== undefined) throw new ConfigError("AGENT_GID: set AGENT_UID too (the user coding agents run as)");
    if (runnerUid === 0) {
      log.warn(
        { hint: "set AGENT_UID and AGENT_GID to an unprivileged user; see README, Isolating coding agents" },
        "runner runs as root and AGENT_UID is unset: coding agents run as root and can read the runner's secrets",
      );
    }
    return;
  }
  if (agents.uid === 0 || agents.gid === 0)
    throw new ConfigError("AGENT_UID/AGENT_GID: 0 is root; choose an unprivileged user and group for coding agents");
  if (runnerUid !== undefined && runnerUid !== 0) {
    throw new ConfigError(
      `AGENT_UID: the runner runs as uid ${runnerUid}, not root, so it cannot start agents as uid ${agents.uid}; run the runner as root, or unset AGENT_UID and isolate agents in their own container (README, Isolating coding agents)`,
    );
  }
}
