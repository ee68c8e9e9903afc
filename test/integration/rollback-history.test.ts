import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createSkillExecutor } from "../../runner/executors/skill.ts";
import type { ExecContext } from "../../runner/executors/types.ts";
import type { TaskMessage } from "../../src/bus/jobs.ts";
import { createLocalGitHost } from "../../src/gitops/local.ts";
import { rejection } from "../helpers/assert.ts";
import { gitSync, makeBareRepo } from "../helpers/git.ts";

// The rollback skill as the runner runs it: a real bare repository with a release history, the
// runner's own commit (with its trailers) proposed as a pull request and merged by the local git
// host, then the next crash loop's rollback read from that history.

const root = mkdtempSync(join(tmpdir(), "pitcrew-rollback-history-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const FILE = "apps/shop/checkout.yaml";
const manifest = (tag: string) => `apiVersion: apps/v1
kind: Deployment
metadata:
  name: checkout
  namespace: shop
spec:
  replicas: 3
  selector:
    matchLabels: {app: checkout}
  template:
    metadata:
      labels: {app: checkout}
    spec:
      containers:
      - name: checkout
        image: registry.example.com/shop/checkout:${tag}   # bumped by CI
`;
const release = (tag: string) => ({ message: `checkout ${tag}`, files: { [FILE]: manifest(tag) } });

/** Seeds the releases dated an hour ahead: clocks differ, and history must not depend on them. */
function seed(dir: string, tags: string[]): string {
  const ahead = `${Math.floor(Date.now() / 1000) + 3600} +0000`;
  const saved = { a: process.env.GIT_AUTHOR_DATE, c: process.env.GIT_COMMITTER_DATE };
  process.env.GIT_AUTHOR_DATE = process.env.GIT_COMMITTER_DATE = ahead;
  try {
    return makeBareRepo(dir, tags.map(release));
  } finally {
    for (const [name, value] of [
      ["GIT_AUTHOR_DATE", saved.a],
      ["GIT_COMMITTER_DATE", saved.c],
    ] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

function setup(tags: string[]) {
  const dir = mkdtempSync(join(root, "repo-"));
  const bare = seed(dir, tags);
  const host = createLocalGitHost({ repoPath: bare });
  const executor = createSkillExecutor({
    host,
    baseBranch: "main",
    author: { name: "Pitcrew", email: "pitcrew@localhost" },
    workspaceBase: join(dir, "ws"),
  });
  const show = (rev: string) => gitSync(dir, "--git-dir", bare, "show", `${rev}:${FILE}`);
  return { dir, bare, host, executor, show };
}

const ctx: ExecContext = {
  signal: new AbortController().signal,
  attempt: 1,
  progress: async () => {},
  log: async () => {},
};
let seq = 0;
const rollbackTask = (incidentId: string): TaskMessage => ({
  v: 1,
  taskId: `tsk_rb_${++seq}`,
  kind: "skill",
  pool: "default",
  incidentId,
  payload: {
    incidentId,
    skill: "crashloop-after-deploy",
    params: { namespace: "shop", deployment: "checkout" },
    action: { builtin: "rollback" },
  },
  createdAt: Date.now(),
});
type Proposed = {
  changed: true;
  summary: string;
  details: Record<string, unknown>;
  pr: { number: number; branch: string };
};

describe("rollback after an earlier rollback", () => {
  it("records the rollback in trailers, and the next rollback goes further back instead of re-deploying the bad version", async () => {
    const { bare, dir, host, executor, show } = setup(["v1.4.0", "v1.4.1", "v1.4.2"]);

    const first = (await executor(rollbackTask("inc_first"), ctx)) as Proposed;
    expect(first.details).toMatchObject({ from: "v1.4.2", to: "v1.4.1" });
    const body = gitSync(dir, "--git-dir", bare, "log", "-1", "--format=%B", first.pr.branch);
    expect(gitSync(dir, "--git-dir", bare, "log", "-1", "--format=%(trailers:only=true)", first.pr.branch)).toBe(
      "Pitcrew-Incident: inc_first\nPitcrew-Rolled-Back-From: v1.4.2\n\n",
    );
    expect(body).toContain("rollback shop/checkout: checkout v1.4.2 → v1.4.1");
    await host.mergePullRequest(first.pr.number, { method: "merge" });
    expect(show("main")).toContain("checkout:v1.4.1");

    // The crash loop comes back: the previous version in git is v1.4.2, which the rollback left.
    const second = (await executor(rollbackTask("inc_second"), ctx)) as Proposed;

    expect(second.details).toMatchObject({
      from: "v1.4.1",
      to: "v1.4.0",
      skipped: [{ version: "v1.4.2", how: "rollback" }],
    });
    expect(show(second.pr.branch)).toBe(manifest("v1.4.0"));
    expect(second.summary).toContain("skipped v1.4.2 (rolled back by");
    expect(second.summary).toContain("for inc_first");
  });

  it("fails with gitops.no_safe_version, naming the excluded version and why, when only the bad version is left", async () => {
    const { bare, dir, host, executor } = setup(["v1.4.1", "v1.4.2"]);
    const first = (await executor(rollbackTask("inc_only1"), ctx)) as Proposed;
    await host.mergePullRequest(first.pr.number, { method: "merge" });
    const branchesBefore = gitSync(dir, "--git-dir", bare, "branch", "--list");

    const err = await rejection(executor(rollbackTask("inc_only2"), ctx));

    expect(err).toMatchObject({ code: "gitops.no_safe_version", retryable: false });
    expect(err.message).toContain("no safe version to roll back to from v1.4.1");
    expect(err.message).toMatch(
      /v1\.4\.2 \(rolled back by [0-9a-f]{7} "pitcrew: crashloop-after-deploy for inc_only1" for inc_only1\)/,
    );
    // Nothing was proposed for the second incident.
    expect(gitSync(dir, "--git-dir", bare, "branch", "--list")).toBe(branchesBefore);
  });

  it("treats a person's revert like a rollback: the reverted version is not proposed again", async () => {
    const { dir, bare, executor, show } = setup(["v1.4.0", "v1.4.1", "v1.4.2"]);
    // Someone reverted v1.4.2 by hand (no trailers), through an ordinary commit on main.
    const work = join(dir, "human");
    gitSync(dir, "clone", "--quiet", bare, work);
    gitSync(work, "revert", "--no-edit", "HEAD");
    gitSync(work, "push", "--quiet", "origin", "HEAD:main");

    const r = (await executor(rollbackTask("inc_after_revert"), ctx)) as Proposed;

    expect(r.details).toMatchObject({ from: "v1.4.1", to: "v1.4.0", skipped: [{ version: "v1.4.2", how: "revert" }] });
    expect(show(r.pr.branch)).toBe(manifest("v1.4.0"));
  });
});
