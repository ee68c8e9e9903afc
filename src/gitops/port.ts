// Where pull requests live: GitHub (github.ts) or a bare repository on disk (local.ts) for embedded
// mode and tests. Both keep at most one open pull request per head branch, so "find before create"
// makes a rerun reuse the PR of its deterministic branch.
//
// Errors the caller can branch on, the same codes from both adapters:
//   gitops.merge_conflict (conflict)  the head does not merge cleanly into the base
//   gitops.head_moved     (conflict)  merge was given a `sha` and the head is no longer there
//   gitops.pull_not_found (not_found)
//   gitops.pull_not_open  (conflict)  merge of a pull request closed without a merge

export type PullRequestState = "open" | "closed" | "merged";

export type PullRequest = {
  number: number;
  url: string;
  /** The head branch (no `refs/heads/`, no `owner:`). */
  branch: string;
  base: string;
  state: PullRequestState;
  headSha: string;
  title: string;
};

export type CreatePullRequest = { branch: string; base: string; title: string; body: string };

export type MergeOptions = {
  method: "merge" | "squash";
  /** Merge only if the head is still at this commit (what was reviewed or approved). */
  sha?: string;
  /**
   * Git trailers for the merge commit (`Approved-by`, `Pitcrew-Incident`), written as the last
   * paragraph of its message so history walks can read them with `git interpret-trailers`.
   */
  trailers?: Record<string, string>;
};

/** `Key: value` lines, one per trailer; newlines in values are flattened so a value cannot add a trailer. */
export function formatTrailers(trailers: Record<string, string>): string {
  return Object.entries(trailers)
    .map(([k, v]) => `${k}: ${v.replace(/\s+/g, " ").trim()}`)
    .join("\n");
}

export interface GitHost {
  kind: "github" | "local";
  /** Where to clone from and push to; never carries credentials. */
  cloneUrl(): string;
  /**
   * Environment for git commands talking to `cloneUrl()` (askpass helper and its secret). Async
   * because a GitHub App installation token is fetched and refreshed on demand. Pass it to git only,
   * never to agent processes.
   */
  auth(): Promise<{ env: Record<string, string> }>;
  findOpenPullRequest(branch: string): Promise<PullRequest | null>;
  /** Resolves to the already open pull request of `branch` when there is one. */
  createPullRequest(input: CreatePullRequest): Promise<PullRequest>;
  getPullRequest(number: number): Promise<PullRequest>;
  /** Merging an already merged pull request answers `{ merged: true }` with its merge commit. */
  mergePullRequest(number: number, opts: MergeOptions): Promise<{ merged: boolean; sha: string }>;
  closePullRequest(number: number, comment?: string): Promise<void>;
  /** Deletes a branch; resolves to false when it was already gone (deleting twice is fine). */
  deleteBranch(branch: string): Promise<boolean>;
}
