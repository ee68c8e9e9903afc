import { isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Config } from "../config/load.ts";
import { AppError } from "../shared/errors.ts";

// Which repositories a task may name. The GitOps repository always; ALLOWED_REPOS adds others.
// Checked where a task is submitted (MCP) and again by the runner before it clones anything.

/**
 * The web origin of a GitHub API root: `https://api.github.com` → `https://github.com`; GHES
 * `https://h/api/v3` → `https://h`; GHE.com `api.x.ghe.com` → `x.ghe.com`. Here rather than in
 * github.ts, so that checking a repository does not load octokit.
 */
export function webOrigin(baseUrl = "https://api.github.com"): string {
  const u = new URL(baseUrl);
  if (u.hostname === "api.github.com") return "https://github.com";
  if (u.hostname.startsWith("api.")) return `${u.protocol}//${u.host.slice(4)}`;
  return `${u.protocol}//${u.host}${u.pathname.replace(/\/api\/v3\/?$/, "").replace(/\/$/, "")}`;
}

/** Where the GitOps repository is cloned from: the same URL the git host's cloneUrl() gives. */
export function gitopsRepoUrl(gitops: Config["gitops"]): string {
  if (gitops.provider === "local") return gitops.repoPath;
  return `${webOrigin(gitops.apiUrl)}/${gitops.owner}/${gitops.repo}.git`;
}

/**
 * The repositories tasks may name: the GitOps repository and each ALLOWED_REPOS entry. An entry is
 * a URL, an absolute path, or `owner/repo` (a repository on the configured GitHub, or github.com).
 */
export function allowedRepoUrls(config: Pick<Config, "gitops" | "allowedRepos">): string[] {
  const web = config.gitops.provider === "github" ? webOrigin(config.gitops.apiUrl) : "https://github.com";
  const extra = config.allowedRepos.map((r) => (/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/.test(r) ? `${web}/${r}.git` : r));
  return [gitopsRepoUrl(config.gitops), ...extra];
}

/**
 * A repository location in a form that compares equal for the same repository: a local path or
 * file:// URL → the absolute path; scp-style `user@host:path` → ssh://user@host/path; a URL → lower-
 * case scheme and host, default port dropped, without a trailing slash or `.git`.
 */
export function repoKey(location: string): string {
  const s = location.trim();
  if (/^file:\/\//i.test(s)) {
    try {
      return resolve(fileURLToPath(s)).replace(/\/+$/, "");
    } catch {
      return s;
    }
  }
  if (isAbsolute(s)) return resolve(s);
  const scp = /^(?:([A-Za-z0-9._-]+)@)?([A-Za-z0-9.-]+):(?!\/\/)(.+)$/.exec(s);
  const url = scp ? `ssh://${scp[1] ? `${scp[1]}@` : ""}${scp[2]}/${scp[3]!.replace(/^\/+/, "")}` : s;
  try {
    const u = new URL(url);
    const path = u.pathname.replace(/\/+$/, "").replace(/\.git$/, "");
    const user = u.username ? `${u.username}@` : "";
    return `${u.protocol}//${user}${u.host}${path}`;
  } catch {
    return s;
  }
}

export function isRepoAllowed(location: string, allowed: string[]): boolean {
  const key = repoKey(location);
  return allowed.some((a) => repoKey(a) === key);
}

/** Throws `task.repo_not_allowed` (forbidden) unless the repository is on the allow-list. */
export function assertRepoAllowed(location: string, allowed: string[]): void {
  if (isRepoAllowed(location, allowed)) return;
  throw new AppError(
    "forbidden",
    "task.repo_not_allowed",
    `repository ${shownRepo(location)} is not allowed: a task may name the GitOps repository or one listed in ALLOWED_REPOS`,
    { retryable: false },
  );
}

/** The location as it may be shown in an error: any userinfo masked. */
function shownRepo(location: string): string {
  return location.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/@]*@/, "$1***@").slice(0, 300);
}
