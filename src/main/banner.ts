import type { Config } from "../config/load.ts";
import type { AlertmanagerAuth } from "../alerts/route.ts";
import { VERSION } from "../shared/version.ts";

/** Where the AlertManager token came from: configured (ALERTMANAGER_TOKEN) or a generated file. */
export type AlertmanagerTokenSource = { from: "env" } | { from: "file"; path: string; created: boolean };

/** What `npm start` prints: where things are, and a ready-to-paste AlertManager receiver. */
export function printBanner(
  config: Config,
  s: {
    embedded: boolean;
    dialect: string;
    auth: AlertmanagerAuth;
    tokenSource?: AlertmanagerTokenSource;
    skills: number;
    mcp?: { token: string; path: string; created: boolean };
  },
): void {
  const url = config.publicUrl;
  const mode = s.embedded
    ? `embedded (SQLite ${config.database.dialect === "sqlite" ? config.database.file : ""}, in-process queue, ${config.runner.concurrency} in-process runners)`
    : `distributed (${s.dialect === "mysql" ? "MySQL" : "SQLite"} store, NATS JetStream at ${config.nats!.servers.length} server(s))`;
  const receiver =
    s.auth.mode === "token"
      ? [
          "  receivers:",
          "    - name: pitcrew",
          "      webhook_configs:",
          `        - url: ${url}/webhooks/alertmanager`,
          "          send_resolved: true",
          `          max_alerts: ${config.alertmanager.maxAlerts}`,
          "          http_config:",
          "            authorization:",
          "              type: Bearer",
          ...credentialLines(s.auth.token, s.tokenSource),
        ]
      : [
          "  receivers:",
          "    - name: pitcrew",
          "      webhook_configs:",
          `        - url: ${url}/webhooks/alertmanager`,
          "          send_resolved: true",
          `          max_alerts: ${config.alertmanager.maxAlerts}`,
          "  (ALERTMANAGER_AUTH=none: the webhook takes requests without credentials)",
        ];
  // The generated token is shown once, when it is created; later starts point at the file.
  const mcpAuth = s.mcp
    ? s.mcp.created
      ? [
          `  MCP admin token (shown once; kept in ${s.mcp.path}, \`pitcrew token\` shows it again):`,
          "",
          `    ${s.mcp.token}`,
          "",
        ]
      : [`  MCP admin token in ${s.mcp.path} (\`pitcrew token\` shows it)`]
    : [`  MCP tokens from MCP_TOKENS (${config.mcp.tokens.map((t) => t.name).join(", ")})`];
  if (config.mcp.oidc)
    mcpAuth.push(`  MCP also accepts JWTs from ${config.mcp.oidc.issuer} (audience ${config.mcp.oidc.audience})`);
  process.stdout.write(
    [
      "",
      `  Pitcrew ${VERSION} is up — ${mode}; ${s.skills} skills loaded`,
      `  Listening on ${config.host}:${config.port}   public URL ${url}`,
      `  Liveness   ${url}/healthz`,
      `  Readiness  ${url}/readyz`,
      `  Metrics    ${url}/metrics`,
      `  MCP        ${url}/mcp   (Streamable HTTP; Authorization: Bearer <token>)`,
      ...mcpAuth,
      "",
      "  Point AlertManager at Pitcrew (alertmanager.yml):",
      "",
      ...receiver,
      "",
      "",
    ].join("\n"),
  );
}

/**
 * The receiver's credential: a generated token is shown once, when it is created; after that, and
 * always for a configured ALERTMANAGER_TOKEN, the snippet points at a file instead of the secret.
 */
function credentialLines(token: string, source: AlertmanagerTokenSource | undefined): string[] {
  if (source?.from === "file" && source.created) {
    return [
      `              credentials: ${token}`,
      `  (the token is shown once; it is kept in ${source.path}, mode 0600)`,
    ];
  }
  const what = source?.from === "file" ? `a copy of ${source.path}` : "the value of ALERTMANAGER_TOKEN";
  return ["              credentials_file: /etc/alertmanager/secrets/pitcrew-token", `  (credentials_file: ${what})`];
}
