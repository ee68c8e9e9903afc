import { join } from "node:path";
import { z } from "zod";
import { git, gitResult, trailerBlock } from "../../src/gitops/git.ts";
import { gitDiff } from "../../src/gitops/local.ts";
import type { DiffSummary, GitHost } from "../../src/gitops/port.ts";
import { AppError, conflict, invalid, isAppError, notFound } from "../../src/shared/errors.ts";
import { repoBuiltins, type RepoChange } from "../../src/skills/builtins/index.ts";
import { applyPatch, type PatchEdit } from "../../src/skills/patch.ts";
import { changeTrailers, INCIDENT_TRAILER } from "../../src/skills/builtins/rollback.ts";
import type { Executor } from "./types.ts";
import { withWorkspace } from "../workspace.ts";

// The `skill` task kind: a GitOps builtin or declarative patch applied to a fresh clone, on a
// deterministic branch, pushed with a lease, and proposed as a pull request — found before it is
// created, so a redelivered task reuses its branch and its PR. The result carries the change's
// diff summary and excerpt, which the approval is bound to. Two variants come from the control
// plane, not from a skill file: a rebuild (`rebuild: n`, after a merge conflict: the same skill on
// the current base, on its own branch `…-rebuild-<n>` so it never reuses the pull request it
// replaces) and a revert (`action.revert`: Pitcrew's own merged change reverted on
// `pitcrew/<incident>-revert` when it did not resolve the alert).

const SkillPayload = z.object({
  incidentId: z.string().min(1),
  skill: z.string().min(1),
  title: z.string().optional(),
  params: z.record(z.string(), z.unknown()),
  approval: z.string().optional(),
  rationale: z.string().nullable().optional(),
  action: z.union([
    z.object({ builtin: z.enum(["rollback", "scale", "restart", "quota"]) }),
    z.object({
      patch: z.array(
        z.object({
          file: z.string(),
          path: z.string(),
          set: z.unknown().optional(),
          multiply: z.number().optional(),
          append: z.unknown().optional(),
          max: z.union([z.number(), z.string()]).optional(),
        }),
      ),
    }),
    z.object({
      revert: z.object({
        sha: z.string().regex(/^[0-9a-f]{7,64}$/),
        number: z.number().int().positive(),
        why: z.string().max(2000).optional(),
      }),
    }),
  ]),
  rebuild: z.number().int().positive().optional(),
});

export type SkillExecutorOptions = {
  host: GitHost;
  baseBranch: string;
  author: { name: string; email: string };
  /** Links shown in the PR body (the control plane's public URL). */
  publicUrl?: string;
  workspaceBase?: string;
  now?: () => number;
  /** Appended to the deterministic branch name (a rebuild's `-rebuild-<n>`). */
  branchSuffix?: string;
};

export function branchFor(incidentId: string, skill: string): string {
  return `pitcrew/${incidentId}-${skill}`.toLowerCase();
}

/** The branch suffix of a task: `-rebuild-<n>` for the n-th rebuild of an incident's fix, else none. */
export function branchSuffixFor(payload: unknown): string {
  const n = (payload as { rebuild?: unknown } | null)?.rebuild;
  return typeof n === "number" && Number.isSafeInteger(n) && n > 0 ? `-rebuild-${n}` : "";
}

export type ProposedChange = {
  changed: true;
  summary: string;
  files: string[];
  details: Record<string, unknown>;
  pr: { number: number; url: string; branch: string; sha: string; reused: boolean };
  /** What the pull request changes against the base, for the approval. */
  diffSummary: DiffSummary;
  diffExcerpt: string;
};

export function prBody(p: z.infer<typeof SkillPayload>, summary: string, files: string[], publicUrl?: string): string {
  return [
    `Pitcrew proposes this change for incident \`${p.incidentId}\`${p.title ? `: **${p.title}**` : ""}.`,
    "",
    `**Plan:** skill \`${p.skill}\` with ${"builtin" in p.action ? `builtin \`${p.action.builtin}\`` : "a declarative patch"}.`,
    `**What changed:** ${summary}`,
    `**Why:** ${p.rationale ?? "selected by the rules planner"}`,
    "",
    "Files:",
    ...files.map((f) => `- \`${f}\``),
    "",
    `Parameters: \`${JSON.stringify(p.params)}\``,
    p.approval && p.approval !== "none"
      ? `\nThis change needs approval (${p.approval.replace("_", " ")}) before it is merged.`
      : "",
    publicUrl ? `\nIncident timeline: ${publicUrl}/incidents/${p.incidentId}` : "",
  ].join("\n");
}

function revertBody(
  p: z.infer<typeof SkillPayload>,
  revert: { sha: string; number: number; why?: string },
  summary: string,
  publicUrl?: string,
): string {
  return [
    `Pitcrew reverts its own change for incident \`${p.incidentId}\`${p.title ? `: **${p.title}**` : ""}: pull request #${revert.number} (merged as ${revert.sha.slice(0, 7)}).`,
    "",
    `**Why:** ${revert.why ?? "the alert did not resolve after the change"}; the skill asks for a revert when its fix is not verified (\`verify.on_failure: revert\`).`,
    `**What changed:** ${summary}`,
    "",
    "This revert needs approval before it is merged.",
    publicUrl ? `\nIncident timeline: ${publicUrl}/incidents/${p.incidentId}` : "",
  ].join("\n");
}

/**
 * Stages the revert of `sha` (a merge commit: against its first parent) in the clone. A commit not
 * on the base, a revert that conflicts with what followed it, or one with nothing left to undo
 * fail for good: retrying will not change them.
 */
async function stageRevert(repo: string, revert: { sha: string; number: number }): Promise<RepoChange> {
  const onBase = await gitResult(repo, ["merge-base", "--is-ancestor", revert.sha, "HEAD"]);
  if (onBase.exitCode !== 0)
    throw notFound(
      "gitops.revert_not_found",
      `commit ${revert.sha} of pull request #${revert.number} is not on the base branch; nothing to revert`,
    );
  const parents = (await git(repo, ["rev-list", "--parents", "-n", "1", revert.sha])).trim().split(" ").length - 1;
  const r = await gitResult(repo, ["revert", "--no-commit", ...(parents > 1 ? ["-m", "1"] : []), revert.sha]);
  if (r.exitCode !== 0) {
    const detail = (r.stderr || r.stdout).trim().split("\n").slice(-3).join(" ");
    throw conflict(
      "gitops.revert_conflict",
      `reverting ${revert.sha.slice(0, 7)} (pull request #${revert.number}) conflicts with what was merged after it: ${detail}`,
    );
  }
  const files = (await git(repo, ["diff", "--cached", "--name-only", "--no-renames"])).split("\n").filter(Boolean);
  if (files.length === 0)
    throw new AppError(
      "conflict",
      "gitops.no_change",
      `pull request #${revert.number} (${revert.sha.slice(0, 7)}) is already undone on the base branch`,
      { retryable: false },
    );
  return {
    files,
    summary: `revert pull request #${revert.number}: undo merge ${revert.sha.slice(0, 7)} in ${files.join(", ")}.\n\nThis reverts commit ${revert.sha}.`,
    details: { reverts: revert.sha, pr: revert.number },
  };
}

export type ProposeInput = {
  incidentId: string;
  skill: string;
  title: string;
  body: (change: RepoChange) => string;
  commitMessage: string;
};

/**
 * Clone, deterministic branch, change, commit, push with a lease, find-or-create the pull request.
 * The workspace is always removed. Shared by the skill and agent task kinds.
 */
export async function proposeChange(
  opts: SkillExecutorOptions,
  input: ProposeInput,
  ctx: Parameters<Executor>[1],
  modify: (repoDir: string) => Promise<RepoChange>,
): Promise<{ changed: false; summary: string } | ProposedChange> {
  const branch = branchFor(input.incidentId, input.skill) + (opts.branchSuffix ?? "");
  const env = { ...(await opts.host.auth()).env, GIT_TERMINAL_PROMPT: "0" };
  return withWorkspace(
    "pitcrew-skill-",
    async (dir) => {
      await ctx.progress(`cloning ${opts.host.cloneUrl()}`, 5);
      await git(dir, ["clone", "--quiet", "--branch", opts.baseBranch, "--", opts.host.cloneUrl(), "repo"], {
        env,
        timeoutMs: 300_000,
      });
      const repo = join(dir, "repo");
      await git(repo, ["checkout", "--quiet", "-B", branch]);
      if (ctx.signal.aborted) throw ctx.signal.reason;

      await ctx.progress(`applying ${input.skill}`, 30);
      let change: RepoChange;
      try {
        change = await modify(repo);
      } catch (err) {
        if (isAppError(err) && err.code === "gitops.no_change")
          return { changed: false as const, summary: err.message };
        // A skill that does not fit the repository will not fit it on the next delivery either.
        if (isAppError(err) && !err.retryable)
          throw new AppError(err.kind, err.code, err.message, { retryable: false });
        throw err;
      }
      if (ctx.signal.aborted) throw ctx.signal.reason;

      await git(repo, ["add", "--all", "--", ...change.files]);
      const authorEnv = {
        ...env,
        GIT_AUTHOR_NAME: opts.author.name,
        GIT_AUTHOR_EMAIL: opts.author.email,
        GIT_COMMITTER_NAME: opts.author.name,
        GIT_COMMITTER_EMAIL: opts.author.email,
      };
      // Trailers are the git record later history walks read (a rollback never returns to a version one left).
      const trailers = trailerBlock([[INCIDENT_TRAILER, input.incidentId], ...changeTrailers(change.details)]);
      await git(
        repo,
        ["commit", "--quiet", "--no-verify", "-m", input.commitMessage, "-m", change.summary, "-m", trailers],
        { env: authorEnv },
      );

      // Lease on what the remote branch is now (nothing, or an earlier attempt's commit): a
      // concurrent writer makes the push fail instead of being overwritten.
      const remote = (await git(repo, ["ls-remote", "origin", `refs/heads/${branch}`], { env })).split(/\s+/)[0] ?? "";
      await ctx.progress(`pushing ${branch}`, 70);
      await git(
        repo,
        [
          "push",
          "--quiet",
          "--no-verify",
          `--force-with-lease=refs/heads/${branch}:${remote}`,
          "origin",
          `HEAD:refs/heads/${branch}`,
        ],
        { env, timeoutMs: 300_000 },
      );

      const sha = (await git(repo, ["rev-parse", "HEAD"])).trim();
      // What the pull request will show: the change against where the branch left the base.
      const diff = await gitDiff(repo, `origin/${opts.baseBranch}...HEAD`);
      // A cancel that landed while we worked (even one this runner never heard) stops us before the PR.
      await ctx.assertNotCancelled?.();
      const existing = await opts.host.findOpenPullRequest(branch);
      const pr =
        existing ??
        (await opts.host.createPullRequest({
          branch,
          base: opts.baseBranch,
          title: input.title.slice(0, 250),
          body: input.body(change),
        }));
      await ctx.prOpened?.({ url: pr.url, branch, number: pr.number });
      await ctx.progress(existing ? `updated pull request #${pr.number}` : `opened pull request #${pr.number}`, 100);
      return {
        changed: true,
        summary: change.summary,
        files: change.files,
        details: change.details,
        pr: { number: pr.number, url: pr.url, branch, sha, reused: !!existing },
        diffSummary: diff.summary,
        diffExcerpt: diff.excerpt,
      };
    },
    { base: opts.workspaceBase },
  );
}

export function createSkillExecutor(opts: SkillExecutorOptions): Executor {
  const now = opts.now ?? Date.now;
  return async (task, ctx) => {
    const parsed = SkillPayload.safeParse(task.payload);
    if (!parsed.success)
      throw invalid(
        "skill.invalid_payload",
        parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "),
      );
    const p = parsed.data;
    const a = p.action;
    if ("revert" in a) {
      return proposeChange(
        opts,
        {
          incidentId: p.incidentId,
          skill: "revert",
          title: `[pitcrew] revert #${a.revert.number}: ${p.title ?? p.incidentId}`,
          commitMessage: `pitcrew: revert pull request #${a.revert.number} for ${p.incidentId}`,
          body: (c) => revertBody(p, a.revert, c.summary.split("\n")[0]!, opts.publicUrl),
        },
        ctx,
        (repo) => stageRevert(repo, a.revert),
      );
    }
    return proposeChange(
      { ...opts, branchSuffix: branchSuffixFor(p) },
      {
        incidentId: p.incidentId,
        skill: p.skill,
        title: `[pitcrew] ${p.skill}: ${p.title ?? p.incidentId}`,
        commitMessage: `pitcrew: ${p.skill} for ${p.incidentId}`,
        body: (c) => prBody(p, c.summary, c.files, opts.publicUrl),
      },
      ctx,
      (repo) =>
        "builtin" in a ? repoBuiltins[a.builtin](repo, p.params, { now }) : applyPatch(repo, a.patch as PatchEdit[]),
    );
  };
}
