import { isAbsolute, resolve } from "node:path";
import { z } from "zod";
import { ConfigError } from "./error.ts";
import type { Config, Database, Env } from "./load.ts";

export const MCP_SCOPES = ["read", "write", "approve", "admin"] as const;
export type McpToken = { name: string; token: string; scopes: (typeof MCP_SCOPES)[number][] };

// Cross-field parsing of settings that a single zod field cannot express.

export function parseDatabase(url: string | undefined, dataDir: string, poolSize: number): Database {
  if (!url) return { dialect: "sqlite", file: resolve(dataDir, "pitcrew.db") };
  if (url.startsWith("mysql://")) {
    try {
      new URL(url);
    } catch {
      throw new ConfigError("DATABASE_URL: not a valid mysql:// URL");
    }
    return { dialect: "mysql", url, poolSize };
  }
  if (url.startsWith("sqlite:")) {
    const path = url.slice("sqlite:".length).replace(/^\/\//, "");
    if (!path) throw new ConfigError("DATABASE_URL: sqlite: needs a file path, e.g. sqlite:./data/pitcrew.db");
    return { dialect: "sqlite", file: isAbsolute(path) ? path : resolve(path) };
  }
  throw new ConfigError("DATABASE_URL: expected mysql://user:pass@host:3306/db or sqlite:<file>");
}

export function parseNatsServers(value: string): string[] {
  const servers = value
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const s of servers) {
    if (!/^(nats|tls|ws|wss):\/\/[^\s]+$/.test(s) && !/^[^\s/:]+:\d+$/.test(s)) {
      throw new ConfigError("NATS_URL: expected nats://host:4222 (comma-separated for a cluster)");
    }
  }
  if (servers.length === 0) throw new ConfigError("NATS_URL: no server given");
  return servers;
}

// Argument templates: each element is one argv entry; {{prompt}}, {{model}}, {{workdir}} are
// replaced as whole values, never through a shell.
export const DEFAULT_AGENT_COMMANDS: Record<string, string[]> = {
  "claude-code": ["claude", "-p", "{{prompt}}", "--model", "{{model}}", "--permission-mode", "acceptEdits"],
  opencode: ["opencode", "run", "--model", "{{model}}", "{{prompt}}"],
  codex: ["codex", "exec", "--model", "{{model}}", "--full-auto", "{{prompt}}"],
};

export function parseAgentCommands(value: string | undefined): Record<string, string[]> {
  if (!value) return DEFAULT_AGENT_COMMANDS;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new ConfigError('AGENT_COMMANDS: expected JSON like {"my-agent": ["my-cli", "--prompt", "{{prompt}}"]}');
  }
  const r = z.record(z.string().regex(/^[a-z0-9][a-z0-9_-]*$/), z.array(z.string()).min(1)).safeParse(parsed);
  if (!r.success) throw new ConfigError("AGENT_COMMANDS: expected an object of name → non-empty array of strings");
  return { ...DEFAULT_AGENT_COMMANDS, ...r.data };
}

export function parseGitops(e: z.infer<typeof Env>, dataDir: string): Config["gitops"] {
  const author = { name: e.GIT_AUTHOR_NAME, email: e.GIT_AUTHOR_EMAIL };
  if (e.GITOPS_PROVIDER === "local") {
    const repoPath = e.GITOPS_REPO ? resolve(e.GITOPS_REPO) : resolve(dataDir, "gitops.git");
    return {
      provider: "local",
      repoPath,
      baseBranch: e.GITOPS_BASE_BRANCH,
      author,
      deleteMergedBranches: e.GITOPS_DELETE_MERGED_BRANCHES,
    };
  }
  const m = /^([A-Za-z0-9_.-]+)\/([A-Za-z0-9_.-]+)$/.exec(e.GITOPS_REPO ?? "");
  if (!m) throw new ConfigError("GITOPS_REPO: with GITOPS_PROVIDER=github, expected owner/repo");
  const app = e.GITHUB_APP_ID || e.GITHUB_APP_PRIVATE_KEY || e.GITHUB_APP_INSTALLATION_ID;
  if (app && !(e.GITHUB_APP_ID && e.GITHUB_APP_PRIVATE_KEY && e.GITHUB_APP_INSTALLATION_ID)) {
    throw new ConfigError(
      "GITHUB_APP_ID/GITHUB_APP_PRIVATE_KEY/GITHUB_APP_INSTALLATION_ID: set all three for GitHub App authentication",
    );
  }
  if (e.GITHUB_APP_INSTALLATION_ID && !/^\d+$/.test(e.GITHUB_APP_INSTALLATION_ID))
    throw new ConfigError("GITHUB_APP_INSTALLATION_ID: expected a number");
  if (e.GITHUB_APP_ID && !/^\d+$/.test(e.GITHUB_APP_ID)) throw new ConfigError("GITHUB_APP_ID: expected a number");
  if (!app && !e.GITHUB_TOKEN)
    throw new ConfigError(
      "GITHUB_TOKEN: required with GITOPS_PROVIDER=github (or a GitHub App: GITHUB_APP_ID, GITHUB_APP_PRIVATE_KEY, GITHUB_APP_INSTALLATION_ID)",
    );
  return {
    provider: "github",
    owner: m[1]!,
    repo: m[2]!,
    baseBranch: e.GITOPS_BASE_BRANCH,
    author,
    deleteMergedBranches: e.GITOPS_DELETE_MERGED_BRANCHES,
    apiUrl: e.GITHUB_API_URL,
    token: e.GITHUB_TOKEN,
    app: app
      ? {
          appId: e.GITHUB_APP_ID!,
          privateKey: e.GITHUB_APP_PRIVATE_KEY!.replace(/\\n/g, "\n"),
          installationId: e.GITHUB_APP_INSTALLATION_ID!,
        }
      : undefined,
  };
}

const McpTokenList = z
  .array(
    z.object({
      name: z.string().regex(/^[A-Za-z0-9_.@-]{1,100}$/),
      token: z.string().min(16),
      scopes: z.array(z.enum(MCP_SCOPES)).min(1),
    }),
  )
  .min(1);

// The messages never include a token: MCP_TOKENS is a secret.
export function parseMcpTokens(value: string | undefined): McpToken[] {
  if (!value) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new ConfigError(
      'MCP_TOKENS: expected JSON like [{"name": "ci", "token": "<at least 16 characters>", "scopes": ["read"]}]',
    );
  }
  const r = McpTokenList.safeParse(parsed);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const where = typeof issue.path[0] === "number" ? `entry ${issue.path[0]}` : "list";
    const what: Record<string, string> = {
      name: "a name of [A-Za-z0-9_.@-], up to 100 characters",
      token: "a token of at least 16 characters",
      scopes: `scopes from ${MCP_SCOPES.join(", ")} (at least one)`,
    };
    const field = issue.path.find((p) => typeof p === "string" && p in what) as string | undefined;
    throw new ConfigError(
      `MCP_TOKENS: ${where}: expected ${field ? what[field] : "a non-empty list of {name, token, scopes}"}`,
    );
  }
  const names = new Set<string>();
  for (const t of r.data) {
    if (names.has(t.name)) throw new ConfigError(`MCP_TOKENS: the name "${t.name}" is used twice`);
    names.add(t.name);
  }
  return r.data;
}

export function parseOrigins(value: string | undefined): string[] {
  if (!value) return [];
  return value
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((o) => {
      let url: URL;
      try {
        url = new URL(o);
      } catch {
        throw new ConfigError(`MCP_ALLOWED_ORIGINS: "${o}" is not an origin like https://app.example.com`);
      }
      if (!/^https?:$/.test(url.protocol) || url.origin !== o.replace(/\/+$/, ""))
        throw new ConfigError(
          `MCP_ALLOWED_ORIGINS: "${o}" is not an origin like https://app.example.com (scheme, host and port only)`,
        );
      return url.origin;
    });
}

export function parseOidc(e: z.infer<typeof Env>, publicUrl: string): Config["mcp"]["oidc"] {
  if (!e.MCP_OIDC_ISSUER) {
    if (e.MCP_OIDC_AUDIENCE || e.MCP_OIDC_JWKS_URL)
      throw new ConfigError("MCP_OIDC_ISSUER: required when MCP_OIDC_AUDIENCE or MCP_OIDC_JWKS_URL is set");
    return undefined;
  }
  // RFC 8707: a token issued for this resource (its /mcp URL) is always for us; MCP_OIDC_AUDIENCE
  // names another audience accepted as well (identity providers that cannot issue per resource).
  const resource = `${publicUrl}/mcp`;
  return {
    issuer: e.MCP_OIDC_ISSUER,
    audience: e.MCP_OIDC_AUDIENCE ?? resource,
    resource,
    jwksUrl: e.MCP_OIDC_JWKS_URL,
    scopeClaim: e.MCP_OIDC_SCOPE_CLAIM,
  };
}

export type TelegramRoute = { label: string; value: string; chat: string };

const CHAT = /^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{3,31})$/;

/** TELEGRAM_*: all of it, or none when there is no bot token. */
export function parseTelegram(e: z.infer<typeof Env>, publicUrl: string): Config["telegram"] {
  if (!e.TELEGRAM_BOT_TOKEN) {
    const stray = (
      ["TELEGRAM_CHAT_ID", "TELEGRAM_ROUTES", "TELEGRAM_APPROVER_IDS", "TELEGRAM_WEBHOOK_SECRET"] as const
    ).find((k) => e[k] !== undefined);
    if (stray) throw new ConfigError(`TELEGRAM_BOT_TOKEN: required when ${stray} is set`);
    return undefined;
  }
  if (!e.TELEGRAM_CHAT_ID)
    throw new ConfigError(
      "TELEGRAM_CHAT_ID: required with TELEGRAM_BOT_TOKEN (the chat that gets notices and approval requests)",
    );
  const routes = (e.TELEGRAM_ROUTES ?? "")
    .split(",")
    .map((r) => r.trim())
    .filter(Boolean)
    .map((r) => {
      // label=value:chat — the chat is the part after the last colon (values may contain colons).
      const m = /^([a-zA-Z_][a-zA-Z0-9_]*)=(.+):([^:]+)$/.exec(r);
      if (!m || !CHAT.test(m[3]!))
        throw new ConfigError(
          `TELEGRAM_ROUTES: "${r}" is not label=value:chat, e.g. namespace=payments:-1001234567890`,
        );
      return { label: m[1]!, value: m[2]!, chat: m[3]! };
    });
  const approverIds = (e.TELEGRAM_APPROVER_IDS ?? "")
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean)
    .map((x) => {
      if (!/^\d{1,20}$/.test(x))
        throw new ConfigError(`TELEGRAM_APPROVER_IDS: "${x}" is not a numeric Telegram user id`);
      return Number(x);
    });
  const mode = publicUrl.startsWith("https://") ? "webhook" : "polling";
  if (mode === "webhook" && !e.TELEGRAM_WEBHOOK_SECRET) {
    throw new ConfigError(
      "TELEGRAM_WEBHOOK_SECRET: required when PUBLIC_URL is https (Telegram then calls the webhook, which checks this secret)",
    );
  }
  return {
    token: e.TELEGRAM_BOT_TOKEN,
    defaultChat: e.TELEGRAM_CHAT_ID,
    routes,
    approverIds,
    webhookSecret: e.TELEGRAM_WEBHOOK_SECRET,
    apiRoot: (e.TELEGRAM_API_ROOT ?? "https://api.telegram.org").replace(/\/+$/, ""),
    mode,
  };
}

/** Console sign-in through the OIDC issuer MCP already trusts (authorization code + PKCE). */
export function parseConsoleOidc(e: z.infer<typeof Env>): Config["console"]["oidc"] {
  if (!e.CONSOLE_OIDC_CLIENT_ID) {
    if (e.CONSOLE_OIDC_CLIENT_SECRET)
      throw new ConfigError("CONSOLE_OIDC_CLIENT_ID: required when CONSOLE_OIDC_CLIENT_SECRET is set");
    return undefined;
  }
  if (!e.MCP_OIDC_ISSUER)
    throw new ConfigError(
      "MCP_OIDC_ISSUER: required with CONSOLE_OIDC_CLIENT_ID (the console signs in through that issuer)",
    );
  return { clientId: e.CONSOLE_OIDC_CLIENT_ID, clientSecret: e.CONSOLE_OIDC_CLIENT_SECRET };
}
