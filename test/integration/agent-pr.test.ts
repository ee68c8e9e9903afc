import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { gitSync, makeBareRepo } from "../helpers/git.ts";
import { loadConfig } from "../../src/config/load.ts";
import { createLocalGitHost } from "../../src/gitops/local.ts";
import type { TaskMessage } from "../../src/bus/jobs.ts";
import { buildExecutors } from "../../runner/executors/index.ts";

const git = gitSync;

describe("agent task to pull request", () => {
  const dir = mkdtempSync(join(tmpdir(), "pitcrew-agentpr-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("runs a real executable as the coding agent and opens a PR with its change, through a fresh clone", async () => {
    const bare = makeBareRepo(dir, [{ message: "init", files: { "values.yaml": "replicaCount: 2\n" } }]);

    // The stand-in for a coding CLI: edits a file, adds one, and plants a hook that must never run.
    const script = join(dir, "fake-agent.sh");
    writeFileSync(
      script,
      `#!/bin/sh
set -e
printf 'replicaCount: 4 # raised by the agent\\n' > values.yaml
printf '%s\\n' "$1" > NOTES.md
mkdir -p .git/hooks && printf '#!/bin/sh\\ntouch ${dir}/HOOK-RAN\\n' > .git/hooks/pre-commit && chmod +x .git/hooks/pre-commit
echo "edited 2 files"
`,
    );
    chmodSync(script, 0o755);

    const config = loadConfig({
      GITOPS_REPO: bare,
      AGENT_COMMANDS: JSON.stringify({ script: [script, "{{prompt}}"] }),
      AGENT_DEFAULT: "script",
      DATA_DIR: join(dir, "data"),
    });
    const host = createLocalGitHost({ repoPath: bare });
    const executors = await buildExecutors(config, { host, env: { PATH: process.env.PATH } });
    const task: TaskMessage = {
      v: 1,
      taskId: "tsk_agentpr1",
      kind: "agent",
      pool: "default",
      incidentId: "inc_agentpr1",
      payload: {
        incidentId: "inc_agentpr1",
        skill: "investigate",
        params: {},
        prompt: "Raise replicas to 4",
        approval: "before_merge",
      },
      createdAt: Date.now(),
    };
    const prs: Array<{ url: string; branch: string; number: number }> = [];
    const logs: string[] = [];
    const result = (await executors.agent!(task, {
      signal: new AbortController().signal,
      attempt: 1,
      progress: async () => {},
      log: async (_s, line) => void logs.push(line),
      prOpened: async (pr) => void prs.push(pr),
    })) as { changedFiles: string[]; after: { changed: boolean; pr: { number: number; branch: string } } };

    expect(result.changedFiles.sort()).toEqual(["NOTES.md", "values.yaml"]);
    expect(result.after.changed).toBe(true);
    expect(prs).toHaveLength(1);
    const branch = "pitcrew/inc_agentpr1-investigate";
    expect(prs[0]!.branch).toBe(branch);
    expect(git(dir, "--git-dir", bare, "show", `${branch}:values.yaml`)).toBe(
      "replicaCount: 4 # raised by the agent\n",
    );
    expect(git(dir, "--git-dir", bare, "show", `${branch}:NOTES.md`)).toBe("Raise replicas to 4\n");
    expect(logs).toContain("edited 2 files");
    const pr = await host.findOpenPullRequest(branch);
    expect(pr).toMatchObject({ state: "open", base: "main" });
    expect(() => execFileSync("test", ["-e", join(dir, "HOOK-RAN")])).toThrow();
  });
});
