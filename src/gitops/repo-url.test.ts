import { describe, expect, it } from "vitest";
import { loadConfig } from "../config/load.ts";
import { allowedRepoUrls, assertRepoAllowed, isRepoAllowed, repoKey } from "./repo-url.ts";

describe("repoKey", () => {
  it("gives one key to the spellings of one repository", () => {
    const same = (a: string, b: string) => expect(repoKey(a), `${a} vs ${b}`).toBe(repoKey(b));
    same("https://github.com/acme/gitops.git", "https://GitHub.com/acme/gitops");
    same("https://github.com/acme/gitops.git", "https://github.com:443/acme/gitops/");
    same("/srv/gitops.git", "file:///srv/gitops.git");
    same("/srv/gitops.git", "/srv/x/../gitops.git/");
    same("git@github.com:acme/gitops.git", "ssh://git@github.com/acme/gitops");
  });

  it("keeps what makes repositories different: scheme, host, port, path, user", () => {
    const differ = (a: string, b: string) => expect(repoKey(a), `${a} vs ${b}`).not.toBe(repoKey(b));
    differ("https://github.com/acme/gitops.git", "http://github.com/acme/gitops.git");
    differ("https://github.com/acme/gitops.git", "https://github.com:8443/acme/gitops.git");
    differ("https://github.com/acme/gitops.git", "https://github.com/acme/gitops-fork.git");
    differ("https://github.com/acme/gitops.git", "https://github.com.evil.example/acme/gitops.git");
    differ("https://github.com/acme/gitops.git", "https://github.com/acme/gitops.git/../../evil/repo.git");
    differ("/srv/gitops.git", "/srv/gitops");
  });
});

describe("allowed repositories", () => {
  it("are the GitOps repository alone by default", () => {
    const config = loadConfig({ GITOPS_PROVIDER: "github", GITOPS_REPO: "acme/gitops", GITHUB_TOKEN: "t" });
    expect(allowedRepoUrls(config)).toEqual(["https://github.com/acme/gitops.git"]);
    expect(isRepoAllowed("https://github.com/acme/gitops", allowedRepoUrls(config))).toBe(true);
    expect(isRepoAllowed("https://github.com/acme/other.git", allowedRepoUrls(config))).toBe(false);
  });

  it("add ALLOWED_REPOS entries, with owner/repo on the configured GitHub", () => {
    const config = loadConfig({
      GITOPS_PROVIDER: "github",
      GITOPS_REPO: "acme/gitops",
      GITHUB_TOKEN: "t",
      GITHUB_API_URL: "https://ghe.example.com/api/v3",
      ALLOWED_REPOS: "acme/docs, https://git.example.com/x/y.git",
    });
    expect(allowedRepoUrls(config)).toEqual([
      "https://ghe.example.com/acme/gitops.git",
      "https://ghe.example.com/acme/docs.git",
      "https://git.example.com/x/y.git",
    ]);
    const local = loadConfig({ GITOPS_REPO: "/srv/gitops.git" });
    expect(allowedRepoUrls(local)).toEqual(["/srv/gitops.git"]);
  });

  it("refuse anything else with task.repo_not_allowed, never echoing credentials", () => {
    expect(() => assertRepoAllowed("https://user:hunter2@evil.example/r.git", ["/srv/gitops.git"])).toThrow(
      expect.objectContaining({
        code: "task.repo_not_allowed",
        kind: "forbidden",
        message: expect.not.stringContaining("hunter2"),
      }),
    );
  });
});
