import { createHash } from "node:crypto";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { AppError, conflict, invalid, notFound, unavailable } from "../shared/errors.ts";
import { git, gitInput, gitResult } from "./git.ts";
import {
  diffExcerpt,
  formatTrailers,
  summarizeDiff,
  type CreatePullRequest,
  type DiffFile,
  type GitHost,
  type MergeOptions,
  type PullDiff,
  type PullRequest,
  type PullRequestState,
} from "./port.ts";

// Pull requests on a bare repository: a PR is a head branch plus a record. Records are stored in
// git itself, not in a side file: `refs/pitcrew/pulls/<n>` points at a JSON blob, and
// `refs/pitcrew/open/<sha1(branch)>` exists while that branch has an open PR. Every change is one
// `git update-ref --stdin` transaction with expected old values, so git's ref locking gives us
// atomicity and compare-and-swap across processes: two creators for one branch cannot both win (the
// open ref is created, never overwritten), two creators cannot take the same number, and a merge
// advances the base branch and marks the PR merged in one step or not at all. No lock file of our
// own to go stale, and a clone does not fetch these refs (only refs/heads and tags).

const PULLS = "refs/pitcrew/pulls/";
const OPEN = "refs/pitcrew/open/";
const MAX_ATTEMPTS = 20;

type Comment = { body: string; at: string };
type PullRecord = {
  number: number;
  branch: string;
  base: string;
  title: string;
  body: string;
  state: PullRequestState;
  /** Head when the PR was created, and frozen when it was merged or closed. */
  headSha: string;
  mergeSha?: string;
  createdAt: string;
  updatedAt: string;
  comments: Comment[];
};

export type LocalGitHostOptions = {
  /** A bare repository; branches are pushed to it and merged inside it. */
  repoPath: string;
  /** Identity of merge commits. */
  committer?: { name: string; email: string };
  now?: () => Date;
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The change from `from` to `to` in a repository (bare or not): `git diff --numstat` for the
 * summary and the unified diff's start for the excerpt. `from...to` diffs against their merge
 * base, as a pull request shows its change. Used by the runner on its clone, and below.
 */
export async function gitDiff(
  dir: string,
  range: string,
  opts: { env?: Record<string, string> } = {},
): Promise<Omit<PullDiff, "headSha">> {
  if (range.startsWith("-")) throw invalid("gitops.bad_revision", `not a revision range: ${range}`);
  const numstat = await git(dir, ["diff", "--numstat", "--no-renames", "-z", range, "--"], opts);
  const files: DiffFile[] = [];
  // -z: "added\tremoved\tpath\0" per file; "-\t-\t" for a binary file.
  for (const entry of numstat.split("\0")) {
    const m = /^(-|\d+)\t(-|\d+)\t([\s\S]+)$/.exec(entry);
    if (m)
      files.push({ path: m[3]!, added: m[1] === "-" ? 0 : Number(m[1]), removed: m[2] === "-" ? 0 : Number(m[2]) });
  }
  const patch = await git(dir, ["diff", "--no-renames", "--no-color", "--no-ext-diff", range, "--"], opts);
  return { summary: summarizeDiff(files), excerpt: diffExcerpt(patch) };
}

const openRef = (branch: string) => OPEN + createHash("sha1").update(branch).digest("hex");

export function createLocalGitHost(opts: LocalGitHostOptions): GitHost {
  const repo = resolve(opts.repoPath);
  const now = opts.now ?? (() => new Date());
  const who = opts.committer ?? { name: "Pitcrew", email: "pitcrew@localhost" };
  const identity = {
    GIT_AUTHOR_NAME: who.name,
    GIT_AUTHOR_EMAIL: who.email,
    GIT_COMMITTER_NAME: who.name,
    GIT_COMMITTER_EMAIL: who.email,
  };
  const pullUrl = (n: number) => `${pathToFileURL(repo).href}#pull/${n}`;

  async function assertBranch(name: string, what: string): Promise<void> {
    // Also keeps newlines and spaces out of the update-ref transactions below.
    const ok = await git(repo, ["check-ref-format", `refs/heads/${name}`]).then(
      () => true,
      () => false,
    );
    if (!ok || name.startsWith("-"))
      throw invalid("gitops.bad_branch", `${what} is not a valid branch name: ${JSON.stringify(name)}`);
  }

  async function readRef(ref: string): Promise<string | undefined> {
    const out = await git(repo, ["for-each-ref", "--format=%(objectname) %(refname)", ref]);
    for (const line of out.split("\n")) {
      const [oid, name] = line.split(" ");
      if (name === ref) return oid;
    }
    return undefined;
  }

  async function load(number: number): Promise<{ record: PullRecord; oid: string }> {
    const oid = Number.isSafeInteger(number) && number > 0 ? await readRef(PULLS + number) : undefined;
    if (!oid) throw notFound("gitops.pull_not_found", `pull request #${number} does not exist`);
    return { record: JSON.parse(await git(repo, ["cat-file", "blob", oid])) as PullRecord, oid };
  }

  const writeRecord = async (record: PullRecord) =>
    (await gitInput(repo, ["hash-object", "-w", "--stdin"], JSON.stringify(record))).trim();

  /** One atomic ref transaction; false when an expected old value no longer held (or a lock was taken). */
  async function transaction(lines: string[]): Promise<boolean> {
    try {
      await gitInput(repo, ["update-ref", "--stdin"], `${lines.join("\n")}\n`);
      return true;
    } catch (err) {
      if (err instanceof AppError && err.code === "gitops.git_failed") return false;
      throw err;
    }
  }

  async function retrying<T>(what: string, attempt: () => Promise<T | undefined>): Promise<T> {
    for (let i = 0; i < MAX_ATTEMPTS; i++) {
      const done = await attempt();
      if (done !== undefined) return done;
      await sleep(5 + Math.random() * 20 * (i + 1));
    }
    throw unavailable(
      "gitops.local_busy",
      `${what}: the repository kept changing under us after ${MAX_ATTEMPTS} attempts`,
    );
  }

  async function toPull(r: PullRecord): Promise<PullRequest> {
    const live = r.state === "open" ? await readRef(`refs/heads/${r.branch}`) : undefined;
    return {
      number: r.number,
      url: pullUrl(r.number),
      branch: r.branch,
      base: r.base,
      state: r.state,
      headSha: live ?? r.headSha,
      title: r.title,
    };
  }

  async function findOpen(branch: string): Promise<PullRequest | null> {
    const oid = await readRef(openRef(branch));
    if (!oid) return null;
    const { number } = JSON.parse(await git(repo, ["cat-file", "blob", oid])) as PullRecord;
    const { record } = await load(number);
    return record.state === "open" ? toPull(record) : null;
  }

  async function nextNumber(): Promise<number> {
    const out = await git(repo, ["for-each-ref", "--format=%(refname:lstrip=3)", PULLS]);
    return out.split("\n").reduce((max, n) => Math.max(max, Number(n) || 0), 0) + 1;
  }

  async function mergeCommit(
    r: PullRecord,
    baseSha: string,
    headSha: string,
    { method, trailers, body }: MergeOptions,
  ): Promise<string> {
    const out = await gitResult(repo, ["merge-tree", "--write-tree", "--no-messages", "--name-only", baseSha, headSha]);
    // Status 1 is "merged with conflicts": stdout is the tree, then the conflicted paths.
    if (out.exitCode === 1) {
      const files = out.stdout
        .split("\n")
        .slice(1)
        .map((l) => l.trim())
        .filter(Boolean);
      throw new AppError(
        "conflict",
        "gitops.merge_conflict",
        `pull request #${r.number} (${r.branch} into ${r.base}) has merge conflicts`,
        { details: { files } },
      );
    }
    if (out.exitCode !== 0)
      throw new AppError("unavailable", "gitops.git_failed", `git merge-tree failed: ${out.stderr.trim()}`, {
        retryable: false,
      });
    const tree = out.stdout.split("\n")[0]!.trim();
    let message =
      method === "squash"
        ? `${r.title} (#${r.number})\n\n${r.body}`
        : `Merge pull request #${r.number} from ${r.branch}\n\n${r.title}`;
    if (body?.trim()) message = `${message.trimEnd()}\n\n${body.trim()}`;
    if (trailers && Object.keys(trailers).length > 0) message = `${message.trimEnd()}\n\n${formatTrailers(trailers)}`;
    const parents = method === "squash" ? ["-p", baseSha] : ["-p", baseSha, "-p", headSha];
    return (await git(repo, ["commit-tree", tree, ...parents, "-m", message], { env: identity })).trim();
  }

  return {
    kind: "local",
    cloneUrl: () => repo,
    auth: async () => ({ env: {} }),

    findOpenPullRequest: async (branch) => {
      await assertBranch(branch, "branch");
      return findOpen(branch);
    },

    async createPullRequest(input: CreatePullRequest) {
      await assertBranch(input.branch, "branch");
      await assertBranch(input.base, "base");
      return retrying("create pull request", async () => {
        const existing = await findOpen(input.branch);
        if (existing) return existing;
        const headSha = await readRef(`refs/heads/${input.branch}`);
        if (!headSha)
          throw invalid("gitops.branch_not_found", `branch ${input.branch} does not exist in the repository`);
        if (!(await readRef(`refs/heads/${input.base}`)))
          throw invalid("gitops.branch_not_found", `base branch ${input.base} does not exist in the repository`);
        const at = now().toISOString();
        const record: PullRecord = {
          number: await nextNumber(),
          ...input,
          state: "open",
          headSha,
          createdAt: at,
          updatedAt: at,
          comments: [],
        };
        const oid = await writeRecord(record);
        // `create` fails if the ref exists: the number was taken, or the branch got its open PR meanwhile.
        const ok = await transaction([
          `create ${PULLS}${record.number} ${oid}`,
          `create ${openRef(input.branch)} ${oid}`,
        ]);
        return ok ? toPull(record) : undefined;
      });
    },

    getPullRequest: async (number) => toPull((await load(number)).record),

    async mergePullRequest(number, mergeOpts) {
      return retrying(`merge pull request #${number}`, async () => {
        const { record, oid } = await load(number);
        if (record.state === "merged") return { merged: true, sha: record.mergeSha! };
        if (record.state === "closed") throw conflict("gitops.pull_not_open", `pull request #${number} is closed`);
        const headSha = await readRef(`refs/heads/${record.branch}`);
        if (!headSha)
          throw conflict("gitops.head_moved", `branch ${record.branch} of pull request #${number} no longer exists`);
        if (mergeOpts.sha && mergeOpts.sha !== headSha) {
          throw conflict(
            "gitops.head_moved",
            `branch ${record.branch} moved from ${mergeOpts.sha} to ${headSha}; review and merge again`,
          );
        }
        const baseSha = await readRef(`refs/heads/${record.base}`);
        if (!baseSha) throw conflict("gitops.branch_not_found", `base branch ${record.base} no longer exists`);
        const sha = await mergeCommit(record, baseSha, headSha, mergeOpts);
        const next = await writeRecord({
          ...record,
          state: "merged",
          headSha,
          mergeSha: sha,
          updatedAt: now().toISOString(),
        });
        const open = await readRef(openRef(record.branch));
        const ok = await transaction([
          `update refs/heads/${record.base} ${sha} ${baseSha}`,
          `verify refs/heads/${record.branch} ${headSha}`,
          `update ${PULLS}${number} ${next} ${oid}`,
          ...(open ? [`delete ${openRef(record.branch)} ${open}`] : []),
        ]);
        // Lost a race (the base or head moved, or the PR changed): start over from fresh state.
        return ok ? { merged: true, sha } : undefined;
      });
    },

    async closePullRequest(number, comment) {
      await retrying(`close pull request #${number}`, async () => {
        const { record, oid } = await load(number);
        if (record.state === "merged")
          throw conflict("gitops.pull_not_open", `pull request #${number} is already merged`);
        if (record.state === "closed" && !comment) return true;
        const at = now().toISOString();
        const headSha = (record.state === "open" && (await readRef(`refs/heads/${record.branch}`))) || record.headSha;
        const comments = comment ? [...record.comments, { body: comment, at }] : record.comments;
        const next = await writeRecord({ ...record, state: "closed", headSha, comments, updatedAt: at });
        const open = record.state === "open" ? await readRef(openRef(record.branch)) : undefined;
        const ok = await transaction([
          `update ${PULLS}${number} ${next} ${oid}`,
          ...(open ? [`delete ${openRef(record.branch)} ${open}`] : []),
        ]);
        return ok ? true : undefined;
      });
    },

    async pullRequestDiff(number) {
      const { record } = await load(number);
      const pr = await toPull(record);
      // Merged: against the base as it was (the merge's first parent); else against the base now.
      const from =
        record.state === "merged" && record.mergeSha
          ? `${record.mergeSha}^1`
          : ((await readRef(`refs/heads/${record.base}`)) ?? record.headSha);
      return { headSha: pr.headSha, ...(await gitDiff(repo, `${from}...${pr.headSha}`)) };
    },

    async deleteBranch(branch) {
      await assertBranch(branch, "branch");
      return retrying(`delete branch ${branch}`, async () => {
        const oid = await readRef(`refs/heads/${branch}`);
        if (!oid) return false;
        // Compare-and-swap: a push that moved the branch meanwhile makes us look again.
        return (await transaction([`delete refs/heads/${branch} ${oid}`])) ? true : undefined;
      });
    },
  };
}
