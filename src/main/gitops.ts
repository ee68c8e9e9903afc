import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Config } from "../config/load.ts";
import { git } from "../gitops/git.ts";
import { createLocalGitHost } from "../gitops/local.ts";
import type { GitHost } from "../gitops/port.ts";
import type { Logger } from "../shared/logger.ts";

/**
 * The pull-request provider of this installation. With the local provider and no repository yet
 * (a fresh embedded install), a bare repository with one commit on the base branch is created, so
 * fixes have somewhere to go; point GITOPS_REPO at a clone of your real repository instead.
 */
export async function createGitHost(config: Config, log: Logger): Promise<GitHost> {
  const g = config.gitops;
  if (g.provider === "github") {
    // octokit only where GitHub is the provider.
    const { createGitHubHost } = await import("../gitops/github.ts");
    return createGitHubHost({
      owner: g.owner,
      repo: g.repo,
      token: g.app ? undefined : g.token,
      app: g.app
        ? { appId: g.app.appId, privateKey: g.app.privateKey, installationId: Number(g.app.installationId) }
        : undefined,
      baseUrl: g.apiUrl,
      log,
    });
  }
  if (!existsSync(g.repoPath)) await initBareRepository(g.repoPath, g.baseBranch, g.author, log);
  return createLocalGitHost({ repoPath: g.repoPath, committer: g.author });
}

async function initBareRepository(
  path: string,
  branch: string,
  author: { name: string; email: string },
  log: Logger,
): Promise<void> {
  await git(tmpdir(), ["init", "--quiet", "--bare", "--initial-branch", branch, path]);
  const work = await mkdtemp(join(tmpdir(), "pitcrew-init-"));
  try {
    await git(work, ["init", "--quiet", "--initial-branch", branch]);
    await writeFile(
      join(work, "README.md"),
      "# GitOps repository\n\nPitcrew opens pull requests against this repository.\n",
    );
    await git(work, ["add", "README.md"]);
    const env = {
      GIT_AUTHOR_NAME: author.name,
      GIT_AUTHOR_EMAIL: author.email,
      GIT_COMMITTER_NAME: author.name,
      GIT_COMMITTER_EMAIL: author.email,
    };
    await git(work, ["commit", "--quiet", "-m", "Initial commit"], { env });
    try {
      await git(work, ["push", "--quiet", path, `HEAD:refs/heads/${branch}`]);
    } catch (err) {
      // Another process (a second runner sharing the volume) created it first: use theirs.
      const exists = await git(tmpdir(), [
        "--git-dir",
        path,
        "rev-parse",
        "--verify",
        "--quiet",
        `refs/heads/${branch}`,
      ]).then(
        () => true,
        () => false,
      );
      if (!exists) throw err;
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  log.info({ path }, "created an empty local GitOps repository; set GITOPS_REPO to use yours");
}
