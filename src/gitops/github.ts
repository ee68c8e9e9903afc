import { fileURLToPath } from "node:url";
import { createAppAuth } from "@octokit/auth-app";
import { Octokit } from "@octokit/rest";
import { AppError, conflict, invalid } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import { diffExcerpt, formatTrailers, summarizeDiff, type GitHost, type PullRequest } from "./port.ts";
import { webOrigin } from "./repo-url.ts";

// Pull requests on GitHub (or GitHub Enterprise Server) through octokit, authenticated with a token
// or as a GitHub App installation. Git itself authenticates through runner/askpass.sh, which prints
// the secret from the environment of the git process: no credentials in URLs, arguments or files.

export const ASKPASS_PATH = fileURLToPath(new URL("../../runner/askpass.sh", import.meta.url));

export type GitHubHostOptions = {
  owner: string;
  repo: string;
  token?: string;
  app?: { appId: number | string; privateKey: string; installationId: number };
  /** REST API root; GitHub Enterprise Server: `https://ghe.example.com/api/v3`. */
  baseUrl?: string;
  fetch?: typeof fetch;
  timeoutMs?: number;
  log?: Logger;
};

type GitHubPull = {
  number: number;
  html_url: string;
  state: string;
  title: string;
  merged?: boolean;
  merged_at?: string | null;
  merge_commit_sha?: string | null;
  head: { ref: string; sha: string; label?: string };
  base: { ref: string };
};

const API = "https://api.github.com";
// Shapes of GitHub tokens (classic, fine-grained, installation, OAuth, user-to-server, refresh).
const TOKEN_SHAPES = /\b(gh[pousr]_[A-Za-z0-9_]{16,}|github_pat_[A-Za-z0-9_]{20,})\b/g;

export function createGitHubHost(opts: GitHubHostOptions): GitHost {
  if (!opts.token === !opts.app)
    throw invalid("github.config", "configure exactly one of a GitHub token or a GitHub App");
  const { owner, repo } = opts;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const baseUrl = (opts.baseUrl ?? API).replace(/\/$/, "");
  const secrets = new Set<string>(opts.token ? [opts.token] : []);
  const scrub = (s: string) =>
    [...secrets].reduce((acc, t) => acc.split(t).join("***"), s).replace(TOKEN_SHAPES, "***");
  const warn = (m: string) => opts.log?.warn({ detail: scrub(m) }, "github client warning");
  const quiet = () => {};

  // The global fetch is looked up per request (not captured here), and every request gets a deadline.
  const fetchWithTimeout: typeof fetch = (input, init) =>
    (opts.fetch ?? globalThis.fetch)(input, { ...init, signal: init?.signal ?? AbortSignal.timeout(timeoutMs) });
  const octokit = new Octokit({
    baseUrl,
    userAgent: "pitcrew",
    request: { fetch: fetchWithTimeout },
    log: { debug: quiet, info: quiet, warn, error: warn },
    ...(opts.app
      ? {
          authStrategy: createAppAuth,
          auth: { appId: opts.app.appId, privateKey: opts.app.privateKey, installationId: opts.app.installationId },
        }
      : { auth: opts.token }),
  });

  /** One mapping from octokit failures to AppError; messages never carry a credential. */
  function toAppError(err: unknown, what: string, notFoundCode = "github.not_found"): AppError {
    if (err instanceof AppError) return err;
    const e = err as {
      status?: number;
      message?: string;
      response?: { data?: unknown; headers?: Record<string, string | undefined> };
    };
    const data = (typeof e.response?.data === "object" && e.response.data) || {};
    const d = data as {
      message?: string;
      documentation_url?: string;
      errors?: Array<{ message?: string; code?: string; field?: string } | string>;
    };
    const reasons = (d.errors ?? [])
      .map((x) => (typeof x === "string" ? x : (x.message ?? [x.field, x.code].filter(Boolean).join(" "))))
      .filter(Boolean);
    const said = scrub([d.message ?? e.message ?? String(err), ...reasons].join(": "));
    const status = e.status ?? 0;
    const message = `GitHub ${what} failed (${status || "no response"}): ${said}`;
    const details = { status, documentationUrl: d.documentation_url };
    const headers = e.response?.headers ?? {};
    if ((status === 403 || status === 429) && (headers["x-ratelimit-remaining"] === "0" || headers["retry-after"])) {
      return new AppError("unavailable", "github.rate_limited", message, {
        retryable: true,
        details: { ...details, retryAfter: headers["retry-after"], reset: headers["x-ratelimit-reset"] },
      });
    }
    if (status === 401 || status === 403) return new AppError("forbidden", "github.unauthorized", message, { details });
    if (status === 404) return new AppError("not_found", notFoundCode, message, { details });
    if (status === 422 || status === 400) return new AppError("invalid", "github.invalid", message, { details });
    if (status >= 500 || status === 0)
      return new AppError("unavailable", "github.unavailable", message, { retryable: true, details });
    return new AppError("unavailable", "github.failed", message, { retryable: false, details });
  }

  async function call<T>(what: string, fn: () => Promise<T>, notFoundCode?: string): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw toAppError(err, what, notFoundCode);
    }
  }

  const toPull = (p: GitHubPull): PullRequest => ({
    number: p.number,
    url: p.html_url,
    branch: p.head.ref,
    base: p.base.ref,
    // List items carry merged_at but no `merged` flag.
    state: p.merged || p.merged_at ? "merged" : p.state === "open" ? "open" : "closed",
    headSha: p.head.sha,
    title: p.title,
  });

  const getRaw = (n: number) =>
    call(
      `get pull request #${n}`,
      async () => (await octokit.rest.pulls.get({ owner, repo, pull_number: n })).data as GitHubPull,
      "gitops.pull_not_found",
    );

  async function findOpen(branch: string): Promise<PullRequest | null> {
    const head = `${owner}:${branch}`;
    const pulls = await call(
      "list pull requests",
      async () =>
        (await octokit.rest.pulls.list({ owner, repo, state: "open", head, per_page: 100 })).data as GitHubPull[],
    );
    const mine = pulls.find((p) => p.head.ref === branch && (p.head.label ?? head) === head);
    return mine ? toPull(mine) : null;
  }

  const cloneUrl = () => `${webOrigin(baseUrl)}/${owner}/${repo}.git`;

  return {
    kind: "github",
    cloneUrl,

    async auth() {
      // A token strategy ignores the argument; an App answers with a cached or fresh installation token.
      const { token } = (await call("authentication", () => octokit.auth({ type: "installation" }))) as {
        token: string;
      };
      secrets.add(token);
      return {
        env: {
          GIT_ASKPASS: ASKPASS_PATH,
          // The helper answers only when git asks for exactly this URL (scheme, host and path).
          PITCREW_GIT_URL: cloneUrl(),
          PITCREW_GIT_USERNAME: "x-access-token",
          PITCREW_GIT_PASSWORD: token,
          GIT_TERMINAL_PROMPT: "0",
          // An empty credential.helper clears configured helpers, so none of them stores the token;
          // useHttpPath puts the repository's path in git's prompt, for the helper to check.
          GIT_CONFIG_COUNT: "2",
          GIT_CONFIG_KEY_0: "credential.helper",
          GIT_CONFIG_VALUE_0: "",
          GIT_CONFIG_KEY_1: "credential.useHttpPath",
          GIT_CONFIG_VALUE_1: "true",
        },
      };
    },

    findOpenPullRequest: findOpen,

    async createPullRequest({ branch, base, title, body }) {
      try {
        const { data } = await octokit.rest.pulls.create({ owner, repo, head: branch, base, title, body });
        return toPull(data as GitHubPull);
      } catch (err) {
        // 422 "A pull request already exists for owner:branch": someone (a previous attempt) won.
        if ((err as { status?: number }).status === 422) {
          const existing = await findOpen(branch);
          if (existing) return existing;
        }
        throw toAppError(err, "create pull request");
      }
    },

    getPullRequest: async (n) => toPull(await getRaw(n)),

    async mergePullRequest(n, { method, sha, trailers, body }) {
      // GitHub keeps its own title; the message (the commit body) carries who and why, then the trailers.
      const paragraphs = [
        body?.trim(),
        trailers && Object.keys(trailers).length > 0 ? formatTrailers(trailers) : undefined,
      ].filter(Boolean);
      const message = paragraphs.length > 0 ? { commit_message: paragraphs.join("\n\n") } : {};
      try {
        const { data } = await octokit.rest.pulls.merge({
          owner,
          repo,
          pull_number: n,
          merge_method: method,
          ...(sha ? { sha } : {}),
          ...message,
        });
        return { merged: data.merged, sha: data.sha };
      } catch (err) {
        const status = (err as { status?: number }).status;
        if (status === 409)
          throw conflict(
            "gitops.head_moved",
            `pull request #${n}: the head branch moved${sha ? ` from ${sha}` : ""}; review and merge again`,
          );
        if (status !== 405) throw toAppError(err, `merge pull request #${n}`, "gitops.pull_not_found");
        // 405 "Pull Request is not mergeable": already merged (fine, say so), closed, or conflicting.
        const pr = await getRaw(n);
        if (pr.merged && pr.merge_commit_sha) return { merged: true, sha: pr.merge_commit_sha };
        if (pr.state !== "open") throw conflict("gitops.pull_not_open", `pull request #${n} is closed`);
        throw conflict(
          "gitops.merge_conflict",
          `pull request #${n} (${pr.head.ref} into ${pr.base.ref}) is not mergeable`,
        );
      }
    },

    async closePullRequest(n, comment) {
      // The comment first: it explains the close that follows it in the timeline.
      if (comment)
        await call(
          `comment on pull request #${n}`,
          () => octokit.rest.issues.createComment({ owner, repo, issue_number: n, body: comment }),
          "gitops.pull_not_found",
        );
      await call(
        `close pull request #${n}`,
        () => octokit.rest.pulls.update({ owner, repo, pull_number: n, state: "closed" }),
        "gitops.pull_not_found",
      );
    },

    async pullRequestDiff(n) {
      const pr = await getRaw(n);
      // Paginated (100 a page; GitHub lists up to 3,000 files). A binary file has no patch.
      const files = await call(
        `list files of pull request #${n}`,
        () => octokit.paginate(octokit.rest.pulls.listFiles, { owner, repo, pull_number: n, per_page: 100 }),
        "gitops.pull_not_found",
      );
      const patch = files
        .map((f) =>
          [
            `diff --git a/${f.previous_filename ?? f.filename} b/${f.filename}`,
            ...(f.patch ? [`--- a/${f.previous_filename ?? f.filename}`, `+++ b/${f.filename}`, f.patch] : []),
          ].join("\n"),
        )
        .join("\n");
      return {
        headSha: pr.head.sha,
        summary: summarizeDiff(files.map((f) => ({ path: f.filename, added: f.additions, removed: f.deletions }))),
        excerpt: diffExcerpt(patch),
      };
    },

    async deleteBranch(branch) {
      // Each segment encoded, the slashes kept: `git/refs/heads/pitcrew/inc-1-scale`, as documented.
      const path = branch.split("/").map(encodeURIComponent).join("/");
      try {
        await octokit.request(`DELETE /repos/{owner}/{repo}/git/refs/heads/${path}`, { owner, repo });
        return true;
      } catch (err) {
        // 422 "Reference does not exist" (or 404): already gone, which is what we wanted.
        const status = (err as { status?: number }).status;
        if (status === 422 || status === 404) return false;
        throw toAppError(err, `delete branch ${branch}`);
      }
    },
  };
}
