import { z } from "zod";
import { defineTool } from "../tool.ts";
import { errorMessage } from "../../shared/errors.ts";
import { VERSION } from "../../shared/version.ts";
import { getPause } from "../../system/settings.ts";
import { describeSetup } from "../../system/setup.ts";
import { publishedSkillProblems } from "../../skills/sync.ts";

const Check = z.object({
  ok: z.boolean().describe("Whether the dependency answered."),
  detail: z.string().describe('"ok", or what went wrong.'),
});

export const systemStatus = defineTool({
  name: "system_status",
  title: "System status",
  description:
    "Shows the version, the mode (embedded or distributed), whether the store and the queue answer, whether automation is paused, and the setup the start banner shows: the GitOps provider, repository and base branch, DRY_RUN, AUTO_APPROVE_MAX_RISK, the approval channels configured, the agent CLIs found, the skills loaded and those that failed to load.",
  scope: "read",
  input: {},
  output: {
    version: z.string().describe("Pitcrew version."),
    mode: z
      .enum(["embedded", "distributed"])
      .describe("embedded: in-process queue and runners; distributed: NATS JetStream and separate runners."),
    store: Check.extend({
      dialect: z.enum(["sqlite", "mysql"]).describe("The database kind."),
      location: z.string().describe("The SQLite file, or the MySQL server and database (no credentials)."),
    }).describe("The database."),
    queue: Check.extend({
      kind: z.enum(["memory", "jetstream"]).describe("The queue adapter."),
      servers: z.array(z.string()).describe("The NATS servers (host:port); empty for the in-process queue."),
    }).describe("The task queue."),
    gitops: z
      .object({
        provider: z.enum(["local", "github"]).describe("GITOPS_PROVIDER."),
        repository: z.string().describe("The local bare repository's path, or owner/name on GitHub."),
        base_branch: z.string().describe("GITOPS_BASE_BRANCH: where fixes are merged."),
      })
      .describe("Where fixes land."),
    dry_run: z.boolean().describe("DRY_RUN: plans are recorded and nothing is changed."),
    auto_approve_max_risk: z
      .enum(["read", "low", "medium", "high"])
      .describe("AUTO_APPROVE_MAX_RISK: fixes up to this risk are approved by policy; riskier ones wait for a person."),
    approval_channels: z
      .array(
        z.object({
          channel: z.enum(["mcp", "console", "telegram"]).describe("Where a person can approve."),
          who: z.string().describe("Who can approve there."),
        }),
      )
      .describe("The channels a person can approve a fix through; empty when none is configured."),
    agent_clis: z
      .array(
        z.object({
          agent: z.string().describe("The AGENT_COMMANDS name."),
          program: z.string().describe("The program its command starts."),
          path: z.string().nullable().describe("Where the program was found on PATH; null when it was not."),
          default: z.boolean().describe("Whether this is AGENT_DEFAULT."),
        }),
      )
      .describe("The coding agents of AGENT_COMMANDS and whether their programs were found."),
    agent_cli_scope: z
      .enum(["in-process runners", "this host only"])
      .describe("Whose PATH was searched: the in-process runners' (embedded), or only this host's (distributed)."),
    skills: z
      .object({
        loaded: z.array(z.string()).describe("The names of the skills in use."),
        failed: z
          .array(
            z.object({
              file: z.string().describe("The skill file."),
              line: z.number().int().describe("The line of the problem."),
              message: z.string().describe("Why it did not load."),
            }),
          )
          .describe("Skill files that did not load when the set in use was published."),
      })
      .describe("The skills."),
    paused: z
      .object({
        paused: z
          .boolean()
          .describe("Whether automation is paused (incidents are recorded but not analysed or fixed)."),
        by: z.string().nullable().describe("Who paused or resumed last."),
        at: z.string().nullable().describe("ISO time of that change."),
        reason: z.string().nullable().describe("The reason given."),
      })
      .nullable()
      .describe("The pause switch; null when the store did not answer."),
    missing_agent_clis: z
      .array(
        z.object({
          agent: z.string().describe("The agent name (a skill's agent.command, or AGENT_DEFAULT)."),
          program: z
            .string()
            .nullable()
            .describe("The program its AGENT_COMMANDS template starts; null when AGENT_COMMANDS has no such agent."),
          skills: z.array(z.string()).describe("The loaded skills that use it."),
          hint: z.string().describe("How to fix it."),
        }),
      )
      .optional()
      .describe(
        "Present when loaded skills need agent CLIs that the in-process runners (embedded mode) cannot find on their PATH. Standalone runners check their own PATH at start and log what is missing.",
      ),
  },
  annotations: { readOnlyHint: true, openWorldHint: false },
  async handler(_args, { deps }) {
    const [store, queue] = await Promise.allSettled([deps.store.ping(1500), deps.queue.health()]);
    const storeCheck =
      store.status === "fulfilled" ? { ok: true, detail: "ok" } : { ok: false, detail: errorMessage(store.reason) };
    const queueCheck =
      queue.status === "rejected"
        ? { ok: false, detail: errorMessage(queue.reason) }
        : queue.value.ok
          ? { ok: true, detail: "ok" }
          : { ok: false, detail: queue.value.reason };
    const pause = storeCheck.ok ? await getPause(deps.store.db).catch(() => null) : null;
    const paused = pause && { ...pause, at: pause.at === null ? null : new Date(pause.at).toISOString() };
    const mode: "embedded" | "distributed" = deps.queue.kind === "memory" ? "embedded" : "distributed";
    const health =
      storeCheck.ok && queueCheck.ok
        ? "healthy"
        : `degraded (${[!storeCheck.ok && `store: ${storeCheck.detail}`, !queueCheck.ok && `queue: ${queueCheck.detail}`].filter(Boolean).join("; ")})`;
    const missing = deps.missingAgentClis?.() ?? [];
    const setup = describeSetup({
      config: deps.config,
      dialect: deps.store.dialect,
      queueKind: deps.queue.kind,
      skills: deps.skills(),
      skillProblems: storeCheck.ok ? await publishedSkillProblems(deps.store.db).catch(() => []) : [],
      // The in-process runners inherit this PATH (the banner reads the same).
      searchPath: process.env.PATH ?? "",
    });
    const pauseText =
      paused === null
        ? "pause state unknown"
        : paused.paused
          ? `automation PAUSED${paused.reason ? ` (${paused.reason})` : ""}`
          : "automation running";
    return {
      summary: `Pitcrew ${VERSION}, ${mode}: ${health}; ${pauseText}; ${setupText(setup)}${missing.length ? `; agent CLI not installed: ${missing.map((m) => `${m.program ?? m.agent} (${m.skills.join(", ")})`).join("; ")}` : ""}`,
      data: {
        version: VERSION,
        mode,
        store: { ...storeCheck, dialect: deps.store.dialect, location: setup.store.location },
        queue: { ...queueCheck, kind: deps.queue.kind, servers: setup.queue.servers },
        paused,
        gitops: {
          provider: setup.gitops.provider,
          repository: setup.gitops.repository,
          base_branch: setup.gitops.baseBranch,
        },
        dry_run: setup.dryRun,
        auto_approve_max_risk: setup.autoApproveMaxRisk,
        approval_channels: setup.approvals,
        agent_clis: setup.agentClis,
        agent_cli_scope: setup.agentCliScope,
        skills: setup.skills,
        ...(missing.length
          ? {
              missing_agent_clis: missing.map((m) => ({
                agent: m.agent,
                program: m.program ?? null,
                skills: m.skills,
                hint: m.hint,
              })),
            }
          : {}),
      },
    };
  },
});

/** One sentence of the setup for the text answer (the structured answer has it all). */
function setupText(f: ReturnType<typeof describeSetup>): string {
  const channels = [...new Set(f.approvals.map((a) => a.channel))];
  return [
    `fixes go to ${f.gitops.provider} ${f.gitops.repository} (${f.gitops.baseBranch})`,
    `DRY_RUN ${f.dryRun ? "on" : "off"}`,
    `AUTO_APPROVE_MAX_RISK ${f.autoApproveMaxRisk}`,
    `approvals through ${channels.length ? channels.join(", ") : "no channel"}`,
    `${f.skills.loaded.length} skills loaded${f.skills.failed.length ? `, ${f.skills.failed.length} failed to load` : ""}`,
  ].join("; ");
}
