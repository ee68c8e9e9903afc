import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { http, HttpResponse } from "msw";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { strictMockServer } from "../helpers/msw.ts";
import { git, gitResult } from "../../src/gitops/git.ts";
import { createGitHubHost } from "../../src/gitops/github.ts";
import { createLocalGitHost } from "../../src/gitops/local.ts";
import type { GitHost } from "../../src/gitops/port.ts";
import { AppError } from "../../src/shared/errors.ts";
import { createGitHubMock, type GitHubMock } from "../msw/github.ts";

// One file for the GitHost port: the contract suite both adapters pass, then what only one adapter
// has (merges in a real bare repository; GitHub auth and error mapping through msw).

const server = strictMockServer();
beforeAll(() => server.listen());
afterEach(() => server.resetHandlers());
afterAll(() => server.close());

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

const uid = () => randomBytes(4).toString("hex");

/** Rejects with the AppError `p` rejects with; fails the test when it resolves. */
async function appError(p: Promise<unknown>): Promise<AppError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AppError);
  return err as AppError;
}

// --- a real bare repository and a working clone that pushes to it ---------------------------------

// The test's own git commands ignore the machine's git configuration (signing, hooks, templates).
const isolated = {
  env: {
    GIT_CONFIG_GLOBAL: "/dev/null",
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_AUTHOR_NAME: "Dev",
    GIT_AUTHOR_EMAIL: "dev@example.com",
    GIT_COMMITTER_NAME: "Dev",
    GIT_COMMITTER_EMAIL: "dev@example.com",
  },
};

type Repo = {
  bare: string;
  work: string;
  commit(branch: string, files: Record<string, string>, from?: string): Promise<string>;
  rev(ref: string): Promise<string>;
};

async function makeRepo(): Promise<Repo> {
  const root = await mkdtemp(join(tmpdir(), "pitcrew-githost-"));
  dirs.push(root);
  const bare = join(root, "gitops.git");
  const work = join(root, "work");
  await git(root, ["init", "--quiet", "--bare", "--initial-branch=main", bare], isolated);
  await git(root, ["clone", "--quiet", bare, work], isolated);
  await git(work, ["checkout", "--quiet", "-B", "main"], isolated);
  await writeFile(join(work, "deploy.yaml"), "replicas: 2\nimage: api:1.0\n");
  await git(work, ["add", "-A"], isolated);
  await git(work, ["commit", "--quiet", "-m", "initial"], isolated);
  await git(work, ["push", "--quiet", "origin", "main"], isolated);

  return {
    bare,
    work,
    /** Commits `files` on `branch` (continuing it, or starting from `from`) and pushes it; returns the new head. */
    async commit(branch, files, from = "main") {
      await git(work, ["fetch", "--quiet", "origin"], isolated);
      const exists = (await git(work, ["branch", "-r", "--list", `origin/${branch}`], isolated)).trim() !== "";
      await git(work, ["checkout", "--quiet", "-B", branch, exists ? `origin/${branch}` : `origin/${from}`], isolated);
      for (const [path, content] of Object.entries(files)) {
        await mkdir(dirname(join(work, path)), { recursive: true });
        await writeFile(join(work, path), content);
      }
      await git(work, ["add", "-A"], isolated);
      await git(work, ["commit", "--quiet", "-m", `change on ${branch}`], isolated);
      await git(work, ["push", "--quiet", "--force", "origin", `HEAD:refs/heads/${branch}`], isolated);
      return (await git(work, ["rev-parse", "HEAD"], isolated)).trim();
    },
    rev: async (ref) => (await git(bare, ["rev-parse", ref], isolated)).trim(),
  };
}

// --- the contract, against both adapters --------------------------------------------------------

type Harness = {
  host: GitHost;
  other?: GitHost;
  push(branch: string): Promise<string>;
  branchSha(branch: string): Promise<string | undefined>;
};

async function localHarness(): Promise<Harness> {
  const repo = await makeRepo();
  let n = 0;
  return {
    host: createLocalGitHost({ repoPath: repo.bare }),
    other: createLocalGitHost({ repoPath: repo.bare }),
    push: (branch) => repo.commit(branch, { [`notes/${branch}-${++n}.txt`]: `change ${n}\n` }),
    branchSha: async (branch) =>
      (await git(repo.bare, ["for-each-ref", "--format=%(objectname)", `refs/heads/${branch}`])).trim() || undefined,
  };
}

async function githubHarness(): Promise<Harness> {
  const token = `ghp_${randomBytes(18).toString("hex")}`;
  const mock = createGitHubMock({ owner: "acme", repo: "gitops", token });
  server.use(...mock.handlers);
  let n = 0;
  // The same change the local harness pushes: one new one-line file per push.
  const push = async (branch: string) => {
    const i = ++n;
    return mock.pushBranch(branch, undefined, [
      {
        filename: `notes/${branch}-${i}.txt`,
        additions: 1,
        deletions: 0,
        status: "added",
        patch: `@@ -0,0 +1 @@\n+change ${i}`,
      },
    ]);
  };
  return {
    host: createGitHubHost({ owner: "acme", repo: "gitops", token }),
    push,
    branchSha: async (branch) => mock.branchSha(branch),
  };
}

for (const make of [localHarness, githubHarness]) {
  describe(`GitHost contract (${make.name})`, () => {
    it("finds no pull request for a branch that has none", async () => {
      const { host } = await make();
      expect(await host.findOpenPullRequest(`pitcrew/inc-${uid()}-scale`)).toBeNull();
    });

    it("creates a pull request for a pushed branch and then finds it by the branch", async () => {
      const { host, push } = await make();
      const branch = `pitcrew/inc-${uid()}-scale`;
      const head = await push(branch);
      const pr = await host.createPullRequest({
        branch,
        base: "main",
        title: "Scale api to 4",
        body: "Incident: api saturated",
      });
      expect(pr).toMatchObject({ branch, base: "main", state: "open", headSha: head, title: "Scale api to 4" });
      expect(pr.number).toBeGreaterThan(0);
      const found = await host.findOpenPullRequest(branch);
      expect(found).toEqual(pr);
      expect(await host.getPullRequest(pr.number)).toEqual(pr);
    });

    it("creating again for the same branch returns the open pull request instead of a second one", async () => {
      const { host, push } = await make();
      const branch = `pitcrew/inc-${uid()}-restart`;
      await push(branch);
      const first = await host.createPullRequest({ branch, base: "main", title: "Restart api", body: "" });
      const again = await host.createPullRequest({ branch, base: "main", title: "Restart api (rerun)", body: "" });
      expect(again.number).toBe(first.number);
      // Racing creators (reruns of one task) still end with one pull request.
      const raced = await Promise.all(
        Array.from({ length: 4 }, () => host.createPullRequest({ branch, base: "main", title: "race", body: "" })),
      );
      expect(new Set(raced.map((p) => p.number))).toEqual(new Set([first.number]));
    });

    it("racing creators of a new branch's pull request end with exactly one", async () => {
      const { host, other, push } = await make();
      const branch = `pitcrew/inc-${uid()}-rollback`;
      await push(branch);
      const hosts = [host, other ?? host];
      const created = await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          hosts[i % 2]!.createPullRequest({ branch, base: "main", title: `race ${i}`, body: "" }),
        ),
      );
      expect(new Set(created.map((p) => p.number)).size).toBe(1);
    });

    it("follows the head branch while open, and the head moving refuses a merge pinned to the old sha", async () => {
      const { host, push } = await make();
      const branch = `pitcrew/inc-${uid()}-image`;
      const reviewed = await push(branch);
      const pr = await host.createPullRequest({ branch, base: "main", title: "Bump image", body: "" });
      const moved = await push(branch);
      expect((await host.getPullRequest(pr.number)).headSha).toBe(moved);
      const err = await appError(host.mergePullRequest(pr.number, { method: "merge", sha: reviewed }));
      expect([err.kind, err.code]).toEqual(["conflict", "gitops.head_moved"]);
      expect((await host.getPullRequest(pr.number)).state).toBe("open");
    });

    it("merges at the reviewed sha; the pull request is then merged and merging again reports the same commit", async () => {
      const { host, push } = await make();
      const branch = `pitcrew/inc-${uid()}-quota`;
      const head = await push(branch);
      const pr = await host.createPullRequest({ branch, base: "main", title: "Raise quota", body: "" });
      const merged = await host.mergePullRequest(pr.number, { method: "merge", sha: head });
      expect(merged.merged).toBe(true);
      expect(merged.sha).toMatch(/^[0-9a-f]{40}$/);
      expect(await host.getPullRequest(pr.number)).toMatchObject({ state: "merged", headSha: head });
      expect(await host.findOpenPullRequest(branch)).toBeNull();
      expect(await host.mergePullRequest(pr.number, { method: "merge" })).toEqual(merged);
    });

    it("closes with a comment: not found as open any more, and the branch can get a new pull request", async () => {
      const { host, push } = await make();
      const branch = `pitcrew/inc-${uid()}-scale`;
      await push(branch);
      const pr = await host.createPullRequest({ branch, base: "main", title: "Scale", body: "" });
      await host.closePullRequest(pr.number, "Superseded: the incident resolved itself.");
      expect((await host.getPullRequest(pr.number)).state).toBe("closed");
      expect(await host.findOpenPullRequest(branch)).toBeNull();
      const merge = await appError(host.mergePullRequest(pr.number, { method: "merge" }));
      expect(merge.code).toBe("gitops.pull_not_open");
      const next = await host.createPullRequest({ branch, base: "main", title: "Scale, again", body: "" });
      expect(next.number).not.toBe(pr.number);
      expect(await host.findOpenPullRequest(branch)).toMatchObject({ number: next.number, state: "open" });
    });

    it("deletes the branch of a closed pull request; deleting it again, or a branch that never existed, answers false", async () => {
      const { host, push, branchSha } = await make();
      const branch = `pitcrew/inc-${uid()}-restart`;
      await push(branch);
      const pr = await host.createPullRequest({ branch, base: "main", title: "Restart", body: "" });
      await host.closePullRequest(pr.number, "The incident resolved without this change.");
      expect(await host.deleteBranch(branch)).toBe(true);
      expect(await branchSha(branch)).toBeUndefined();
      expect(await host.deleteBranch(branch)).toBe(false);
      expect(await host.deleteBranch(`pitcrew/inc-${uid()}-never`)).toBe(false);
      expect(await branchSha("main")).toBeDefined();
      expect((await host.getPullRequest(pr.number)).state).toBe("closed");
    });

    it("deletes a merged pull request's branch and the pull request stays merged", async () => {
      const { host, push, branchSha } = await make();
      const branch = `pitcrew/inc-${uid()}-scale`;
      const head = await push(branch);
      const pr = await host.createPullRequest({ branch, base: "main", title: "Scale", body: "" });
      const merged = await host.mergePullRequest(pr.number, {
        method: "merge",
        sha: head,
        trailers: { "Approved-by": "alice", "Pitcrew-Incident": "inc_1" },
      });
      expect(await host.deleteBranch(branch)).toBe(true);
      expect(await branchSha(branch)).toBeUndefined();
      expect(await host.getPullRequest(pr.number)).toMatchObject({ state: "merged", headSha: head });
      expect(await host.mergePullRequest(pr.number, { method: "merge" })).toEqual(merged);
    });

    it("summarizes a pull request's change at its current head: files with lines added and removed, and the diff's start", async () => {
      const { host, push } = await make();
      const branch = `pitcrew/inc-${uid()}-scale`;
      await push(branch);
      const pr = await host.createPullRequest({ branch, base: "main", title: "Scale", body: "" });
      const first = await host.pullRequestDiff(pr.number);
      expect(first.headSha).toBe(pr.headSha);
      expect(first.summary).toEqual({
        files: [{ path: expect.stringMatching(/^notes\/.*-\d+\.txt$/), added: 1, removed: 0 }],
        added: 1,
        removed: 0,
      });
      expect(first.excerpt).toContain(`+++ b/${first.summary.files[0]!.path}`);
      expect(first.excerpt).toMatch(/^\+change \d+$/m);
      // The head moves: the diff follows it.
      const moved = await push(branch);
      const second = await host.pullRequestDiff(pr.number);
      expect(second.headSha).toBe(moved);
      expect(second.summary).toMatchObject({ added: 2, removed: 0 });
      expect(second.summary.files).toHaveLength(2);
      // Merged: the change it brought, not an empty diff against the base that now contains it.
      await host.mergePullRequest(pr.number, { method: "merge", sha: moved });
      expect((await host.pullRequestDiff(pr.number)).summary).toEqual(second.summary);
    });

    it("reports an unknown pull request number as gitops.pull_not_found", async () => {
      const { host } = await make();
      const err = await appError(host.getPullRequest(987_654));
      expect([err.kind, err.code]).toEqual(["not_found", "gitops.pull_not_found"]);
    });
  });
}

// --- local: merges in a real bare repository ----------------------------------------------------

describe("local GitHost on a bare repository", () => {
  it("merges with a two-parent merge commit on the base branch that contains the change, visible in a fresh clone", async () => {
    const repo = await makeRepo();
    const host = createLocalGitHost({
      repoPath: repo.bare,
      committer: { name: "Pitcrew Bot", email: "bot@pitcrew.test" },
    });
    const branch = "pitcrew/inc-1-scale";
    const head = await repo.commit(branch, { "deploy.yaml": "replicas: 4\nimage: api:1.0\n" });
    // main moves on meanwhile (another file), so this is a true merge, not a fast-forward.
    const mainBefore = await repo.commit("main", { "README.md": "ops repo\n" });
    const pr = await host.createPullRequest({ branch, base: "main", title: "Scale api to 4", body: "why" });

    const { sha } = await host.mergePullRequest(pr.number, { method: "merge", sha: head });

    expect(await repo.rev("refs/heads/main")).toBe(sha);
    const [commit, ...parents] = (await git(repo.bare, ["rev-list", "--parents", "-n", "1", sha])).trim().split(" ");
    expect(commit).toBe(sha);
    expect(parents).toEqual([mainBefore, head]);
    expect(await git(repo.bare, ["log", "-1", "--format=%an <%ae>%n%s", sha])).toBe(
      "Pitcrew Bot <bot@pitcrew.test>\nMerge pull request #1 from pitcrew/inc-1-scale\n",
    );

    const clone = join(dirname(repo.bare), "fresh");
    await git(dirname(repo.bare), ["clone", "--quiet", repo.bare, clone], isolated);
    expect(await git(clone, ["show", "HEAD:deploy.yaml"])).toBe("replicas: 4\nimage: api:1.0\n");
    expect(await git(clone, ["show", "HEAD:README.md"])).toBe("ops repo\n");
    // The pull request records stay in the bare repository.
    expect(await git(clone, ["for-each-ref", "refs/pitcrew/"])).toBe("");
  });

  it("writes the merge options' trailers as the last paragraph of the merge commit, where git reads them", async () => {
    const repo = await makeRepo();
    const host = createLocalGitHost({ repoPath: repo.bare });
    const head = await repo.commit("pitcrew/inc-3-scale", { "deploy.yaml": "replicas: 3\nimage: api:1.0\n" });
    const pr = await host.createPullRequest({
      branch: "pitcrew/inc-3-scale",
      base: "main",
      title: "Scale api to 3",
      body: "",
    });
    const { sha } = await host.mergePullRequest(pr.number, {
      method: "merge",
      sha: head,
      trailers: { "Approved-by": "alice\nPitcrew-Incident: forged", "Pitcrew-Incident": "inc_3" },
    });
    const trailers = await git(repo.bare, ["log", "-1", "--format=%(trailers:only,unfold)", sha]);
    expect(trailers.trim().split("\n")).toEqual([
      "Approved-by: alice Pitcrew-Incident: forged",
      "Pitcrew-Incident: inc_3",
    ]);
    expect(await git(repo.bare, ["log", "-1", "--format=%s", sha])).toBe(
      "Merge pull request #1 from pitcrew/inc-3-scale\n",
    );
  });

  it("puts the merge options' body (who approved, through what, why) between the title and the trailers", async () => {
    const repo = await makeRepo();
    const host = createLocalGitHost({ repoPath: repo.bare });
    const head = await repo.commit("pitcrew/inc-4-scale", { "deploy.yaml": "replicas: 5\nimage: api:1.0\n" });
    const pr = await host.createPullRequest({
      branch: "pitcrew/inc-4-scale",
      base: "main",
      title: "Scale api to 5",
      body: "",
    });
    const body = "Incident inc_4: api saturated\nApproved by alice via telegram: peak traffic\nApproved-by: mallory";
    const { sha } = await host.mergePullRequest(pr.number, {
      method: "merge",
      sha: head,
      body,
      trailers: { "Approved-by": "alice", "Approved-via": "telegram", "Pitcrew-Incident": "inc_4" },
    });
    expect(await git(repo.bare, ["log", "-1", "--format=%B", sha])).toBe(
      `Merge pull request #1 from pitcrew/inc-4-scale\n\nScale api to 5\n\n${body}\n\nApproved-by: alice\nApproved-via: telegram\nPitcrew-Incident: inc_4\n\n`,
    );
    // Only the last paragraph is read as trailers: a line of the reason cannot pose as one.
    expect((await git(repo.bare, ["log", "-1", "--format=%(trailers:only,unfold)", sha])).trim().split("\n")).toEqual([
      "Approved-by: alice",
      "Approved-via: telegram",
      "Pitcrew-Incident: inc_4",
    ]);
  });

  it("summarizes binary files and a change of many lines, cutting the excerpt at a line", async () => {
    const repo = await makeRepo();
    const host = createLocalGitHost({ repoPath: repo.bare });
    const big = `${Array.from({ length: 400 }, (_, i) => `line ${i}: ${"x".repeat(20)}`).join("\n")}\n`;
    await repo.commit("pitcrew/inc-5-patch", {
      "big.txt": big,
      "logo.png": "\u0000PNG\u0000binary",
      "deploy.yaml": "replicas: 2\nimage: api:1.1\n",
    });
    const pr = await host.createPullRequest({ branch: "pitcrew/inc-5-patch", base: "main", title: "Patch", body: "" });
    const d = await host.pullRequestDiff(pr.number);
    expect(d.summary).toEqual({
      files: [
        { path: "big.txt", added: 400, removed: 0 },
        { path: "deploy.yaml", added: 1, removed: 1 },
        { path: "logo.png", added: 0, removed: 0 },
      ],
      added: 401,
      removed: 1,
    });
    expect(d.excerpt.length).toBeLessThanOrEqual(3000);
    const lines = d.excerpt.split("\n");
    expect(lines[0]).toBe("diff --git a/big.txt b/big.txt");
    expect(lines[lines.length - 1]).toMatch(/^… \d+ more lines$/);
    // Every kept line is a whole line of the diff.
    for (const l of lines.slice(6, -1)) expect(l).toMatch(/^\+line \d+: x{20}$/);
  });

  it("squash-merges as one single-parent commit with the change", async () => {
    const repo = await makeRepo();
    const host = createLocalGitHost({ repoPath: repo.bare });
    const mainBefore = await repo.rev("refs/heads/main");
    await repo.commit("fix", { "deploy.yaml": "replicas: 2\nimage: api:1.1\n" });
    await repo.commit("fix", { CHANGELOG: "1.1\n" });
    const pr = await host.createPullRequest({ branch: "fix", base: "main", title: "Roll back api", body: "" });
    const { sha } = await host.mergePullRequest(pr.number, { method: "squash" });
    expect((await git(repo.bare, ["rev-list", "--parents", "-n", "1", sha])).trim().split(" ")).toEqual([
      sha,
      mainBefore,
    ]);
    expect(await git(repo.bare, ["show", "main:deploy.yaml"])).toBe("replicas: 2\nimage: api:1.1\n");
    expect(await git(repo.bare, ["show", "main:CHANGELOG"])).toBe("1.1\n");
  });

  it("refuses a conflicting branch with gitops.merge_conflict, naming the file, and leaves the base and the PR as they were", async () => {
    const repo = await makeRepo();
    const host = createLocalGitHost({ repoPath: repo.bare });
    await repo.commit("pitcrew/inc-2-image", { "deploy.yaml": "replicas: 2\nimage: api:2.0\n" });
    const mainNow = await repo.commit("main", { "deploy.yaml": "replicas: 2\nimage: api:1.9\n" });
    const pr = await host.createPullRequest({ branch: "pitcrew/inc-2-image", base: "main", title: "Bump", body: "" });

    const err = await appError(host.mergePullRequest(pr.number, { method: "merge" }));
    expect([err.kind, err.code]).toEqual(["conflict", "gitops.merge_conflict"]);
    expect(err.details?.files).toEqual(["deploy.yaml"]);
    expect(await repo.rev("refs/heads/main")).toBe(mainNow);
    expect((await host.getPullRequest(pr.number)).state).toBe("open");
  });

  it("leaves the base branch where it was when the head moved from the given sha", async () => {
    const repo = await makeRepo();
    const host = createLocalGitHost({ repoPath: repo.bare });
    const reviewed = await repo.commit("b", { "a.txt": "1\n" });
    const pr = await host.createPullRequest({ branch: "b", base: "main", title: "t", body: "" });
    await repo.commit("b", { "a.txt": "2\n" });
    const mainBefore = await repo.rev("refs/heads/main");
    expect((await appError(host.mergePullRequest(pr.number, { method: "merge", sha: reviewed }))).code).toBe(
      "gitops.head_moved",
    );
    expect(await repo.rev("refs/heads/main")).toBe(mainBefore);
  });

  it("two hosts on the same bare repository see each other's pull requests and changes", async () => {
    const repo = await makeRepo();
    const a = createLocalGitHost({ repoPath: repo.bare });
    const b = createLocalGitHost({ repoPath: repo.bare });
    await repo.commit("x", { "x.txt": "x\n" });
    await repo.commit("y", { "y.txt": "y\n" });
    const px = await a.createPullRequest({ branch: "x", base: "main", title: "x", body: "" });
    expect(await b.findOpenPullRequest("x")).toEqual(px);
    const py = await b.createPullRequest({ branch: "y", base: "main", title: "y", body: "" });
    expect(py.number).toBe(px.number + 1);
    await b.closePullRequest(px.number);
    expect((await a.getPullRequest(px.number)).state).toBe("closed");
    await a.mergePullRequest(py.number, { method: "merge" });
    expect((await b.getPullRequest(py.number)).state).toBe("merged");
  });

  it("rejects a missing branch and a branch name that is not a ref name", async () => {
    const repo = await makeRepo();
    const host = createLocalGitHost({ repoPath: repo.bare });
    expect((await appError(host.createPullRequest({ branch: "nope", base: "main", title: "t", body: "" }))).code).toBe(
      "gitops.branch_not_found",
    );
    const bad = await appError(
      host.createPullRequest({ branch: "x\ncreate refs/heads/main 0000", base: "main", title: "t", body: "" }),
    );
    expect([bad.kind, bad.code]).toEqual(["invalid", "gitops.bad_branch"]);
    expect(await git(repo.bare, ["for-each-ref", "refs/pitcrew/"])).toBe("");
  });

  it("clones from the repository path and needs no credentials", async () => {
    const repo = await makeRepo();
    const host = createLocalGitHost({ repoPath: repo.bare });
    expect(host.cloneUrl()).toBe(repo.bare);
    expect(await host.auth()).toEqual({ env: {} });
  });
});

// --- GitHub: the REST API through msw -----------------------------------------------------------

describe("GitHub GitHost (msw)", () => {
  const owner = "acme";
  const repo = "gitops";
  const newToken = () => `ghp_${randomBytes(18).toString("hex")}`;
  /** A GitHub App key pair, PEM: the App signs its JWTs with the private key, the mock verifies with the public one. */
  const appKeys = () =>
    generateKeyPairSync("rsa", {
      modulusLength: 2048,
      privateKeyEncoding: { type: "pkcs8", format: "pem" },
      publicKeyEncoding: { type: "spki", format: "pem" },
    });

  function setup(opts: Partial<Parameters<typeof createGitHubMock>[0]> = {}): { mock: GitHubMock; token: string } {
    const token = newToken();
    const mock = createGitHubMock({ owner, repo, token, ...opts });
    server.use(...mock.handlers);
    return { mock, token };
  }

  it("sends the token in the authorization header and filters open pulls by owner:branch", async () => {
    const { mock, token } = setup();
    mock.pushBranch("pitcrew/inc-7-scale");
    mock.pushBranch("pitcrew/inc-7-scale-2");
    const other = mock.openPullRequest({ branch: "pitcrew/inc-7-scale-2" });
    const host = createGitHubHost({ owner, repo, token });
    expect(await host.findOpenPullRequest("pitcrew/inc-7-scale")).toBeNull();
    const list = mock.requests.find((r) => r.method === "GET" && r.path === "/repos/acme/gitops/pulls");
    expect(list).toMatchObject({
      authorization: `token ${token}`,
      query: { state: "open", head: "acme:pitcrew/inc-7-scale" },
    });
    expect((await host.findOpenPullRequest("pitcrew/inc-7-scale-2"))?.number).toBe(other);
  });

  it("authenticates as a GitHub App: signs a JWT, exchanges it for an installation token and uses that token for the API and git", async () => {
    const { publicKey, privateKey } = appKeys();
    const { mock } = setup({ token: undefined, app: { appId: 123456, installationId: 42, publicKey } });
    mock.pushBranch("pitcrew/inc-8-restart");
    const host = createGitHubHost({ owner, repo, app: { appId: 123456, privateKey, installationId: 42 } });

    const pr = await host.createPullRequest({
      branch: "pitcrew/inc-8-restart",
      base: "main",
      title: "Restart",
      body: "",
    });
    expect(await host.findOpenPullRequest("pitcrew/inc-8-restart")).toEqual(pr);
    const { env } = await host.auth();

    expect(mock.issuedTokens).toHaveLength(1); // cached, not one per call
    const [installationToken] = mock.issuedTokens;
    const exchange = mock.requests.filter((r) => r.path === "/app/installations/42/access_tokens");
    expect(exchange).toHaveLength(1);
    expect(exchange[0]).toMatchObject({ method: "POST", status: 201 });
    expect(exchange[0]!.authorization).toMatch(/^bearer [\w-]+\.[\w-]+\.[\w-]+$/);
    const api = mock.requests.filter((r) => r.path.startsWith("/repos/"));
    expect(api.map((r) => r.authorization)).toEqual(api.map(() => `token ${installationToken}`));
    expect(env.PITCREW_GIT_PASSWORD).toBe(installationToken);
  });

  it("refuses a GitHub App whose key does not match with github.unauthorized", async () => {
    const { publicKey } = appKeys();
    const { privateKey: wrongKey } = appKeys();
    setup({ token: undefined, app: { appId: 1, installationId: 2, publicKey } });
    const host = createGitHubHost({ owner, repo, app: { appId: 1, privateKey: wrongKey, installationId: 2 } });
    const err = await appError(host.findOpenPullRequest("b"));
    expect([err.kind, err.code]).toEqual(["forbidden", "github.unauthorized"]);
  });

  it("resolves a 422 'pull request already exists' (another runner won the race) to the existing pull request", async () => {
    const { mock, token } = setup();
    mock.pushBranch("pitcrew/inc-9-quota");
    const host = createGitHubHost({ owner, repo, token });
    // The other runner creates it between our find and our create: our find said none.
    expect(await host.findOpenPullRequest("pitcrew/inc-9-quota")).toBeNull();
    const theirs = mock.openPullRequest({ branch: "pitcrew/inc-9-quota", title: "Raise quota" });

    const pr = await host.createPullRequest({
      branch: "pitcrew/inc-9-quota",
      base: "main",
      title: "Raise quota",
      body: "",
    });

    expect(pr).toMatchObject({ number: theirs, state: "open", url: `https://github.com/acme/gitops/pull/${theirs}` });
    expect(mock.requests.map((r) => `${r.method} ${r.path} ${r.status}`)).toEqual([
      "GET /repos/acme/gitops/pulls 200",
      "POST /repos/acme/gitops/pulls 422",
      "GET /repos/acme/gitops/pulls 200",
    ]);
  });

  it("reads every page of a pull request's files and joins their patches into the excerpt", async () => {
    const { mock, token } = setup();
    const files = Array.from({ length: 130 }, (_, i) => ({
      filename: `apps/app-${String(i).padStart(3, "0")}.yaml`,
      additions: 2,
      deletions: 1,
      patch: `@@ -1 +1,2 @@\n-replicas: 1\n+replicas: 2\n+# app ${i}`,
    }));
    mock.pushBranch("pitcrew/inc-12-scale", undefined, [
      ...files,
      { filename: "logo.png", additions: 0, deletions: 0, status: "added" },
    ]);
    const host = createGitHubHost({ owner, repo, token });
    const pr = await host.createPullRequest({
      branch: "pitcrew/inc-12-scale",
      base: "main",
      title: "Scale all",
      body: "",
    });
    const d = await host.pullRequestDiff(pr.number);
    expect(d.headSha).toBe(mock.branchSha("pitcrew/inc-12-scale"));
    expect(d.summary).toMatchObject({ added: 260, removed: 130, more: 31 });
    expect(d.summary.files).toHaveLength(100);
    expect(d.summary.files[0]).toEqual({ path: "apps/app-000.yaml", added: 2, removed: 1 });
    const pages = mock.requests.filter((r) => r.path === `/repos/acme/gitops/pulls/${pr.number}/files`);
    expect(pages.map((r) => [r.query.page ?? "1", r.query.per_page, r.status])).toEqual([
      ["1", "100", 200],
      ["2", "100", 200],
    ]);
    expect(
      d.excerpt.startsWith(
        "diff --git a/apps/app-000.yaml b/apps/app-000.yaml\n--- a/apps/app-000.yaml\n+++ b/apps/app-000.yaml\n@@ -1 +1,2 @@\n-replicas: 1\n+replicas: 2\n+# app 0\n",
      ),
    ).toBe(true);
    expect(d.excerpt.length).toBeLessThanOrEqual(3000);
  });

  it("maps other 422s (no commits between the branches) to github.invalid with GitHub's reason", async () => {
    const { mock, token } = setup();
    mock.pushBranch("same", mock.branchSha("main"));
    const host = createGitHubHost({ owner, repo, token });
    const err = await appError(host.createPullRequest({ branch: "same", base: "main", title: "t", body: "" }));
    expect([err.kind, err.code]).toEqual(["invalid", "github.invalid"]);
    expect(err.message).toContain("No commits between main and same");
  });

  it("maps a 405 'not mergeable' to gitops.merge_conflict and sends the merge method and sha", async () => {
    const { mock, token } = setup();
    const head = mock.pushBranch("pitcrew/inc-10-image");
    const host = createGitHubHost({ owner, repo, token });
    const pr = await host.createPullRequest({ branch: "pitcrew/inc-10-image", base: "main", title: "Bump", body: "" });
    mock.setMergeable(pr.number, false);
    const err = await appError(host.mergePullRequest(pr.number, { method: "squash", sha: head }));
    expect([err.kind, err.code]).toEqual(["conflict", "gitops.merge_conflict"]);
    const put = mock.requests.find((r) => r.method === "PUT");
    expect(put).toMatchObject({
      path: `/repos/acme/gitops/pulls/${pr.number}/merge`,
      status: 405,
      body: { merge_method: "squash", sha: head },
    });
    expect(mock.pull(pr.number)?.state).toBe("open");
  });

  it("sends the trailers as the merge commit's message and deletes a branch at git/refs/heads/<branch>", async () => {
    const { mock, token } = setup();
    const head = mock.pushBranch("pitcrew/inc-11-quota");
    const host = createGitHubHost({ owner, repo, token });
    const pr = await host.createPullRequest({
      branch: "pitcrew/inc-11-quota",
      base: "main",
      title: "Raise quota",
      body: "",
    });
    await host.mergePullRequest(pr.number, {
      method: "merge",
      sha: head,
      trailers: { "Approved-by": "policy", "Pitcrew-Incident": "inc_11" },
    });
    expect(mock.pull(pr.number)?.mergeMessage).toEqual({
      title: null,
      message: "Approved-by: policy\nPitcrew-Incident: inc_11",
    });
    const head2 = mock.pushBranch("pitcrew/inc-11-scale");
    const pr2 = await host.createPullRequest({
      branch: "pitcrew/inc-11-scale",
      base: "main",
      title: "Scale",
      body: "",
    });
    await host.mergePullRequest(pr2.number, {
      method: "merge",
      sha: head2,
      body: "Approved by alice via mcp: peak",
      trailers: { "Approved-by": "alice", "Approved-via": "mcp" },
    });
    expect(mock.pull(pr2.number)?.mergeMessage).toEqual({
      title: null,
      message: "Approved by alice via mcp: peak\n\nApproved-by: alice\nApproved-via: mcp",
    });
    expect(await host.deleteBranch("pitcrew/inc-11-quota")).toBe(true);
    expect(await host.deleteBranch("pitcrew/inc-11-quota")).toBe(false);
    const deletes = mock.requests.filter((r) => r.method === "DELETE");
    expect(deletes.map((r) => `${r.path} ${r.status} ${r.authorization}`)).toEqual([
      `/repos/acme/gitops/git/refs/heads/pitcrew/inc-11-quota 204 token ${token}`,
      `/repos/acme/gitops/git/refs/heads/pitcrew/inc-11-quota 422 token ${token}`,
    ]);
  });

  it("maps a failed branch deletion other than 'already gone' to an AppError", async () => {
    const { token } = setup();
    server.use(
      http.delete("https://api.github.com/repos/acme/gitops/git/refs/*", () =>
        HttpResponse.json({ message: "Server Error" }, { status: 502 }),
      ),
    );
    const err = await appError(createGitHubHost({ owner, repo, token }).deleteBranch("pitcrew/inc-12-x"));
    expect([err.kind, err.code, err.retryable]).toEqual(["unavailable", "github.unavailable", true]);
  });

  it("posts the close comment and closes the pull request", async () => {
    const { mock, token } = setup();
    mock.pushBranch("b");
    const host = createGitHubHost({ owner, repo, token });
    const pr = await host.createPullRequest({ branch: "b", base: "main", title: "t", body: "" });
    await host.closePullRequest(pr.number, "Superseded by #99");
    expect(mock.comments).toEqual([{ issue: pr.number, body: "Superseded by #99" }]);
    expect(mock.pull(pr.number)).toMatchObject({ state: "closed", merged: false });
  });

  it("maps 401 to github.unauthorized without the token anywhere in the error", async () => {
    setup();
    const wrong = newToken();
    const host = createGitHubHost({ owner, repo, token: wrong });
    const err = await appError(host.findOpenPullRequest("b"));
    expect([err.kind, err.code, err.retryable]).toEqual(["forbidden", "github.unauthorized", false]);
    expect(err.message).toContain("Bad credentials");
    const everything = JSON.stringify({
      message: err.message,
      stack: err.stack,
      details: err.details,
      cause: String(err.cause),
    });
    expect(everything).not.toContain(wrong);
    expect(everything).not.toContain(wrong.slice(4));
  });

  it("maps 404 to not_found, and 5xx or no response to a retryable unavailable", async () => {
    const { token } = setup();
    const elsewhere = createGitHubHost({ owner, repo: "missing", token });
    expect((await appError(elsewhere.findOpenPullRequest("b"))).kind).toBe("not_found");

    const host = createGitHubHost({ owner, repo, token });
    server.use(
      http.get("https://api.github.com/repos/acme/gitops/pulls/:n", () =>
        HttpResponse.json({ message: "Server Error" }, { status: 502 }),
      ),
    );
    const bad = await appError(host.getPullRequest(1));
    expect([bad.kind, bad.code, bad.retryable]).toEqual(["unavailable", "github.unavailable", true]);

    server.use(http.get("https://api.github.com/repos/acme/gitops/pulls", () => HttpResponse.error()));
    const down = await appError(host.findOpenPullRequest("b"));
    expect([down.kind, down.retryable]).toEqual(["unavailable", true]);
  });

  it("maps an exhausted rate limit to a retryable github.rate_limited", async () => {
    const { token } = setup();
    server.use(
      http.get("https://api.github.com/repos/acme/gitops/pulls", () =>
        HttpResponse.json(
          {
            message: "API rate limit exceeded for installation ID 42.",
            documentation_url: "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
            status: "403",
          },
          { status: 403, headers: { "x-ratelimit-remaining": "0", "x-ratelimit-reset": "1767225600" } },
        ),
      ),
    );
    const err = await appError(createGitHubHost({ owner, repo, token }).findOpenPullRequest("b"));
    expect([err.kind, err.code, err.retryable]).toEqual(["unavailable", "github.rate_limited", true]);
  });

  it("works against GitHub Enterprise Server: API under /api/v3, clone URL on the web host, no credentials in it", async () => {
    const { mock, token } = setup({ apiUrl: "https://ghe.example.com/api/v3", webUrl: "https://ghe.example.com" });
    mock.pushBranch("b");
    const host = createGitHubHost({ owner, repo, token, baseUrl: "https://ghe.example.com/api/v3" });
    const pr = await host.createPullRequest({ branch: "b", base: "main", title: "t", body: "" });
    expect(pr.url).toBe(`https://ghe.example.com/acme/gitops/pull/${pr.number}`);
    expect(host.cloneUrl()).toBe("https://ghe.example.com/acme/gitops.git");
    expect(createGitHubHost({ owner, repo, token }).cloneUrl()).toBe("https://github.com/acme/gitops.git");
  });

  it("gives git the token through the askpass helper, ahead of any configured credential helper", async () => {
    const token = newToken();
    const host = createGitHubHost({ owner, repo, token });
    const { env } = await host.auth();
    expect(host.cloneUrl()).not.toContain(token);
    const dir = await mkdtemp(join(tmpdir(), "pitcrew-askpass-"));
    dirs.push(dir);
    // A machine-wide helper with a stale answer (and that would store our token): it must not be asked.
    const gitconfig = join(dir, "gitconfig");
    await writeFile(gitconfig, '[credential]\n\thelper = "!f() { echo username=someone; echo password=stale; }; f"\n');
    const out = await gitResult(dir, ["credential", "fill"], {
      input: "protocol=https\nhost=github.com\npath=acme/gitops.git\n\n",
      env: { ...isolated.env, GIT_CONFIG_GLOBAL: gitconfig, ...env },
    });
    expect(out.exitCode).toBe(0);
    expect(out.stdout).toContain("username=x-access-token\n");
    expect(out.stdout).toContain(`password=${token}\n`);
  });
});
