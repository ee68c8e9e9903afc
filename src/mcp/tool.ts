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

// The contract between the MCP server (server.ts) and its tools (tools/<verb-noun>.ts): one file
// per tool, each a `defineTool(...)` with zod input and output shapes (every field described), the
// scope it needs, and a handler that returns a short text summary plus structured data.

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
  reloadSkills: (by: { actor: string; channel: string }) => Promise<{ skills: Skill[]; problems: SkillProblem[]; published: boolean }>;
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

export type ToolContext = { principal: Principal; deps: McpDeps };

export type ToolResult<O> = { summary: string; data: O };

export type ToolDef<I extends z.ZodRawShape = z.ZodRawShape, O extends z.ZodRawShape = z.ZodRawShape> = {
  name: string;
  title: string;
  description: string;
  scope: Scope;
  input: I;
  output: O;
  /** MCP tool annotations: readOnlyHint, destructiveHint, idempotentHint. */
  annotations?: { readOnlyHint?: boolean; destructiveHint?: boolean; idempotentHint?: boolean };
  // A method, not a property: its parameters are then checked bivariantly, so every
  // `defineTool(...)` fits in a plain `ToolDef[]` (the server validates args against `input`).
  handler(args: z.infer<z.ZodObject<I>>, ctx: ToolContext): Promise<ToolResult<z.infer<z.ZodObject<O>>>>;
};

export function defineTool<I extends z.ZodRawShape, O extends z.ZodRawShape>(def: ToolDef<I, O>): ToolDef<I, O> {
  return def;
}

export function hasScope(p: Pick<Principal, "scopes">, scope: Scope): boolean {
  return p.scopes.has("admin") || p.scopes.has(scope) || (scope === "read" && p.scopes.has("approve"));
}
