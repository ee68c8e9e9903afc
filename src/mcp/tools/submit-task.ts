import { z } from "zod";
import { defineTool } from "../tool.ts";
import { buildTaskRequest } from "../../tasks/request.ts";
import { conflict } from "../../shared/errors.ts";
import { mcpActor, sameJson, TaskView, taskView } from "../views.ts";

export const submitTask = defineTool({
  name: "submit_task",
  title: "Submit a task",
  description:
    "Queues a task for a runner. kind `prompt` runs a coding agent with a prompt (optionally in a cloned repository); kind `noop` does nothing but report progress (for checking the fleet). With an idempotency_key that was used before for the same request, returns that task instead of queueing another; the same key with a different request is refused.",
  scope: "write",
  input: {
    kind: z.enum(["prompt", "noop"]).describe("prompt: a free-form coding task for an agent; noop: a test task."),
    prompt: z.string().min(1).max(100_000).optional().describe("The agent's instructions (required for kind prompt)."),
    repo_url: z
      .string()
      .min(1)
      .max(2000)
      .optional()
      .describe(
        "Repository to clone and work in (prompt only): the GitOps repository (`gitops` names it) or one listed in ALLOWED_REPOS.",
      ),
    ref: z.string().max(255).optional().describe("Branch or tag to clone (prompt only)."),
    agent: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_-]*$/)
      .max(64)
      .optional()
      .describe("Agent command name, e.g. claude-code, opencode, codex (prompt only; default AGENT_DEFAULT)."),
    model: z.string().max(200).optional().describe("Model name passed to the agent (prompt only)."),
    timeout: z
      .string()
      .max(20)
      .optional()
      .describe('How long the agent may run, e.g. "30m" (prompt only; capped by AGENT_TIMEOUT).'),
    steps: z.number().int().min(1).max(100).optional().describe("Progress steps to report (noop only)."),
    sleep_ms: z
      .number()
      .int()
      .min(0)
      .max(600_000)
      .optional()
      .describe("How long the task takes in total, in milliseconds (noop only)."),
    pool: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/)
      .optional()
      .describe("Runner pool (default: RUNNER_POOL)."),
    idempotency_key: z
      .string()
      .min(1)
      .max(200)
      .optional()
      .describe("Same key → same task: a retried call does not queue the work twice."),
  },
  output: {
    task: TaskView.describe("The task (new, or the existing one for a repeated idempotency key)."),
    created: z.boolean().describe("False when the idempotency key matched an existing task."),
  },
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
  async handler(args, { principal, deps }) {
    const { idempotency_key, ...request } = args;
    const { kind, pool, payload } = buildTaskRequest(request, deps.config);
    const by = mcpActor(principal);
    const { task, created } = await deps.tasks.create({
      kind,
      pool,
      payload,
      createdBy: by.actor,
      channel: by.channel,
      idempotencyKey: idempotency_key,
    });
    if (created) deps.kick();
    else if (task.kind !== kind || task.pool !== pool || !sameJson(JSON.parse(task.payload), payload)) {
      throw conflict(
        "task.idempotency_conflict",
        `idempotency_key was used for task ${task.id} with a different request; use a new key for a new task`,
      );
    }
    return {
      summary: created
        ? `queued ${task.kind} task ${task.id}`
        : `task ${task.id} already exists for this idempotency key (${task.state})`,
      data: { task: taskView(task), created },
    };
  },
});
