import { hostname } from "node:os";
import { resolve } from "node:path";
import { z } from "zod";
import { ConfigError } from "./error.ts";
import { bool, duration, int, labelList, optionalString, regex } from "./fields.ts";
import {
  parseAgentCommands,
  parseDatabase,
  parseGitops,
  parseMcpTokens,
  parseNatsServers,
  parseOidc,
  parseConsoleOidc,
  parseOrigins,
  parseTelegram,
  type McpToken,
  type TelegramRoute,
} from "./parse.ts";

export { ConfigError } from "./error.ts";
export { DEFAULT_AGENT_COMMANDS, MCP_SCOPES, type McpToken, type TelegramRoute } from "./parse.ts";

// Values that must never be echoed back in an error line.
const SECRET_VARS = new Set([
  "DATABASE_URL",
  "NATS_URL",
  "NATS_TOKEN",
  "NATS_PASSWORD",
  "ALERTMANAGER_TOKEN",
  "ANTHROPIC_API_KEY",
  "ARGOCD_TOKEN",
  "GITHUB_TOKEN",
  "GITHUB_APP_PRIVATE_KEY",
  "MCP_TOKENS",
  "TELEGRAM_BOT_TOKEN",
  "TELEGRAM_WEBHOOK_SECRET",
  "CONSOLE_OIDC_CLIENT_SECRET",
]);

export const Env = z.object({
  PORT: int(18088, 1, 65535),
  HOST: z.string().min(1).default("0.0.0.0"),
  PUBLIC_URL: optionalString.pipe(z.url({ message: "expected an absolute http(s) URL" }).optional()),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  LOG_FORMAT: z.enum(["json", "pretty"], { message: 'expected "json" or "pretty"' }).default("json"),
  DATA_DIR: z.string().min(1).default("./data"),
  DATABASE_URL: optionalString,
  DB_POOL_SIZE: int(10, 1, 500),
  NATS_URL: optionalString,
  NATS_TOKEN: optionalString,
  NATS_USER: optionalString,
  NATS_PASSWORD: optionalString,
  NATS_STREAM_REPLICAS: int(1, 1, 5),
  NATS_PREFIX: z
    .string()
    .regex(/^[a-z][a-z0-9_]{0,31}$/, "expected a lowercase name ([a-z0-9_], up to 32 chars)")
    .default("pitcrew"),
  EVENTS_MAX_AGE: duration("7d", 60_000),
  TASK_ACK_WAIT: duration("30s", 1000),
  TASK_MAX_DELIVER: int(5, 1, 100),
  RUNNER_CONCURRENCY: int(2, 1, 256),
  RUNNER_POOL: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, "expected a lowercase name ([a-z0-9_-], up to 63 chars)")
    .refine(
      (v) => v !== "control",
      'the pool "control" carries the control plane\'s analysis jobs; choose another name',
    )
    .default("default"),
  RUNNER_ID: optionalString.pipe(
    z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,120}$/, "expected [A-Za-z0-9_-], up to 120 chars")
      .optional(),
  ),
  HEARTBEAT_INTERVAL: duration("10s", 100),
  BODY_LIMIT: int(1_048_576, 1024, 64 * 1_048_576),
  BODY_TIMEOUT: duration("30s", 1000),
  SHUTDOWN_TIMEOUT: duration("15s", 100),
  OUTBOX_INTERVAL: duration("250ms", 10),
  OUTBOX_BATCH: int(100, 1, 10_000),
  OUTBOX_RETENTION: duration("1d", 1000),
  ALERTMANAGER_TOKEN: optionalString.pipe(z.string().min(16, "expected at least 16 characters").optional()),
  ALERTMANAGER_AUTH: z.enum(["token", "none"], { message: 'expected "token" or "none"' }).default("token"),
  ALERTMANAGER_USER: z.string().min(1).default("alertmanager"),
  ALERTMANAGER_BODY_LIMIT: int(32 * 1_048_576, 1024, 1024 * 1_048_576),
  ALERTMANAGER_MAX_ALERTS: int(50_000, 1, 1_000_000),
  LABEL_NAMESPACE: labelList("namespace,exported_namespace"),
  LABEL_SERVICE: labelList("deployment,statefulset,daemonset,horizontalpodautoscaler,job_name,pod,service,job"),
  LABEL_SERVICE_IGNORE: regex(
    "^(kube-state-metrics|kubelet|cadvisor|node-exporter|blackbox-exporter|prometheus|alertmanager|.*-exporter)$",
  ),
  LABEL_SEVERITY: labelList("severity"),
  FLAP_WINDOW: duration("30m", 1000),
  FLAP_LIMIT: int(3, 0, 1000),
  DRY_RUN: bool(false),
  MAX_PRS_PER_HOUR: int(5, 0, 10_000),
  MAX_PRS_PER_DAY: int(20, 0, 100_000),
  MAX_FIXES_PER_NAMESPACE: int(2, 1, 1000),
  MAX_FAILED_FIXES: int(3, 1, 1000),
  STUCK_AFTER: duration("10m", 1000),
  SWEEP_INTERVAL: duration("30s", 100),
  SWEEP_MAX_RETRIES: int(3, 0, 100),
  SKILLS_DIR: z.string().min(1).default("./skills"),
  SKILLS_SYNC_INTERVAL: duration("5s", 100),
  ANALYSIS_CONCURRENCY: int(4, 1, 64),
  ANTHROPIC_API_KEY: optionalString,
  ANTHROPIC_MODEL: z.string().min(1).default("claude-sonnet-5-5"),
  ANTHROPIC_MAX_TOKENS: int(1024, 64, 32_000),
  ANTHROPIC_TIMEOUT: duration("20s", 1000),
  ANTHROPIC_BASE_URL: optionalString.pipe(z.url({ message: "expected an absolute http(s) URL" }).optional()),
  ARGOCD_URL: optionalString.pipe(z.url({ message: "expected an absolute http(s) URL" }).optional()),
  ARGOCD_TOKEN: optionalString,
  ARGOCD_TIMEOUT: duration("10s", 100),
  GITOPS_PROVIDER: z.enum(["local", "github"], { message: 'expected "local" or "github"' }).default("local"),
  GITOPS_REPO: optionalString,
  GITOPS_BASE_BRANCH: z
    .string()
    .regex(/^[A-Za-z0-9._/-]{1,200}$/, "expected a branch name")
    .default("main"),
  GITHUB_TOKEN: optionalString,
  GITHUB_APP_ID: optionalString,
  GITHUB_APP_PRIVATE_KEY: optionalString,
  GITHUB_APP_INSTALLATION_ID: optionalString,
  GITHUB_API_URL: optionalString.pipe(z.url({ message: "expected an absolute http(s) URL" }).optional()),
  GITOPS_DELETE_MERGED_BRANCHES: bool(true),
  ALLOWED_REPOS: optionalString,
  GIT_AUTHOR_NAME: z.string().min(1).default("Pitcrew"),
  GIT_AUTHOR_EMAIL: z.string().min(3).default("pitcrew@localhost"),
  AGENT_COMMANDS: optionalString,
  AGENT_DEFAULT: z.string().min(1).default("claude-code"),
  AGENT_ALLOW_ENV: labelList("ANTHROPIC_API_KEY"),
  AGENT_TIMEOUT: duration("30m", 1000),
  AGENT_UID: optionalString.pipe(
    z
      .string()
      .regex(/^\d{1,10}$/, "expected a numeric user id")
      .optional(),
  ),
  AGENT_GID: optionalString.pipe(
    z
      .string()
      .regex(/^\d{1,10}$/, "expected a numeric group id")
      .optional(),
  ),
  AUTO_APPROVE_MAX_RISK: z
    .enum(["read", "low", "medium", "high"], { message: "expected read, low, medium or high" })
    .default("read"),
  MCP_TOKENS: optionalString,
  MCP_OIDC_ISSUER: optionalString.pipe(z.url({ message: "expected an absolute http(s) URL" }).optional()),
  MCP_OIDC_AUDIENCE: optionalString,
  MCP_OIDC_JWKS_URL: optionalString.pipe(z.url({ message: "expected an absolute http(s) URL" }).optional()),
  MCP_OIDC_SCOPE_CLAIM: z.string().min(1).default("scope"),
  MCP_ALLOWED_ORIGINS: optionalString,
  TELEGRAM_BOT_TOKEN: optionalString.pipe(
    z
      .string()
      .regex(/^\d{1,20}:[A-Za-z0-9_-]{20,}$/, "expected a bot token like 123456:ABC-DEF… (from @BotFather)")
      .optional(),
  ),
  TELEGRAM_CHAT_ID: optionalString.pipe(
    z
      .string()
      .regex(
        /^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{3,31})$/,
        "expected a numeric chat id (e.g. -1001234567890) or @channelname",
      )
      .optional(),
  ),
  TELEGRAM_ROUTES: optionalString,
  TELEGRAM_APPROVER_IDS: optionalString,
  TELEGRAM_WEBHOOK_SECRET: optionalString.pipe(
    z
      .string()
      .regex(/^[A-Za-z0-9_-]{16,256}$/, "expected 16 to 256 characters of A-Z, a-z, 0-9, _ and -")
      .optional(),
  ),
  TELEGRAM_API_ROOT: optionalString.pipe(z.url({ message: "expected an absolute http(s) URL" }).optional()),
  CONSOLE_SESSION_TTL: duration("12h", 60_000),
  CONSOLE_OIDC_CLIENT_ID: optionalString,
  CONSOLE_OIDC_CLIENT_SECRET: optionalString,
  SCHEDULES_DIR: z.string().min(1).default("./schedules"),
  WEBHOOKS_DIR: z.string().min(1).default("./webhooks"),
  WEBHOOK_ALLOW_PRIVATE: bool(false),
  WEBHOOK_TIMEOUT: duration("10s", 100),
  WEBHOOK_LEASE_TTL: duration("30m", 1000),
  NOTIFY_MIN_SEVERITY: z
    .enum(["info", "warning", "critical"], { message: "expected info, warning or critical" })
    .default("warning"),
});

export type Database = { dialect: "sqlite"; file: string } | { dialect: "mysql"; url: string; poolSize: number };

export type Config = {
  port: number;
  host: string;
  publicUrl: string;
  logLevel: z.infer<typeof Env>["LOG_LEVEL"];
  /** `json` for log collectors, `pretty` (pino-pretty) for a terminal. */
  logFormat: z.infer<typeof Env>["LOG_FORMAT"];
  dataDir: string;
  database: Database;
  /** `prefix` names the subjects (`<prefix>.tasks.<pool>`) and streams (`<PREFIX>_TASKS`). */
  nats?: { servers: string[]; token?: string; user?: string; password?: string; replicas: number; prefix: string };
  eventsMaxAgeMs: number;
  task: { ackWaitMs: number; maxDeliver: number };
  runner: { concurrency: number; pool: string; id: string; heartbeatMs: number };
  bodyLimit: number;
  /** BODY_TIMEOUT: time allowed to receive a whole request (headers and body); a slower one gets 408. */
  requestTimeoutMs: number;
  shutdownTimeoutMs: number;
  outbox: { intervalMs: number; batch: number; retentionMs: number };
  /** `bodyLimit` and `maxAlerts` apply to the webhook route only (AlertManager sends whole groups). */
  alertmanager: { auth: "token" | "none"; token?: string; user: string; bodyLimit: number; maxAlerts: number };
  /** `serviceIgnore`: values of the service labels that name a scraping exporter, never the workload. */
  labels: { namespace: string[]; service: string[]; severity: string[]; serviceIgnore: RegExp };
  guardrails: {
    dryRun: boolean;
    flapWindowMs: number;
    flapLimit: number;
    maxPrsPerHour: number;
    maxPrsPerDay: number;
    maxFixesPerNamespace: number;
    maxFailedFixes: number;
    autoApproveMaxRisk: "read" | "low" | "medium" | "high";
  };
  /** The sweeper: incidents whose work stopped being in flight for `stuckAfterMs` are re-queued, up to `maxRetries` times. */
  sweep: { stuckAfterMs: number; intervalMs: number; maxRetries: number };
  skillsDir: string;
  /** How often a control plane checks the shared skill set's version. */
  skillsSyncIntervalMs: number;
  analysisConcurrency: number;
  /** Set when ANTHROPIC_API_KEY is: the Claude planner, with rules as its fallback. */
  anthropic?: { apiKey: string; model: string; maxTokens: number; timeoutMs: number; baseURL?: string };
  /** Set when ARGOCD_URL and ARGOCD_TOKEN are: the drift skill's Argo CD API. */
  argocd?: { baseUrl: string; token: string; timeoutMs: number };
  gitops:
    | {
        provider: "local";
        repoPath: string;
        baseBranch: string;
        author: { name: string; email: string };
        deleteMergedBranches: boolean;
      }
    | {
        provider: "github";
        owner: string;
        repo: string;
        baseBranch: string;
        author: { name: string; email: string };
        deleteMergedBranches: boolean;
        apiUrl?: string;
        token?: string;
        app?: { appId: string; privateKey: string; installationId: string };
      };
  /** `uid`/`gid`: the identity agent processes run as (a runner started as root drops to it). */
  agents: {
    commands: Record<string, string[]>;
    defaultAgent: string;
    allowEnv: string[];
    timeoutMs: number;
    uid?: number;
    gid?: number;
  };
  /** Repositories a task may name (ALLOWED_REPOS); empty means only the configured GitOps repository. */
  allowedRepos: string[];
  mcp: {
    /** From MCP_TOKENS; empty means one admin token is generated in `<dataDir>/secrets/mcp.token`. */
    tokens: McpToken[];
    /**
     * Set when MCP_OIDC_ISSUER is: JWTs from that issuer are accepted when their `aud` names
     * `resource` (`<PUBLIC_URL>/mcp`) or `audience` (MCP_OIDC_AUDIENCE, else the resource).
     */
    oidc?: { issuer: string; audience: string; resource: string; jwksUrl?: string; scopeClaim: string };
    /** Origins (`scheme://host[:port]`) whose browser requests /mcp accepts. */
    allowedOrigins: string[];
  };
  /**
   * Set when TELEGRAM_BOT_TOKEN is. `mode`: a webhook when PUBLIC_URL is https, else long polling.
   * `routes`: the first route whose label has that value sends an incident to its chat, else `defaultChat`.
   */
  telegram?: {
    token: string;
    defaultChat: string;
    routes: TelegramRoute[];
    approverIds: number[];
    webhookSecret?: string;
    apiRoot: string;
    mode: "webhook" | "polling";
  };
  /** Which incidents' openings are announced (approvals, merges, resolves and escalations always are). */
  notify: { minSeverity: "info" | "warning" | "critical" };
  /** The web console: session lifetime, and sign-in through MCP_OIDC_ISSUER when a client id is set. */
  console: { sessionTtlMs: number; oidc?: { clientId: string; clientSecret?: string } };
  /** Folder of schedule files (`*.yaml`). */
  schedulesDir: string;
  /** Signed webhooks to external agents. */
  webhooks: { dir: string; allowPrivate: boolean; timeoutMs: number; leaseTtlMs: number };
};

/** The single reader of configuration. Throws ConfigError with one line naming the variable. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  // REQUEST_TIMEOUT: BODY_TIMEOUT's former name, still read when BODY_TIMEOUT is not set.
  const formerBodyTimeout = env.BODY_TIMEOUT === undefined && env.REQUEST_TIMEOUT !== undefined;
  const parsed = Env.safeParse(formerBodyTimeout ? { ...env, BODY_TIMEOUT: env.REQUEST_TIMEOUT } : env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      let name = String(issue.path[0] ?? "config");
      if (name === "BODY_TIMEOUT" && formerBodyTimeout) name = "REQUEST_TIMEOUT";
      const raw = env[name];
      const got = raw !== undefined && !SECRET_VARS.has(name) ? ` (got ${JSON.stringify(raw)})` : "";
      return `${name}: ${issue.message}${got}`;
    });
    throw new ConfigError(lines.join("; "));
  }
  const e = parsed.data;
  if ((e.ARGOCD_URL === undefined) !== (e.ARGOCD_TOKEN === undefined)) {
    throw new ConfigError("ARGOCD_URL/ARGOCD_TOKEN: set both or neither");
  }
  if ((e.NATS_USER === undefined) !== (e.NATS_PASSWORD === undefined)) {
    throw new ConfigError("NATS_USER/NATS_PASSWORD: set both or neither");
  }
  const dataDir = resolve(e.DATA_DIR);
  const publicUrl = (e.PUBLIC_URL ?? `http://localhost:${e.PORT}`).replace(/\/+$/, "");
  return {
    port: e.PORT,
    host: e.HOST,
    publicUrl,
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
    dataDir,
    database: parseDatabase(e.DATABASE_URL, dataDir, e.DB_POOL_SIZE),
    nats: e.NATS_URL
      ? {
          servers: parseNatsServers(e.NATS_URL),
          token: e.NATS_TOKEN,
          user: e.NATS_USER,
          password: e.NATS_PASSWORD,
          replicas: e.NATS_STREAM_REPLICAS,
          prefix: e.NATS_PREFIX,
        }
      : undefined,
    eventsMaxAgeMs: e.EVENTS_MAX_AGE,
    task: { ackWaitMs: e.TASK_ACK_WAIT, maxDeliver: e.TASK_MAX_DELIVER },
    runner: {
      concurrency: e.RUNNER_CONCURRENCY,
      pool: e.RUNNER_POOL,
      id:
        e.RUNNER_ID ??
        `${hostname()
          .replace(/[^A-Za-z0-9_-]/g, "-")
          .slice(0, 80)}-${process.pid}`,
      heartbeatMs: e.HEARTBEAT_INTERVAL,
    },
    bodyLimit: e.BODY_LIMIT,
    requestTimeoutMs: e.BODY_TIMEOUT,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT,
    outbox: { intervalMs: e.OUTBOX_INTERVAL, batch: e.OUTBOX_BATCH, retentionMs: e.OUTBOX_RETENTION },
    alertmanager: {
      auth: e.ALERTMANAGER_AUTH,
      token: e.ALERTMANAGER_TOKEN,
      user: e.ALERTMANAGER_USER,
      bodyLimit: e.ALERTMANAGER_BODY_LIMIT,
      maxAlerts: e.ALERTMANAGER_MAX_ALERTS,
    },
    labels: {
      namespace: e.LABEL_NAMESPACE,
      service: e.LABEL_SERVICE,
      severity: e.LABEL_SEVERITY,
      serviceIgnore: e.LABEL_SERVICE_IGNORE,
    },
    guardrails: {
      dryRun: e.DRY_RUN,
      flapWindowMs: e.FLAP_WINDOW,
      flapLimit: e.FLAP_LIMIT,
      maxPrsPerHour: e.MAX_PRS_PER_HOUR,
      maxPrsPerDay: e.MAX_PRS_PER_DAY,
      maxFixesPerNamespace: e.MAX_FIXES_PER_NAMESPACE,
      maxFailedFixes: e.MAX_FAILED_FIXES,
      autoApproveMaxRisk: e.AUTO_APPROVE_MAX_RISK,
    },
    sweep: { stuckAfterMs: e.STUCK_AFTER, intervalMs: e.SWEEP_INTERVAL, maxRetries: e.SWEEP_MAX_RETRIES },
    skillsDir: resolve(e.SKILLS_DIR),
    skillsSyncIntervalMs: e.SKILLS_SYNC_INTERVAL,
    analysisConcurrency: e.ANALYSIS_CONCURRENCY,
    anthropic: e.ANTHROPIC_API_KEY
      ? {
          apiKey: e.ANTHROPIC_API_KEY,
          model: e.ANTHROPIC_MODEL,
          maxTokens: e.ANTHROPIC_MAX_TOKENS,
          timeoutMs: e.ANTHROPIC_TIMEOUT,
          baseURL: e.ANTHROPIC_BASE_URL,
        }
      : undefined,
    gitops: parseGitops(e, dataDir),
    agents: {
      commands: parseAgentCommands(e.AGENT_COMMANDS),
      defaultAgent: e.AGENT_DEFAULT,
      allowEnv: e.AGENT_ALLOW_ENV,
      timeoutMs: e.AGENT_TIMEOUT,
      uid: e.AGENT_UID === undefined ? undefined : Number(e.AGENT_UID),
      gid: e.AGENT_GID === undefined ? undefined : Number(e.AGENT_GID),
    },
    allowedRepos: (e.ALLOWED_REPOS ?? "")
      .split(",")
      .map((r) => r.trim())
      .filter(Boolean),
    argocd:
      e.ARGOCD_URL && e.ARGOCD_TOKEN
        ? { baseUrl: e.ARGOCD_URL, token: e.ARGOCD_TOKEN, timeoutMs: e.ARGOCD_TIMEOUT }
        : undefined,
    mcp: {
      tokens: parseMcpTokens(e.MCP_TOKENS),
      oidc: parseOidc(e, publicUrl),
      allowedOrigins: parseOrigins(e.MCP_ALLOWED_ORIGINS),
    },
    telegram: parseTelegram(e, publicUrl),
    notify: { minSeverity: e.NOTIFY_MIN_SEVERITY },
    console: { sessionTtlMs: e.CONSOLE_SESSION_TTL, oidc: parseConsoleOidc(e) },
    schedulesDir: resolve(e.SCHEDULES_DIR),
    webhooks: {
      dir: resolve(e.WEBHOOKS_DIR),
      allowPrivate: e.WEBHOOK_ALLOW_PRIVATE,
      timeoutMs: e.WEBHOOK_TIMEOUT,
      leaseTtlMs: e.WEBHOOK_LEASE_TTL,
    },
  };
}
