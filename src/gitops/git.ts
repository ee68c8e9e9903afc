import { execFile } from "node:child_process";
import { AppError } from "../shared/errors.ts";

// The git CLI with argument arrays, never a shell: a branch or path from an alert can't inject
// anything. No prompts (a credential prompt would hang until the timeout), stable output.

const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_BUFFER = 64 * 1024 * 1024;

export type GitOptions = { timeoutMs?: number; env?: Record<string, string> };

export function git(dir: string, args: string[], opts: GitOptions = {}): Promise<string> {
  const timeout = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const env = { ...process.env, GIT_TERMINAL_PROMPT: "0", GIT_OPTIONAL_LOCKS: "0", LC_ALL: "C", ...opts.env };
  return new Promise((resolve, reject) => {
    execFile(
      "git",
      ["-C", dir, ...args],
      { timeout, maxBuffer: MAX_BUFFER, env, encoding: "utf8" },
      (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        const e = err as NodeJS.ErrnoException & { killed?: boolean; signal?: string | null; code?: number | string };
        const what = `git ${args[0] ?? ""}`.trim();
        if (e.killed || e.signal === "SIGTERM") {
          return reject(
            new AppError("unavailable", "gitops.git_timeout", `${what} did not finish within ${timeout} ms`, {
              cause: err,
              retryable: true,
            }),
          );
        }
        const detail = (stderr || e.message).trim().split("\n").slice(-3).join(" ");
        reject(
          new AppError("unavailable", "gitops.git_failed", `${what} failed: ${detail}`, {
            cause: err,
            retryable: false,
            details: { args, exitCode: e.code },
          }),
        );
      },
    );
  });
}

export type FileCommit = {
  commit: string;
  /** Commit time, epoch milliseconds. */
  time: number;
  subject: string;
  /** The file's path (relative to `dir`) in that commit; differs from today's after a rename. */
  path: string;
  /** The commit message's trailers (`Pitcrew-Incident: inc_1`), in order, keys as written. */
  trailers: Array<{ key: string; value: string }>;
};

/**
 * Commits that touched `path` (relative to `dir`), newest first, following renames. Topological
 * order: a commit always comes before its parents, even when their times are equal or skewed (a
 * branch commit merged later, commits made in the same second).
 */
export async function fileHistory(
  dir: string,
  path: string,
  opts: GitOptions & { limit?: number } = {},
): Promise<FileCommit[]> {
  // Fields are split by 0x1e and trailers by 0x1f: neither appears in a subject or a trailer line.
  const format = "--format=%x00%H%x1e%ct%x1e%(trailers:only=true,unfold=true,separator=%x1f)%x1e%s";
  const args = ["log", "--follow", "--topo-order", "--relative", "--name-only", format];
  if (opts.limit) args.push(`--max-count=${opts.limit}`);
  const out = await git(dir, [...args, "--", path], opts);
  const commits: FileCommit[] = [];
  for (const chunk of out.split("\0").slice(1)) {
    const [header = "", ...rest] = chunk.split("\n");
    const [commit = "", time = "0", trailers = "", ...subject] = header.split("\x1e");
    const names = rest.map((l) => l.trim()).filter(Boolean);
    commits.push({
      commit,
      time: Number(time) * 1000,
      subject: subject.join("\x1e"),
      path: names[names.length - 1] ?? path,
      trailers: parseTrailers(trailers),
    });
  }
  return commits;
}

/** `Key: value` lines separated by 0x1f, as `%(trailers:only,unfold,separator=%x1f)` prints them. */
function parseTrailers(text: string): Array<{ key: string; value: string }> {
  const trailers: Array<{ key: string; value: string }> = [];
  for (const line of text.split("\x1f")) {
    const colon = line.indexOf(":");
    if (colon > 0) trailers.push({ key: line.slice(0, colon).trim(), value: line.slice(colon + 1).trim() });
  }
  return trailers;
}

/**
 * A trailer block for a commit message (`Key: value` lines): values are made single-line, so a
 * value taken from a manifest or a payload cannot add trailers of its own.
 */
export function trailerBlock(trailers: Array<[key: string, value: string]>): string {
  return trailers.map(([k, v]) => `${k}: ${v.replace(/[\r\n]+/g, " ").trim()}`).join("\n");
}

/** The content of `path` (relative to `dir`) at `rev`, or undefined when it does not exist there. */
export async function showFile(
  dir: string,
  rev: string,
  path: string,
  opts: GitOptions = {},
): Promise<string | undefined> {
  if (rev.startsWith("-")) throw new AppError("invalid", "gitops.bad_revision", `not a revision: ${rev}`);
  try {
    return await git(dir, ["show", `${rev}:./${path}`], opts);
  } catch (err) {
    // A failure for a commit that exists means the path is not in it (deleted, not yet added).
    if (err instanceof AppError && err.code === "gitops.git_failed") {
      const commitExists = await git(dir, ["rev-parse", "--verify", "--quiet", `${rev}^{commit}`], opts).then(
        () => true,
        () => false,
      );
      if (commitExists) return undefined;
    }
    throw err;
  }
}

export type GitResult = { exitCode: number; stdout: string; stderr: string };

/**
 * Runs git and resolves with its exit status instead of rejecting on a non-zero one, for commands
 * whose status is an answer (`merge-tree --write-tree` exits 1 on conflicts). `input` goes to
 * stdin. Rejects only when git times out or cannot start.
 */
export function gitResult(dir: string, args: string[], opts: GitOptions & { input?: string } = {}): Promise<GitResult> {
  const timeout = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const env = { ...process.env, GIT_TERMINAL_PROMPT: "0", GIT_OPTIONAL_LOCKS: "0", LC_ALL: "C", ...opts.env };
  const what = `git ${args[0] ?? ""}`.trim();
  return new Promise((resolve, reject) => {
    const child = execFile(
      "git",
      ["-C", dir, ...args],
      { timeout, maxBuffer: MAX_BUFFER, env, encoding: "utf8" },
      (err, stdout, stderr) => {
        if (!err) return resolve({ exitCode: 0, stdout, stderr });
        const e = err as NodeJS.ErrnoException & { killed?: boolean; signal?: string | null; code?: number | string };
        if (e.killed || e.signal === "SIGTERM") {
          return reject(
            new AppError("unavailable", "gitops.git_timeout", `${what} did not finish within ${timeout} ms`, {
              cause: err,
              retryable: true,
            }),
          );
        }
        if (typeof e.code === "number") return resolve({ exitCode: e.code, stdout, stderr });
        reject(
          new AppError("unavailable", "gitops.git_failed", `${what} failed: ${e.message}`, {
            cause: err,
            retryable: false,
            details: { args },
          }),
        );
      },
    );
    // git may exit before reading all of stdin (a failed transaction); its exit status reports that.
    child.stdin?.on("error", () => {});
    child.stdin?.end(opts.input ?? "");
  });
}

/** Like `git`, with `input` written to the command's stdin (`hash-object --stdin`, `update-ref --stdin`). */
export async function gitInput(dir: string, args: string[], input: string, opts: GitOptions = {}): Promise<string> {
  const r = await gitResult(dir, args, { ...opts, input });
  if (r.exitCode === 0) return r.stdout;
  const detail = r.stderr.trim().split("\n").slice(-3).join(" ");
  throw new AppError("unavailable", "gitops.git_failed", `git ${args[0] ?? ""} failed: ${detail}`, {
    retryable: false,
    details: { args, exitCode: r.exitCode },
  });
}
