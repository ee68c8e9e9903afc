import type { Config } from "../config/load.ts";
import { findProgram } from "../skills/agent-clis.ts";
import type { SkillProblem } from "../skills/load.ts";
import type { Skill } from "../skills/schema.ts";

// What a newcomer needs to trust a running control plane: where its data and work go, where its
// fixes land, how careful it is, who can approve, which coding agents it can start and which
// skills it has. The start banner prints these facts and the MCP tool system_status returns them;
// both build them here, so they cannot disagree.

export type SetupFacts = {
  mode: "embedded" | "distributed";
  /** `location`: the SQLite file, or the MySQL server and database (never the credentials). */
  store: { dialect: "sqlite" | "mysql"; location: string };
  /** `servers`: the NATS servers (host:port) in distributed mode. */
  queue: { kind: "memory" | "jetstream"; servers: string[] };
  /** `repository`: the local bare repository's path, or owner/name on GitHub. */
  gitops: { provider: "local" | "github"; repository: string; baseBranch: string };
  dryRun: boolean;
  autoApproveMaxRisk: Config["guardrails"]["autoApproveMaxRisk"];
  /** The channels a person can approve a fix through, each with who can use it. */
  approvals: Array<{ channel: "mcp" | "console" | "telegram"; who: string }>;
  /**
   * Every agent of AGENT_COMMANDS with the program it starts and where that program was found on
   * `searchedPath` (null: not found). `default`: AGENT_DEFAULT.
   */
  agentClis: Array<{ agent: string; program: string; path: string | null; default: boolean }>;
  /** `scope`: whose PATH was searched (the in-process runners', or only this host's). */
  agentCliScope: "in-process runners" | "this host only";
  skills: { loaded: string[]; failed: Array<{ file: string; line: number; message: string }> };
};

export type SetupInput = {
  config: Config;
  dialect: "sqlite" | "mysql";
  queueKind: "memory" | "jetstream";
  skills: Skill[];
  skillProblems: SkillProblem[];
  /** The PATH the agent CLIs are looked up on. */
  searchPath: string;
};

/** The facts; reads nothing but the file system (to find the agent CLIs on `searchPath`). */
export function describeSetup(i: SetupInput): SetupFacts {
  const { config } = i;
  const g = config.gitops;
  return {
    mode: i.queueKind === "memory" ? "embedded" : "distributed",
    store: {
      dialect: i.dialect,
      location: config.database.dialect === "sqlite" ? config.database.file : mysqlLocation(config.database.url),
    },
    queue: { kind: i.queueKind, servers: (config.nats?.servers ?? []).map(hostPort) },
    gitops: {
      provider: g.provider,
      repository: g.provider === "local" ? g.repoPath : `${g.owner}/${g.repo}`,
      baseBranch: g.baseBranch,
    },
    dryRun: config.guardrails.dryRun,
    autoApproveMaxRisk: config.guardrails.autoApproveMaxRisk,
    approvals: approvalChannels(config),
    agentClis: Object.entries(config.agents.commands)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([agent, argv]) => ({
        agent,
        program: argv[0]!,
        path: findProgram(argv[0]!, i.searchPath) ?? null,
        default: agent === config.agents.defaultAgent,
      })),
    agentCliScope: i.queueKind === "memory" ? "in-process runners" : "this host only",
    skills: {
      loaded: i.skills.map((s) => s.name),
      failed: i.skillProblems.map((p) => ({ file: p.file, line: p.line, message: p.message })),
    },
  };
}

/** MCP and the console take the same credentials: tokens with the approve (or admin) scope, OIDC. */
function approvalChannels(config: Config): SetupFacts["approvals"] {
  const tokens =
    config.mcp.tokens.length === 0
      ? ["the generated admin token"]
      : config.mcp.tokens.filter((t) => t.scopes.some((s) => s === "approve" || s === "admin")).map((t) => t.name);
  const who = [
    ...(tokens.length ? [`tokens: ${tokens.join(", ")}`] : []),
    ...(config.mcp.oidc ? [`JWTs from ${config.mcp.oidc.issuer} with the approve scope`] : []),
  ].join("; ");
  const out: SetupFacts["approvals"] = [];
  if (who) out.push({ channel: "mcp", who }, { channel: "console", who });
  const t = config.telegram;
  if (t && t.approverIds.length > 0)
    out.push({ channel: "telegram", who: `Telegram users ${t.approverIds.join(", ")} in ${t.defaultChat}` });
  return out;
}

function mysqlLocation(url: string): string {
  try {
    const u = new URL(url);
    return `mysql://${u.host}${u.pathname}`;
  } catch {
    return "mysql";
  }
}

/** nats://user:pass@host:4222 → host:4222 (NATS_URL may carry credentials). */
function hostPort(server: string): string {
  try {
    return new URL(server.includes("://") ? server : `nats://${server}`).host;
  } catch {
    return "nats";
  }
}

/** The banner's lines for these facts. */
export function formatSetup(f: SetupFacts): string[] {
  const row = (name: string, value: string) => `  ${name.padEnd(22)} ${value}`;
  const agent = (a: SetupFacts["agentClis"][number]) =>
    `${a.agent}${a.default ? " (AGENT_DEFAULT)" : ""}: ${a.path ?? `${a.program} not found`}`;
  // MCP and the console usually share their credentials: one entry for both then.
  const byWho = new Map<string, string[]>();
  for (const a of f.approvals) byWho.set(a.who, [...(byWho.get(a.who) ?? []), a.channel]);
  return [
    row("Mode", f.mode),
    row("Store", `${f.store.dialect === "sqlite" ? "SQLite" : "MySQL"} ${f.store.location}`),
    row("Queue", f.queue.kind === "memory" ? "in-process" : `NATS JetStream at ${f.queue.servers.join(", ")}`),
    row("GitOps", `${f.gitops.provider} ${f.gitops.repository}, base branch ${f.gitops.baseBranch}`),
    row("DRY_RUN", f.dryRun ? "on: plans are recorded, nothing is changed" : "off"),
    row("AUTO_APPROVE_MAX_RISK", `${f.autoApproveMaxRisk}: ${autoApproval(f.autoApproveMaxRisk)}`),
    row(
      "Approvals",
      byWho.size
        ? [...byWho].map(([who, channels]) => `${channels.join(", ")} (${who})`).join("; ")
        : "none configured",
    ),
    row(
      "Agent CLIs",
      `${f.agentClis.length ? f.agentClis.map(agent).join("; ") : "none configured"} (PATH of ${f.agentCliScope})`,
    ),
    row("Skills", `${f.skills.loaded.length} loaded${f.skills.loaded.length ? `: ${f.skills.loaded.join(", ")}` : ""}`),
    ...f.skills.failed.map((p) => row("", `not loaded: ${p.file}:${p.line}: ${p.message}`)),
  ];
}

function autoApproval(risk: SetupFacts["autoApproveMaxRisk"]): string {
  if (risk === "read") return "only read-only skills run unattended; every change waits for a person";
  if (risk === "high") return "every fix is approved by policy, none waits for a person";
  return `fixes up to ${risk} risk are approved by policy; riskier ones wait for a person`;
}
