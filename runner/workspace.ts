import { chmod, lchown, mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AppError } from "../src/shared/errors.ts";

/**
 * Runs `fn` in a fresh private directory (mode 0700) and removes the directory afterwards, whether
 * `fn` returns, throws or was cancelled. Callers must make sure nothing still writes into it when
 * `fn` settles (runCommand resolves only once the process group is gone).
 */
export async function withWorkspace<T>(
  prefix: string,
  fn: (dir: string) => Promise<T>,
  opts: { base?: string } = {},
): Promise<T> {
  const base = opts.base ?? tmpdir();
  await mkdir(base, { recursive: true });
  const dir = await mkdtemp(join(base, safePrefix(prefix)));
  let result: T;
  try {
    result = await fn(dir);
  } catch (err) {
    // The task's own error is what matters; a cleanup failure on top of it is not reported.
    await removeDir(dir).catch(() => {});
    throw err;
  }
  try {
    await removeDir(dir);
  } catch (err) {
    throw new AppError(
      "unavailable",
      "workspace.cleanup_failed",
      `workspace ${dir} could not be removed: ${(err as Error).message}`,
      { cause: err, retryable: false },
    );
  }
  return result;
}

async function removeDir(dir: string): Promise<void> {
  try {
    await rm(dir, { recursive: true, force: true, maxRetries: 2 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "EACCES" && code !== "EPERM") throw err;
    // Tools leave read-only trees behind (the Go module cache does): make them writable, retry.
    await makeWritable(dir);
    await rm(dir, { recursive: true, force: true, maxRetries: 2 });
  }
}

async function makeWritable(dir: string): Promise<void> {
  await chmod(dir, 0o700).catch(() => {});
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) if (e.isDirectory()) await makeWritable(join(dir, e.name));
}

/**
 * Hands a directory tree to another user (a coding agent's): `dir` and everything below it, without
 * following symbolic links. The runner (root) keeps full access; the runner's own files elsewhere
 * stay out of that user's reach.
 */
export async function giveTo(dir: string, uid: number, gid: number): Promise<void> {
  await lchown(dir, uid, gid);
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isDirectory()) await giveTo(path, uid, gid);
    else await lchown(path, uid, gid);
  }
}

const safePrefix = (prefix: string) => prefix.replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 80);
