import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

/** The test's own git commands: fixed identity, and the machine's git configuration ignored. */
export const testGitEnv = {
  GIT_CONFIG_GLOBAL: "/dev/null",
  GIT_CONFIG_NOSYSTEM: "1",
  GIT_AUTHOR_NAME: "dev",
  GIT_AUTHOR_EMAIL: "dev@x",
  GIT_COMMITTER_NAME: "dev",
  GIT_COMMITTER_EMAIL: "dev@x",
};

export function gitSync(cwd: string, ...args: string[]): string {
  return execFileSync("git", args, { cwd, encoding: "utf8", env: { ...process.env, ...testGitEnv } });
}

/**
 * A bare repository `<dir>/gitops.git` whose `main` has one commit per entry of `history`, each
 * writing its files (paths relative to the repository root). Returns the bare repository's path.
 */
export function makeBareRepo(dir: string, history: Array<{ message: string; files: Record<string, string> }>): string {
  const bare = join(dir, "gitops.git");
  const work = join(dir, "seed");
  gitSync(dir, "init", "--quiet", "--bare", "--initial-branch", "main", bare);
  gitSync(dir, "clone", "--quiet", bare, work);
  for (const c of history) {
    for (const [path, content] of Object.entries(c.files)) {
      mkdirSync(dirname(join(work, path)), { recursive: true });
      writeFileSync(join(work, path), content);
    }
    gitSync(work, "add", ".");
    gitSync(work, "commit", "--quiet", "-m", c.message);
  }
  gitSync(work, "push", "--quiet", "origin", "HEAD:main");
  return bare;
}

/** A checkout Deployment in `namespace` running image tag `tag`, as a GitOps repository holds it. */
export const checkoutDeployment = (namespace: string, tag: string) => `apiVersion: apps/v1
kind: Deployment
metadata:
  name: checkout
  namespace: ${namespace}
spec:
  replicas: 3
  template:
    spec:
      containers:
        - name: checkout
          image: registry.example.com/checkout:${tag}
`;
