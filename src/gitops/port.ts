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
  /** Paragraphs of the merge commit's message between its title and the trailers (who, why). */
  body?: string;
};

/** `Key: value` lines, one per trailer; newlines in values are flattened so a value cannot add a trailer. */
export function formatTrailers(trailers: Record<string, string>): string {
  return Object.entries(trailers)
    .map(([k, v]) => `${k}: ${v.replace(/\s+/g, " ").trim()}`)
    .join("\n");
}

/** One file of a change: lines added and removed (0 and 0 for a binary file). */
export type DiffFile = { path: string; added: number; removed: number };
/**
 * What a change touches: its files (sorted by path, at most DIFF_MAX_FILES of them; `more` counts
 * the rest) and the lines added and removed in all of them. Stored on approvals as JSON.
 */
export type DiffSummary = { files: DiffFile[]; added: number; removed: number; more?: number };
/** A pull request's change at its current head: the summary and the start of its unified diff. */
export type PullDiff = { headSha: string; summary: DiffSummary; excerpt: string };

export const DIFF_MAX_FILES = 100;
export const DIFF_EXCERPT_MAX = 3000;

/** The summary of a change's files: totals over all of them, the list sorted and bounded. */
export function summarizeDiff(files: DiffFile[]): DiffSummary {
  const sorted = [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const summary: DiffSummary = {
    files: sorted.slice(0, DIFF_MAX_FILES),
    added: files.reduce((n, f) => n + f.added, 0),
    removed: files.reduce((n, f) => n + f.removed, 0),
  };
  if (sorted.length > DIFF_MAX_FILES) summary.more = sorted.length - DIFF_MAX_FILES;
  return summary;
}

/**
 * The start of a unified diff, at most `max` characters, cut at the end of a line; a cut excerpt
 * ends with a line saying how many lines were left out.
 */
export function diffExcerpt(diff: string, max = DIFF_EXCERPT_MAX): string {
  const text = diff.replace(/\n+$/, "");
  if (text.length <= max) return text;
  const lines = text.split("\n");
  const kept: string[] = [];
  let size = 0;
  const note = (left: number) => `… ${left} more line${left === 1 ? "" : "s"}`;
  for (const line of lines) {
    // Room for this line, its newline and the note that may follow it.
    if (size + line.length + 1 + note(lines.length).length > max) break;
    kept.push(line);
    size += line.length + 1;
  }
  return [...kept, note(lines.length - kept.length)].join("\n");
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
  /**
   * The change a pull request proposes at its current head (against where it branched from the
   * base): what an approval is bound to, read again when the head moved since the request.
   */
  pullRequestDiff(number: number): Promise<PullDiff>;
}
