import { execFileSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createAgentExecutor, type AgentExecutorOptions, type AgentResult } from "../../runner/executors/agent.ts";
import type { ExecContext } from "../../runner/executors/types.ts";
import { runCommand } from "../../runner/process.ts";
import { withWorkspace } from "../../runner/workspace.ts";
import type { TaskMessage } from "../../src/bus/jobs.ts";
import { AppError } from "../../src/shared/errors.ts";
import { waitFor } from "../helpers/wait.ts";
import { rejection } from "../helpers/assert.ts";

// Real processes standing in for coding CLIs (node and sh scripts written here), a real bare git
// repository to clone, real process groups to kill. Nothing is mocked.

const root = mkdtempSync(join(tmpdir(), "pitcrew-agent-test-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let seq = 0;

/** A fresh folder for one test: scripts, dumps (outside any workspace) and the workspace base. */
function sandbox() {
  const dir = join(root, `t${++seq}`);
  const dump = join(dir, "dump");
  const base = join(dir, "workspaces");
  mkdirSync(dump, { recursive: true });
  mkdirSync(base);
  const script = (name: string, body: string) => {
    const path = join(dir, name);
    writeFileSync(path, body);
    chmodSync(path, 0o755);
    return path;
  };
  return { dir, dump, base, script };
}

const RUNNER_ENV = {
  PATH: process.env.PATH,
  LANG: "C.UTF-8",
  USER: "runner",
  SECRET_TOKEN: "runner-secret-never-shown",
  AGENT_API_KEY: "sk-agent-key-0123456789",
};

function executor(base: string, commands: Record<string, string[]>, more: Partial<AgentExecutorOptions> = {}) {
  return createAgentExecutor({
    commands,
    defaultAgent: Object.keys(commands)[0]!,
    allowEnv: ["AGENT_API_KEY", "NOT_SET_ANYWHERE"],
    env: RUNNER_ENV,
    workspaceBase: base,
    ...more,
  });
}

function task(kind: "agent" | "prompt", payload: Record<string, unknown>): TaskMessage {
  return {
    v: 1,
    taskId: `tsk_${kind}_${++seq}`,
    kind,
    pool: "default",
    incidentId: null,
    payload,
    createdAt: Date.now(),
  };
}

function context(signal = new AbortController().signal) {
  const logs: Array<{ stream: string; line: string }> = [];
  const progress: string[] = [];
  const ctx: ExecContext = {
    signal,
    attempt: 1,
    progress: async (message) => void progress.push(message),
    log: async (stream, line) => void logs.push({ stream, line }),
  };
  return { ctx, logs, progress };
}

/** A bare repository with `main` (README.md, app.yaml) and `feature` (plus feature.txt). */
function bareRepo(dir: string): string {
  const work = join(dir, "src-repo");
  const bare = join(dir, "origin.git");
  const git = (cwd: string, ...args: string[]) =>
    execFileSync("git", ["-c", "user.name=Test", "-c", "user.email=test@example.com", ...args], { cwd, stdio: "pipe" });
  mkdirSync(work);
  git(work, "init", "-q", "-b", "main");
  writeFileSync(join(work, "README.md"), "# service\n");
  writeFileSync(join(work, "app.yaml"), "replicas: 2\n");
  git(work, "add", ".");
  git(work, "commit", "-q", "-m", "initial");
  git(work, "checkout", "-q", "-b", "feature");
  writeFileSync(join(work, "feature.txt"), "only on feature\n");
  git(work, "add", ".");
  git(work, "commit", "-q", "-m", "feature");
  git(dir, "clone", "-q", "--bare", work, bare);
  return bare;
}

/** Dead: gone (ESRCH), or a zombie that only waits for init to reap it (its code no longer runs). */
function isDead(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ESRCH";
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
}

// A CLI that hangs: it sleeps forever and leaves a grandchild that ignores SIGTERM, so only
// killing the whole process group with SIGKILL ends everything.
const HUNG = (dump: string) => `#!/bin/sh
echo "$HOME" > ${dump}/home.txt
( trap '' TERM; exec sleep 1000 ) &
echo $! > ${dump}/grandchild.pid.tmp && mv ${dump}/grandchild.pid.tmp ${dump}/grandchild.pid
echo "thinking"
sleep 1000
`;

describe("agent executor", () => {
  it("runs the CLI in a clone of the repository at the ref, streams its lines in order and lists the files it changed", async () => {
    const s = sandbox();
    const origin = bareRepo(s.dir);
    const cli = s.script(
      "fake-agent",
      `#!${process.execPath}
const fs = require("node:fs");
fs.writeFileSync(${JSON.stringify(s.dump)} + "/argv.json", JSON.stringify(process.argv.slice(2)));
fs.writeFileSync(${JSON.stringify(s.dump)} + "/env.json", JSON.stringify(process.env));
fs.writeFileSync(${JSON.stringify(s.dump)} + "/seen.json", JSON.stringify({ cwd: process.cwd(), feature: fs.existsSync("feature.txt") }));
fs.appendFileSync("README.md", "fixed by the agent\\n");
fs.mkdirSync("src/new", { recursive: true });
fs.writeFileSync("src/new/file.txt", "hello\\n");
for (let i = 1; i <= 5; i++) console.log("step " + i);
console.error("warning: deprecated flag");
console.log("key=" + process.env.AGENT_API_KEY);
console.log("done");
`,
    );
    const ex = executor(s.base, {
      fake: [cli, "--prompt", "{{prompt}}", "--model", "{{model}}", "--dir", "{{workdir}}"],
    });
    // Shell syntax in the prompt reaches the CLI verbatim: no shell ever sees it.
    const prompt = `fix it; touch ${s.dump}/pwned && echo $HOME "quoted" $(id) \`id\``;
    const { ctx, logs } = context();
    const t = task("agent", {
      incidentId: "inc_1",
      skill: "fix-config",
      params: { replicas: 3 },
      prompt,
      model: "model-x",
      repoUrl: `file://${origin}`,
      ref: "feature",
    });

    const result = (await ex.agent(t, ctx)) as AgentResult;

    expect(result.exitCode).toBe(0);
    expect(result.changedFiles).toEqual(["README.md", "src/new/file.txt"]);
    expect(result.outputTail).toContain("done");
    const argv = JSON.parse(readFileSync(join(s.dump, "argv.json"), "utf8")) as string[];
    const seen = JSON.parse(readFileSync(join(s.dump, "seen.json"), "utf8")) as { cwd: string; feature: boolean };
    expect(argv).toEqual(["--prompt", prompt, "--model", "model-x", "--dir", seen.cwd]);
    expect(existsSync(join(s.dump, "pwned"))).toBe(false);
    expect(seen.feature).toBe(true);
    expect(logs.filter((l) => l.stream === "stdout").map((l) => l.line)).toEqual([
      "step 1",
      "step 2",
      "step 3",
      "step 4",
      "step 5",
      "key=***",
      "done",
    ]);
    expect(logs.filter((l) => l.stream === "stderr").map((l) => l.line)).toEqual(["warning: deprecated flag"]);

    const env = JSON.parse(readFileSync(join(s.dump, "env.json"), "utf8")) as Record<string, string>;
    expect(Object.keys(env).sort()).toEqual([
      "AGENT_API_KEY",
      "HOME",
      "LANG",
      "PATH",
      "PITCREW_INCIDENT_ID",
      "PITCREW_PARAMS",
      "PITCREW_SKILL",
      "PITCREW_TASK_ID",
      "PITCREW_TASK_KIND",
      "TMPDIR",
    ]);
    expect(env.AGENT_API_KEY).toBe(RUNNER_ENV.AGENT_API_KEY);
    expect(env.PITCREW_PARAMS).toBe('{"replicas":3}');
    // HOME is the workspace, the CLI ran in its clone, and both are gone now.
    expect(dirname(env.HOME!)).toBe(s.base);
    expect(seen.cwd).toBe(join(realpathSync(s.base), basename(env.HOME!), "repo"));
    expect(existsSync(env.HOME!)).toBe(false);
    expect(readdirSync(s.base)).toEqual([]);
  });

  it("passes a runner variable to the CLI only when configuration allows it", async () => {
    const s = sandbox();
    const cli = s.script(
      "env-dump",
      `#!${process.execPath}\nrequire("node:fs").writeFileSync(process.argv[2], JSON.stringify(process.env));\n`,
    );
    const t = () => task("prompt", { prompt: "hello", agent: "dump" });

    await executor(s.base, { dump: [cli, join(s.dump, "denied.json")] }).prompt(t(), context().ctx);
    await executor(s.base, { dump: [cli, join(s.dump, "allowed.json")] }, { allowEnv: ["SECRET_TOKEN"] }).prompt(
      t(),
      context().ctx,
    );

    const denied = JSON.parse(readFileSync(join(s.dump, "denied.json"), "utf8")) as Record<string, string>;
    const allowed = JSON.parse(readFileSync(join(s.dump, "allowed.json"), "utf8")) as Record<string, string>;
    expect(Object.keys(denied).sort()).toEqual([
      "AGENT_API_KEY",
      "HOME",
      "LANG",
      "PATH",
      "PITCREW_TASK_ID",
      "PITCREW_TASK_KIND",
      "TMPDIR",
    ]);
    expect(Object.keys(allowed).sort()).toEqual([
      "HOME",
      "LANG",
      "PATH",
      "PITCREW_TASK_ID",
      "PITCREW_TASK_KIND",
      "SECRET_TOKEN",
      "TMPDIR",
    ]);
    expect(allowed.SECRET_TOKEN).toBe(RUNNER_ENV.SECRET_TOKEN);
    expect(readdirSync(s.base)).toEqual([]);
  });

  it("fails a CLI that exits non-zero with agent.failed, its stderr tail scrubbed of allowed secrets", async () => {
    const s = sandbox();
    const cli = s.script(
      "failing",
      `#!/bin/sh\necho "compiling"\necho "auth with $AGENT_API_KEY rejected" >&2\necho "fatal: giving up" >&2\nexit 3\n`,
    );
    const { ctx, logs } = context();

    const err = await rejection(
      executor(s.base, { failing: [cli] }).prompt(task("prompt", { prompt: "x", agent: "failing" }), ctx),
    );

    expect(err.code).toBe("agent.failed");
    expect(err.retryable).toBe(false);
    expect(err.message).toContain("exited with code 3");
    expect(err.message).toContain("auth with *** rejected\nfatal: giving up");
    expect(err.message).not.toContain(RUNNER_ENV.AGENT_API_KEY);
    expect(logs.map((l) => l.line)).not.toContain(`auth with ${RUNNER_ENV.AGENT_API_KEY} rejected`);
    expect(readdirSync(s.base)).toEqual([]);
  });

  it("kills a hung CLI and its grandchildren at the timeout and leaves no workspace", async () => {
    const s = sandbox();
    const cli = s.script("hung", HUNG(s.dump));
    const started = Date.now();

    const err = await rejection(
      executor(s.base, { hung: [cli] }).prompt(
        task("prompt", { prompt: "x", agent: "hung", timeoutMs: 1500 }),
        context().ctx,
      ),
    );

    const elapsed = Date.now() - started;
    expect(err.code).toBe("agent.timeout");
    expect(err.retryable).toBe(false);
    // Not before the timeout; and the run ended at all only because the executor killed the group:
    // the CLI sleeps 1000 s and its grandchild ignores TERM.
    expect(elapsed).toBeGreaterThanOrEqual(1500);
    const grandchild = Number(readFileSync(join(s.dump, "grandchild.pid"), "utf8"));
    expect(grandchild).toBeGreaterThan(1);
    expect(isDead(grandchild)).toBe(true);
    expect(existsSync(readFileSync(join(s.dump, "home.txt"), "utf8").trim())).toBe(false);
    expect(readdirSync(s.base)).toEqual([]);
  });

  it("ends a cancelled run before its timeout, grandchildren included, and leaves no workspace", async () => {
    const s = sandbox();
    const cli = s.script("hung", HUNG(s.dump));
    const ac = new AbortController();
    const { ctx, logs } = context(ac.signal);
    const run = executor(s.base, { hung: [cli] }).prompt(
      task("prompt", { prompt: "x", agent: "hung", timeoutMs: 20_000 }),
      ctx,
    );
    const settled = run.catch((e: unknown) => e);
    await waitFor(() => existsSync(join(s.dump, "grandchild.pid")), 10_000);
    await waitFor(() => logs.some((l) => l.line === "thinking"), 5000);

    const t0 = Date.now();
    ac.abort("cancelled");
    const err = await settled;
    const elapsed = Date.now() - t0;

    // The cancel ended it, not its 20 s timeout (how fast is for `npm run bench`).
    expect(elapsed).toBeLessThan(20_000);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe("agent.cancelled");
    expect(isDead(Number(readFileSync(join(s.dump, "grandchild.pid"), "utf8")))).toBe(true);
    expect(existsSync(readFileSync(join(s.dump, "home.txt"), "utf8").trim())).toBe(false);
    expect(readdirSync(s.base)).toEqual([]);
  });

  it("streams at most maxLogLines lines, then one note", async () => {
    const s = sandbox();
    const cli = s.script("chatty", `#!/bin/sh\ni=1\nwhile [ $i -le 50 ]; do echo "line $i"; i=$((i+1)); done\n`);
    const { ctx, logs } = context();

    const result = (await executor(s.base, { chatty: [cli] }, { maxLogLines: 10 }).prompt(
      task("prompt", { prompt: "x", agent: "chatty" }),
      ctx,
    )) as AgentResult;

    expect(logs.slice(0, 10).map((l) => l.line)).toEqual(Array.from({ length: 10 }, (_, i) => `line ${i + 1}`));
    expect(logs.slice(10)).toEqual([{ stream: "runner", line: "output beyond 10 lines is not streamed" }]);
    expect(result.outputTail.endsWith("line 50")).toBe(true);
  });

  it("refuses a repository URL with credentials without repeating them", async () => {
    const s = sandbox();
    const cli = s.script("never", `#!/bin/sh\ntouch ${s.dump}/ran\n`);
    const ex = executor(s.base, { never: [cli] });

    for (const repoUrl of [
      "https://bot:hunter2-secret@example.com/r.git",
      "https://hunter2-secret@example.com/r.git",
    ]) {
      const err = await rejection(ex.prompt(task("prompt", { prompt: "x", agent: "never", repoUrl }), context().ctx));
      expect(err.code).toBe("agent.credentials_in_url");
      expect(err.message).not.toContain("hunter2");
    }
    expect(existsSync(join(s.dump, "ran"))).toBe(false);
  });

  it("fails a clone of a missing repository as retryable agent.clone_failed and removes the workspace", async () => {
    const s = sandbox();
    const cli = s.script("never", `#!/bin/sh\ntouch ${s.dump}/ran\n`);

    const err = await rejection(
      executor(s.base, { never: [cli] }).prompt(
        task("prompt", { prompt: "x", agent: "never", repoUrl: join(s.dir, "nope.git") }),
        context().ctx,
      ),
    );

    expect(err.code).toBe("agent.clone_failed");
    expect(err.retryable).toBe(true);
    expect(existsSync(join(s.dump, "ran"))).toBe(false);
    expect(readdirSync(s.base)).toEqual([]);
  });

  it("fails a CLI that is not installed with agent.not_installed, naming the program and how to configure AGENT_COMMANDS", async () => {
    const s = sandbox();
    const ex = executor(s.base, { ghost: ["ghost-cli-not-installed", "{{prompt}}"] });

    const err = await rejection(ex.prompt(task("prompt", { prompt: "x", agent: "ghost" }), context().ctx));

    expect(err).toMatchObject({
      code: "agent.not_installed",
      retryable: false,
      details: { agent: "ghost", program: "ghost-cli-not-installed" },
    });
    expect(err.message).toContain('agent "ghost": ghost-cli-not-installed is not installed on this runner');
    expect(err.message).toContain("AGENT_COMMANDS");
    expect(readdirSync(s.base)).toEqual([]);
  });

  it("fails a CLI that is not installed before cloning anything", async () => {
    const s = sandbox();
    const ex = executor(s.base, { ghost: ["/nowhere/ghost-cli", "{{prompt}}"] });
    // A repository that could not be cloned: the error would be the clone's if it were tried.
    const repoUrl = "https://git.invalid/team/gitops.git";
    const payload = { incidentId: "inc_1", skill: "investigate", prompt: "x", agent: "ghost", repoUrl };
    const err = await rejection(ex.agent(task("agent", payload), context().ctx));
    expect(err).toMatchObject({ code: "agent.not_installed", details: { program: "/nowhere/ghost-cli" } });
    expect(readdirSync(s.base)).toEqual([]);
  });

  // Only root can start processes as another user.
  it.skipIf(process.getuid?.() !== 0)(
    "runs the CLI as the configured user, in a workspace and clone handed to that user",
    async () => {
      const s = sandbox();
      chmodSync(root, 0o755);
      chmodSync(s.dir, 0o755);
      const origin = bareRepo(s.dir);
      const cli = s.script(
        "whoami",
        `#!/bin/sh\nid -u > "$HOME/uid" && cp "$HOME/uid" uid.txt && echo "uid $(id -u) gid $(id -g) tmp $(stat -c %u "$TMPDIR")"\n`,
      );
      const { ctx, logs } = context();

      const result = (await executor(s.base, { whoami: [cli] }, { uid: 65534, gid: 65534 }).prompt(
        task("prompt", { prompt: "x", agent: "whoami", repoUrl: origin }),
        ctx,
      )) as AgentResult;

      expect(logs.map((l) => l.line)).toContain("uid 65534 gid 65534 tmp 65534");
      expect(result.changedFiles).toEqual(["uid.txt"]);
      expect(readdirSync(s.base)).toEqual([]);
    },
  );
});

describe("runCommand", () => {
  const env = { PATH: process.env.PATH ?? "" };

  it("keeps only the tail of 10 MB of output and delivers every line", async () => {
    const lines: string[] = [];
    const program = `const line = "x".repeat(1023) + "\\n"; const chunk = line.repeat(64);
for (let i = 0; i < 160; i++) process.stdout.write(chunk);
process.stdout.write("last line\\n");`;

    const res = await runCommand({
      command: [process.execPath, "-e", program],
      cwd: root,
      env,
      timeoutMs: 30_000,
      maxOutputBytes: 64 * 1024,
      onLine: (_s, l) => lines.push(l),
    });

    expect(res.exitCode).toBe(0);
    expect(res.truncated).toBe(true);
    expect(Buffer.byteLength(res.stdoutTail)).toBeLessThanOrEqual(64 * 1024);
    expect(res.stdoutTail.endsWith("x\nlast line\n")).toBe(true);
    expect(lines.length).toBe(160 * 64 + 1);
    expect(lines.at(-1)).toBe("last line");
  });

  it("cuts an endless line and goes on with the next one", async () => {
    const lines: string[] = [];
    const program = `process.stdout.write("y".repeat(300000)); process.stdout.write("\\nnext\\n");`;

    const res = await runCommand({
      command: [process.execPath, "-e", program],
      cwd: root,
      env,
      timeoutMs: 30_000,
      maxOutputBytes: 1024 * 1024,
      maxLineChars: 1000,
      onLine: (_s, l) => lines.push(l),
    });

    expect(res.truncated).toBe(true);
    expect(lines).toEqual([`${"y".repeat(1000)} …[line cut]`, "next"]);
  });

  it("resolves only once a background process the command left behind is gone", async () => {
    const res = await runCommand({
      command: ["/bin/sh", "-c", "sleep 1000 & echo $!"],
      cwd: root,
      env,
      timeoutMs: 30_000,
      maxOutputBytes: 1024,
    });

    expect(res.exitCode).toBe(0);
    expect(res.timedOut).toBe(false);
    expect(isDead(Number(res.stdoutTail.trim()))).toBe(true);
  });

  it("runs the program itself, never a shell", async () => {
    await expect(
      runCommand({ command: ["echo hello; true"], cwd: root, env, timeoutMs: 5000, maxOutputBytes: 1024 }),
    ).rejects.toMatchObject({ code: "ENOENT" });
  });
});

describe("withWorkspace", () => {
  it("removes the directory when the work throws", async () => {
    let dir = "";
    const err = await withWorkspace(
      "pitcrew-test-",
      async (d) => {
        dir = d;
        mkdirSync(join(d, "deep", "er"), { recursive: true });
        writeFileSync(join(d, "deep", "er", "f"), "x");
        throw new Error("boom");
      },
      { base: root },
    ).catch((e: Error) => e);

    expect((err as Error).message).toBe("boom");
    expect(dir.startsWith(root)).toBe(true);
    expect(existsSync(dir)).toBe(false);
  });
});
