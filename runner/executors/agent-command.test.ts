import { describe, expect, it } from "vitest";
import {
  buildAgentEnv,
  checkCommandTemplates,
  checkRepoUrl,
  lastLines,
  parsePorcelainZ,
  renderCommand,
  scrub,
  secretValues,
} from "./agent-command.ts";

describe("renderCommand", () => {
  const claude = ["claude", "-p", "{{prompt}}", "--model", "{{model}}", "--cwd", "{{workdir}}"];

  it("substitutes whole-argument placeholders and nothing else", () => {
    const prompt = "fix {{model}} $(rm -rf /)";
    expect(renderCommand(claude, { prompt, model: "opus", workdir: "/w/repo" })).toEqual([
      "claude",
      "-p",
      prompt,
      "--model",
      "opus",
      "--cwd",
      "/w/repo",
    ]);
  });

  it("drops {{model}} and its flag when the task names no model", () => {
    expect(renderCommand(claude, { prompt: "p", workdir: "/w" })).toEqual(["claude", "-p", "p", "--cwd", "/w"]);
    expect(renderCommand(["codex", "{{model}}", "{{prompt}}"], { prompt: "p", workdir: "/w" })).toEqual(["codex", "p"]);
  });
});

describe("checkCommandTemplates", () => {
  it("rejects placeholders inside an argument, unknown placeholders and empty templates", () => {
    expect(() => checkCommandTemplates({ a: ["x", "--model={{model}}"] })).toThrow(/whole argument/);
    expect(() => checkCommandTemplates({ a: ["x", "{{secret}}"] })).toThrow(/whole argument/);
    expect(() => checkCommandTemplates({ a: [] })).toThrow(/non-empty/);
    expect(() => checkCommandTemplates({ a: ["{{prompt}}"] })).toThrow(/program/);
    expect(() => checkCommandTemplates({ a: ["claude", "-p", "{{prompt}}"] })).not.toThrow();
  });
});

describe("buildAgentEnv", () => {
  it("keeps only PATH, LANG, allowed names and the task's variables, with HOME and TMPDIR in the workspace", () => {
    const env = buildAgentEnv({
      runnerEnv: { PATH: "/bin", LANG: "en_US.UTF-8", HOME: "/root", NATS_TOKEN: "t", API_KEY: "k" },
      allowEnv: ["API_KEY", "MISSING", "HOME"],
      home: "/ws",
      tmpDir: "/ws/tmp",
      task: { PITCREW_TASK_ID: "tsk_1" },
    });
    expect(env).toEqual({
      PATH: "/bin",
      LANG: "en_US.UTF-8",
      HOME: "/ws",
      TMPDIR: "/ws/tmp",
      API_KEY: "k",
      PITCREW_TASK_ID: "tsk_1",
    });
  });
});

describe("scrub and secretValues", () => {
  it("masks allowed and git values long enough to be secrets, longest first", () => {
    const secrets = secretValues(
      { TOKEN: "abcdefgh", PREFIXED: "abcdefgh-longer", SHORT: "true", PATH: "/usr/bin:/bin" },
      ["TOKEN", "PREFIXED", "SHORT", "PATH"],
      {
        GIT_CONFIG_VALUE_0: "Authorization: Bearer zzzzzzzz",
      },
    );
    expect(scrub("a abcdefgh-longer b abcdefgh c true /usr/bin:/bin Authorization: Bearer zzzzzzzz", secrets)).toBe(
      "a *** b *** c true /usr/bin:/bin ***",
    );
  });
});

describe("lastLines", () => {
  it("keeps the last lines within a character bound", () => {
    expect(lastLines("a\nb\nc\nd\n\n", 2, 100)).toBe("c\nd");
    expect(lastLines("0123456789", 5, 4)).toBe("…6789");
  });
});

describe("parsePorcelainZ", () => {
  it("lists modified, added, untracked and renamed paths once, the rename by its new name", () => {
    const out = " M README.md\0A  src/a.ts\0?? notes/new file.txt\0R  new.yaml\0old.yaml\0 D gone.txt\0";
    expect(parsePorcelainZ(out)).toEqual(["README.md", "gone.txt", "new.yaml", "notes/new file.txt", "src/a.ts"]);
  });
});

describe("checkRepoUrl", () => {
  it("accepts https, ssh, scp-style, file URLs and absolute paths", () => {
    for (const url of [
      "https://github.com/acme/gitops.git",
      "ssh://git@github.com/acme/gitops.git",
      "git@github.com:acme/gitops.git",
      "file:///srv/git/r.git",
      "/srv/git/r.git",
    ]) {
      expect(() => checkRepoUrl(url), url).not.toThrow();
    }
  });

  it("rejects credentials in the URL without repeating them", () => {
    for (const url of [
      "https://x-access-token:ghp_secret1@github.com/a/b.git",
      "https://ghp_secret1@github.com/a/b.git",
      "ssh://git:ghp_secret1@host/r.git",
      "user:ghp_secret1@host:r.git",
    ]) {
      expect(() => checkRepoUrl(url), url).toThrow(expect.objectContaining({ code: "agent.credentials_in_url" }));
      try {
        checkRepoUrl(url);
      } catch (err) {
        expect((err as Error).message).not.toContain("ghp_secret1");
      }
    }
  });

  it("rejects option-like arguments, remote helpers, other schemes and relative paths", () => {
    for (const url of [
      "--upload-pack=touch /tmp/x",
      "ext::sh -c touch% /tmp/pwned",
      "ftp://host/r.git",
      "../other",
      "repo with space",
    ]) {
      expect(() => checkRepoUrl(url), url).toThrow(expect.objectContaining({ code: "agent.bad_repo_url" }));
    }
  });
});
