import { execFile } from "node:child_process";
import { constants } from "node:fs";
import { access, mkdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import type { TaskMessage } from "../../src/bus/jobs.ts";
import { assertRepoAllowed, repoKey } from "../../src/gitops/repo-url.ts";
import { AppError, errorMessage, invalid } from "../../src/shared/errors.ts";
import { runCommand, type OutputStream } from "../process.ts";
import { giveTo, withWorkspace } from "../workspace.ts";
import {
  buildAgentEnv,
  checkCommandTemplates,
  checkRepoUrl,
  DEFAULT_PATH,
  lastLines,
  parsePorcelainZ,
  renderCommand,
  scrub,
  secretValues,
} from "./agent-command.ts";
import type { ExecContext, Executor } from "./types.ts";

// The `agent` (a skill's coding step) and `prompt` (a free-form coding task from MCP) task kinds:
// a coding CLI, chosen by name from the runner's command templates, runs with the prompt in a fresh
// clone of the repository, with a scrubbed environment, a timeout and bounded output.

// One argv string may not exceed 128 KiB on Linux (MAX_ARG_STRLEN); the prompt is one argument.
const MAX_PROMPT_BYTES = 100_000;

const common = {
  prompt: z
    .string()
    .min(1)
    .refine((p) => Buffer.byteLength(p) <= MAX_PROMPT_BYTES, `longer than ${MAX_PROMPT_BYTES} bytes`)
    .refine((p) => !p.includes("\0"), "contains a NUL character"),
  // Passed as an argument of the CLI: nothing that could read as an option.
  model: z
    .string()
    .max(200)
    .regex(/^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$/)
    .optional(),
  timeoutMs: z.number().int().min(1).max(86_400_000).optional(),
  repoUrl: z.string().min(1).max(2000).optional(),
  /** A branch or tag (cloned with `--branch`). */
  ref: z
    .string()
    .max(255)
    .regex(/^[A-Za-z0-9_][A-Za-z0-9._/+-]*$/)
    .refine((r) => !r.includes(".."), "not a ref")
    .optional(),
};

export const AgentTaskPayload = z.object({
  incidentId: z.string().min(1).max(40),
  skill: z.string().min(1).max(128),
  params: z
    .record(z.string(), z.unknown())
    .default({})
    .refine((p) => JSON.stringify(p).length <= 32_000, "larger than 32000 characters"),
  ...common,
  agent: z.string().min(1).max(64).optional(),
});
export type AgentTaskPayload = z.infer<typeof AgentTaskPayload>;

export const PromptTaskPayload = z.object({ ...common, agent: z.string().min(1).max(64) });
export type PromptTaskPayload = z.infer<typeof PromptTaskPayload>;

export type AgentExecutorOptions = {
  /** Agent name → argv template; `{{prompt}}`, `{{model}}`, `{{workdir}}` only as whole arguments. */
  commands: Record<string, string[]>;
  defaultAgent: string;
  /** Names of runner variables the agent may see (API keys of the CLI, proxies). */
  allowEnv: string[];
  /** The runner's environment; only PATH, LANG and the allowed names are read from it. */
  env: Record<string, string | undefined>;
  workspaceBase?: string;
  /** Bound on each captured output tail. Default 64 KiB. */
  maxOutputBytes?: number;
  /** Repositories a task may clone (URLs or paths, compared by repoKey). Unset: any. */
  allowedRepos?: string[];
  /**
   * Git credentials (askpass helper and secret, from GitHost.auth()), given to the clone of
   * `repoUrl` only: a clone of any other repository runs without credentials and credential helpers.
   */
  credentials?: { repoUrl: string; env: () => Promise<Record<string, string>> };
  /** The user (and group; default: the same number) agent processes run as. Needs a root runner. */
  uid?: number;
  gid?: number;
  defaultTimeoutMs?: number;
  /** Upper bound on a task's own timeoutMs. */
  maxTimeoutMs?: number;
  cloneTimeoutMs?: number;
  /** Output lines streamed as task.log events per run; the rest is only in the tails. */
  maxLogLines?: number;
  killGraceMs?: number;
  /** Runs in the workspace after a successful agent run (commit, push, PR); its result is returned as `after`. */
  afterRun?: (run: AgentRun) => Promise<unknown>;
};

export type AgentRun = {
  task: TaskMessage;
  ctx: ExecContext;
  agent: string;
  payload: AgentTaskPayload | PromptTaskPayload;
  /** The clone (or an empty directory when no repository was given). */
  repoDir: string;
  cloned: boolean;
  changedFiles: string[];
};

export type AgentResult = {
  exitCode: 0;
  agent: string;
  changedFiles: string[];
  outputTail: string;
  truncated: boolean;
  after?: unknown;
};

export function createAgentExecutor(opts: AgentExecutorOptions): { agent: Executor; prompt: Executor } {
  checkCommandTemplates(opts.commands);
  if (!opts.commands[opts.defaultAgent])
    throw invalid("agent.bad_command_template", `default agent "${opts.defaultAgent}" has no command`);
  const maxOutputBytes = opts.maxOutputBytes ?? 64 * 1024;
  const defaultTimeoutMs = opts.defaultTimeoutMs ?? 30 * 60_000;
  const maxTimeoutMs = opts.maxTimeoutMs ?? 2 * 60 * 60_000;
  const cloneTimeoutMs = opts.cloneTimeoutMs ?? 5 * 60_000;
  const maxLogLines = opts.maxLogLines ?? 2000;

  async function run(
    task: TaskMessage,
    ctx: ExecContext,
    payload: AgentTaskPayload | PromptTaskPayload,
    taskEnv: Record<string, string>,
  ): Promise<AgentResult> {
    const agent = payload.agent ?? opts.defaultAgent;
    const template = opts.commands[agent];
    if (!template)
      throw invalid(
        "agent.unknown_agent",
        `no command configured for agent "${agent}" (known: ${Object.keys(opts.commands).join(", ")})`,
      );
    if (payload.repoUrl) {
      checkRepoUrl(payload.repoUrl);
      if (opts.allowedRepos) assertRepoAllowed(payload.repoUrl, opts.allowedRepos);
    }
    const timeoutMs = Math.min(payload.timeoutMs ?? defaultTimeoutMs, maxTimeoutMs);
    const progress = (message: string) => ctx.progress(message).catch(() => {});
    if (ctx.signal.aborted) throw cancelled();
    // A CLI that is not there fails before anything is cloned: in an alert storm on a runner
    // without it, each task would otherwise clone the repository only to find out.
    const program = template[0];
    const path = opts.env.PATH ?? DEFAULT_PATH;
    // (A relative path is the clone's own, looked at when it runs.)
    const checkable = program && !program.includes("{{") && (!program.includes("/") || program.startsWith("/"));
    if (checkable && !(await onPath(program, path))) throw notInstalled(agent, program, path);
    // Asked per run: a GitHub App installation token expires, and the mask must know the current one.
    const withCredentials =
      !!payload.repoUrl && !!opts.credentials && repoKey(payload.repoUrl) === repoKey(opts.credentials.repoUrl);
    const gitEnv = withCredentials ? await opts.credentials!.env() : NO_CREDENTIALS;
    const secrets = secretValues(opts.env, opts.allowEnv, gitEnv);
    const identity = opts.uid === undefined ? undefined : { uid: opts.uid, gid: opts.gid ?? opts.uid };

    return withWorkspace(
      `pitcrew-${task.kind}-${task.taskId}-`,
      async (ws) => {
        const repoDir = join(ws, "repo");
        const tmpDir = join(ws, "tmp");
        await mkdir(tmpDir);
        const base = {
          PATH: opts.env.PATH ?? DEFAULT_PATH,
          LANG: opts.env.LANG ?? "C.UTF-8",
          HOME: ws,
          GIT_TERMINAL_PROMPT: "0",
        };
        const cloneEnv = { ...base, ...gitEnv };
        if (payload.repoUrl) {
          await progress(payload.ref ? `cloning the repository at ${payload.ref}` : "cloning the repository");
          await clone(payload.repoUrl, payload.ref, ws, repoDir, cloneEnv, ctx.signal, secrets);
        } else await mkdir(repoDir);
        // The clone was made with the runner's credentials; from here on the workspace is the agent's.
        if (identity) await giveTo(ws, identity.uid, identity.gid);

        const argv = renderCommand(template, { prompt: payload.prompt, model: payload.model, workdir: repoDir });
        const env = buildAgentEnv({ runnerEnv: opts.env, allowEnv: opts.allowEnv, home: ws, tmpDir, task: taskEnv });
        await progress(`running ${agent}`);
        const logs = forwardLines(ctx, secrets, maxLogLines);
        let res;
        try {
          res = await runCommand({
            command: argv,
            cwd: repoDir,
            env,
            timeoutMs,
            signal: ctx.signal,
            maxOutputBytes,
            onLine: logs.line,
            killGraceMs: opts.killGraceMs,
            ...identity,
          });
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === "ENOENT") throw notInstalled(agent, argv[0]!, env.PATH!);
          throw new AppError(
            "invalid",
            "agent.not_startable",
            `${agent}: could not start ${argv[0]}: ${errorMessage(err)}`,
            { retryable: false, cause: err },
          );
        } finally {
          await logs.close(ctx.signal.aborted ? 0 : 5000);
        }
        if (res.cancelled) throw cancelled();
        if (res.timedOut) {
          throw new AppError(
            "unavailable",
            "agent.timeout",
            `${agent} did not finish within ${timeoutMs} ms and was killed`,
            { retryable: false },
          );
        }
        if (res.exitCode !== 0) {
          const how = res.exitCode === null ? `was killed by ${res.signal}` : `exited with code ${res.exitCode}`;
          const stderr = scrub(lastLines(res.stderrTail, 20, 4000), secrets);
          throw new AppError("unavailable", "agent.failed", `${agent} ${how}${stderr ? `: ${stderr}` : ""}`, {
            retryable: false,
            details: { exitCode: res.exitCode },
          });
        }
        // With the env of the agent itself: git may run programs configured in the clone it controlled.
        const changedFiles = payload.repoUrl ? await changedPaths(repoDir, base, ctx.signal, identity) : [];
        const after = opts.afterRun
          ? await opts.afterRun({
              task,
              ctx,
              agent,
              payload,
              repoDir,
              cloned: payload.repoUrl !== undefined,
              changedFiles,
            })
          : undefined;
        await progress(`${agent} finished; ${changedFiles.length} file(s) changed`);
        const outputTail = scrub(lastLines(res.stdoutTail, 200, 8000), secrets);
        return {
          exitCode: 0,
          agent,
          changedFiles,
          outputTail,
          truncated: res.truncated,
          ...(after === undefined ? {} : { after }),
        };
      },
      { base: opts.workspaceBase },
    );
  }

  async function clone(
    url: string,
    ref: string | undefined,
    cwd: string,
    dir: string,
    env: Record<string, string>,
    signal: AbortSignal,
    secrets: string[],
  ): Promise<void> {
    const command = ["git", "clone", "--depth", "1", ...(ref ? ["--branch", ref] : []), "--", url, dir];
    let res;
    try {
      res = await runCommand({
        command,
        cwd,
        env,
        timeoutMs: cloneTimeoutMs,
        signal,
        maxOutputBytes: 16 * 1024,
        killGraceMs: opts.killGraceMs,
      });
    } catch (err) {
      throw new AppError("unavailable", "agent.clone_failed", `could not run git: ${errorMessage(err)}`, {
        retryable: false,
        cause: err,
      });
    }
    if (res.cancelled) throw cancelled();
    if (res.timedOut)
      throw new AppError("unavailable", "agent.clone_timeout", `git clone did not finish within ${cloneTimeoutMs} ms`, {
        retryable: true,
      });
    if (res.exitCode !== 0) {
      // Retryable: most clone failures are the network or the Git host; the attempts are bounded.
      throw new AppError(
        "unavailable",
        "agent.clone_failed",
        `git clone failed: ${scrub(lastLines(res.stderrTail, 3, 1000), secrets)}`,
        { retryable: true },
      );
    }
  }

  const agentExecutor: Executor = async (task, ctx) => {
    const payload = parsePayload(AgentTaskPayload, task.payload);
    return run(task, ctx, payload, {
      PITCREW_TASK_ID: task.taskId,
      PITCREW_TASK_KIND: task.kind,
      PITCREW_INCIDENT_ID: payload.incidentId,
      PITCREW_SKILL: payload.skill,
      PITCREW_PARAMS: JSON.stringify(payload.params),
    });
  };
  const promptExecutor: Executor = async (task, ctx) => {
    const payload = parsePayload(PromptTaskPayload, task.payload);
    return run(task, ctx, payload, { PITCREW_TASK_ID: task.taskId, PITCREW_TASK_KIND: task.kind });
  };
  return { agent: agentExecutor, prompt: promptExecutor };
}

function parsePayload<S extends z.ZodType>(schema: S, payload: unknown): z.infer<S> {
  const parsed = schema.safeParse(payload);
  if (!parsed.success)
    throw invalid(
      "agent.invalid_payload",
      parsed.error.issues.map((i) => `${i.path.join(".") || "payload"}: ${i.message}`).join("; "),
    );
  return parsed.data;
}

// A clone of a repository other than the GitOps one: no askpass helper, no credential helpers, so
// a server asking for credentials gets none and the clone fails.
const NO_CREDENTIALS: Record<string, string> = {
  GIT_CONFIG_COUNT: "2",
  GIT_CONFIG_KEY_0: "credential.helper",
  GIT_CONFIG_VALUE_0: "",
  GIT_CONFIG_KEY_1: "core.askPass",
  GIT_CONFIG_VALUE_1: "",
};

/** Whether `program` (a path, or a name looked up on `path`) is an executable file here. */
async function onPath(program: string, path: string): Promise<boolean> {
  const candidates = program.includes("/") ? [program] : path.split(":").map((dir) => join(dir || ".", program));
  for (const file of candidates) {
    try {
      await access(file, constants.X_OK);
      if ((await stat(file)).isFile()) return true;
    } catch {
      // not this one
    }
  }
  return false;
}

/** The agent's CLI is not on this runner: a distinct code, so the incident can say what to install. */
function notInstalled(agent: string, program: string, path: string): AppError {
  return new AppError(
    "not_found",
    "agent.not_installed",
    `agent "${agent}": ${program} is not installed on this runner (not found on PATH ${path}); install it, or set AGENT_COMMANDS to a command that exists, e.g. AGENT_COMMANDS='{"${agent}": ["/usr/local/bin/my-cli", "{{prompt}}"]}'`,
    { retryable: false, details: { agent, program } },
  );
}

// The worker tells cancel from shutdown by the signal's reason; this error only ends the run.
const cancelled = () =>
  new AppError("unavailable", "agent.cancelled", "the agent run was cancelled", { retryable: true });

/** Streams lines as task.log events in order, scrubbed, at most `max` of them per run. */
function forwardLines(ctx: ExecContext, secrets: string[], max: number) {
  let count = 0;
  let open = true;
  let dropped = false;
  let chain: Promise<void> = Promise.resolve();
  const send = (stream: OutputStream | "runner", line: string) => {
    chain = chain.then(() => (dropped ? undefined : ctx.log(stream, line))).catch(() => {});
  };
  return {
    line(stream: OutputStream, line: string): void {
      if (!open || count > max) return;
      count += 1;
      if (count > max) send("runner", `output beyond ${max} lines is not streamed`);
      else send(stream, scrub(line, secrets));
    },
    /** Stops streaming; waits up to `waitMs` for queued lines, then drops what is left. */
    async close(waitMs: number): Promise<void> {
      open = false;
      if (waitMs > 0) await Promise.race([chain, new Promise((r) => setTimeout(r, waitMs).unref())]);
      dropped = true;
    },
  };
}

/** Paths changed or added in the clone, from `git status`. */
function changedPaths(
  dir: string,
  env: Record<string, string>,
  signal: AbortSignal,
  identity?: { uid: number; gid: number },
): Promise<string[]> {
  const args = ["-c", "core.fsmonitor=false", "status", "--porcelain", "-z", "--untracked-files=all"];
  return new Promise((resolve, reject) => {
    // As the agent's user when there is one: the clone is the agent's, and so is whatever it configured there.
    const options = {
      cwd: dir,
      env: { ...env, GIT_OPTIONAL_LOCKS: "0" },
      signal,
      timeout: 60_000,
      maxBuffer: 32 * 1024 * 1024,
      encoding: "utf8" as const,
      ...identity,
    };
    execFile("git", args, options, (err, stdout, stderr) => {
      if (signal.aborted) return reject(cancelled());
      if (err)
        return reject(
          new AppError(
            "unavailable",
            "agent.git_status_failed",
            `git status failed: ${lastLines(stderr || err.message, 3, 1000)}`,
            { retryable: false },
          ),
        );
      resolve(parsePorcelainZ(stdout));
    });
  });
}
