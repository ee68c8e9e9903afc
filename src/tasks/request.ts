import { z } from "zod";
import type { Config } from "../config/load.ts";
import { allowedRepoUrls, assertRepoAllowed, gitopsRepoUrl } from "../gitops/repo-url.ts";
import { parseDuration } from "../shared/duration.ts";
import { invalid } from "../shared/errors.ts";

// What a free-form task asks for — `submit_task` from MCP and a schedule's `task:` take the same
// fields — checked against the configuration and turned into the runner's payload in one place.

export const TaskRequest = z
  .object({
    kind: z.enum(["prompt", "noop"]),
    prompt: z.string().min(1).max(100_000).optional(),
    /** The GitOps repository (or `gitops` for it) or one listed in ALLOWED_REPOS. */
    repo_url: z.string().min(1).max(2000).optional(),
    ref: z.string().max(255).optional(),
    agent: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_-]*$/)
      .max(64)
      .optional(),
    model: z.string().max(200).optional(),
    timeout: z.string().max(20).optional(),
    steps: z.number().int().min(1).max(100).optional(),
    sleep_ms: z.number().int().min(0).max(600_000).optional(),
    pool: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/)
      .optional(),
  })
  .strict();
export type TaskRequest = z.infer<typeof TaskRequest>;

/** The task kind, pool and runner payload for a request; throws an `invalid`/`forbidden` AppError. */
export function buildTaskRequest(
  r: TaskRequest,
  config: Pick<Config, "agents" | "runner" | "gitops" | "allowedRepos">,
): { kind: TaskRequest["kind"]; pool: string; payload: Record<string, unknown> } {
  let payload: Record<string, unknown>;
  if (r.kind === "prompt") {
    if (!r.prompt) throw invalid("task.prompt_required", "kind prompt needs a prompt");
    let timeoutMs: number | undefined;
    if (r.timeout !== undefined) {
      timeoutMs = parseDuration(r.timeout);
      if (timeoutMs === undefined || timeoutMs < 1)
        throw invalid(
          "task.bad_timeout",
          `timeout: expected a duration like 30s, 15m, 2h (got ${JSON.stringify(r.timeout)})`,
        );
    }
    const agent = r.agent ?? config.agents.defaultAgent;
    const known = Object.keys(config.agents.commands);
    if (!known.includes(agent))
      throw invalid(
        "task.unknown_agent",
        `agent ${JSON.stringify(agent)} is not configured (known: ${known.join(", ")})`,
      );
    const repoUrl = r.repo_url === "gitops" ? gitopsRepoUrl(config.gitops) : r.repo_url;
    if (repoUrl !== undefined) assertRepoAllowed(repoUrl, allowedRepoUrls(config));
    payload = { prompt: r.prompt, repoUrl, ref: r.ref, agent, model: r.model, timeoutMs };
  } else {
    const stray = (["prompt", "repo_url", "ref", "agent", "model", "timeout"] as const).filter(
      (k) => r[k] !== undefined,
    );
    if (stray.length) throw invalid("task.bad_field", `kind noop does not take ${stray.join(", ")}`);
    payload = { steps: r.steps, sleepMs: r.sleep_ms };
  }
  // Absent options stay absent (JSON drops undefined), so the runner applies its defaults.
  return {
    kind: r.kind,
    pool: r.pool ?? config.runner.pool,
    payload: JSON.parse(JSON.stringify(payload)) as Record<string, unknown>,
  };
}
