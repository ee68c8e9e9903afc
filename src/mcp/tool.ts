import type { z } from "zod";
import type { Config } from "../config/load.ts";
import type { TaskQueue } from "../bus/port.ts";
import type { Logger } from "../shared/logger.ts";
import type { Store } from "../store/db.ts";
import type { TaskService } from "../tasks/service.ts";
import type { Skill } from "../skills/schema.ts";
import type { SkillProblem } from "../skills/load.ts";
import type { GitHost } from "../gitops/port.ts";
import type { AnalysisOutcome } from "../incidents/analysis.ts";
import type { InlineDeps } from "../skills/inline.ts";
import type { ScheduleService } from "../schedules/service.ts";
import type { Scheduler } from "../schedules/scheduler.ts";
import type { MissingAgentCli } from "../skills/agent-clis.ts";
import type { ApprovalService } from "../approvals/service.ts";
import type { ToolNotifier } from "./logging.ts";

// The contract between the MCP server (server.ts) and its tools (tools/<verb-noun>.ts): one file
// per tool, each a `defineTool(...)` with zod input and output shapes (every field described), the
// scope it needs, and a handler that returns a short text summary plus structured data.
//
// One vocabulary across tools:
// - An object's own id is `id` in its view (`incident.id`); a reference to another object is
//   `<kind>_id` (`incident_id`, `task_id`, `approval_id`, `delivery_id`), the same in inputs and
//   outputs. Named things (skills, schedules, webhook targets) go by `name`, referenced by kind
//   (`skill`, `target`).
// - Times in outputs are ISO 8601 strings (`…_at`); durations say their unit (`jitter_ms`).
// - An unknown id is `<kind>.not_found`; a cursor that is not a `next_cursor` is `<kind>.bad_cursor`.
// - Inputs are strict: an argument a tool does not declare is refused (-32602), as is one that does
//   not fit; what a tool refuses after that is an `isError` result ending in its Pitcrew code.
// - Nullable output fields are `T | null` (JSON Schema `type: [T, "null"]` or `anyOf` with null);
//   objects whose shape is known are spelled out.

export type Scope = "read" | "write" | "approve" | "admin";

/** Who is calling: a configured or generated token, or an OIDC JWT. `admin` implies every scope; `approve` implies `read` (an approver must see what they decide). */
export type Principal = { subject: string; scopes: ReadonlySet<Scope>; via: "token" | "jwt" };

export type McpDeps = {
  config: Config;
  log: Logger;
  store: Store;
  queue: TaskQueue;
  tasks: TaskService;
  now: () => number;
  skills: () => Skill[];
  /** Reads the skills folder and publishes the set to every control plane. */
  reloadSkills: (by: {
    actor: string;
    channel: string;
  }) => Promise<{ skills: Skill[]; problems: SkillProblem[]; published: boolean }>;
  /** Runs analysis for an incident now (the analysis worker's analyze()). */
  analyze: (incidentId: string) => Promise<AnalysisOutcome>;
  /** The pull-request host, for approving merges; absent when none is configured. */
  gitHost?: GitHost;
  /** What inline skills (probe, drift, http) need; without it they run with Argo CD from config and no secrets. */
  inline?: InlineDeps;
  /** The approvals service (the same one whose merge and pull-request jobs the control plane runs); built from these deps when absent. */
  approvals?: ApprovalService;
  /** Agent CLIs the loaded skills need that the in-process runners cannot find (embedded mode only). */
  missingAgentClis?: () => MissingAgentCli[];
  /** Schedules: files and MCP schedules, and the scheduler (run now). */
  schedules?: { service: ScheduleService; scheduler: Pick<Scheduler, "runNow"> };
  /** Wakes the outbox relay after a commit that queued work. */
  kick: () => void;
};

/** `notify`: progress and log messages to the caller while the tool runs (see logging.ts); absent outside MCP. */
export type ToolContext = { principal: Principal; deps: McpDeps; notify?: ToolNotifier };

export type ToolResult<O> = { summary: string; data: O };

export type ToolDef<I extends z.ZodRawShape = z.ZodRawShape, O extends z.ZodRawShape = z.ZodRawShape> = {
  name: string;
  title: string;
  description: string;
  scope: Scope;
  input: I;
  output: O;
  /**
   * MCP tool annotations, as true as we can make them: readOnlyHint (changes nothing),
   * destructiveHint (may cancel, delete or close something), idempotentHint (a repeat with the same
   * arguments changes nothing more), openWorldHint (reaches systems outside Pitcrew's store: a git
   * host, a runner's agent, a probed URL, a webhook receiver).
   */
  annotations: { readOnlyHint: boolean; destructiveHint?: boolean; idempotentHint?: boolean; openWorldHint: boolean };
  // A method, not a property: its parameters are then checked bivariantly, so every
  // `defineTool(...)` fits in a plain `ToolDef[]` (the server validates args against `input`, strictly).
  handler(args: z.infer<z.ZodObject<I>>, ctx: ToolContext): Promise<ToolResult<z.infer<z.ZodObject<O>>>>;
};

export function defineTool<I extends z.ZodRawShape, O extends z.ZodRawShape>(def: ToolDef<I, O>): ToolDef<I, O> {
  return def;
}

export function hasScope(p: Pick<Principal, "scopes">, scope: Scope): boolean {
  return p.scopes.has("admin") || p.scopes.has(scope) || (scope === "read" && p.scopes.has("approve"));
}
