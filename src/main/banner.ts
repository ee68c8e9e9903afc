import type { Config } from "../config/load.ts";
import type { AlertmanagerAuth } from "../alerts/route.ts";
import { VERSION } from "../shared/version.ts";
import { formatSetup, type SetupFacts } from "../system/setup.ts";

/** Where the AlertManager token came from: configured (ALERTMANAGER_TOKEN) or a generated file. */
export type AlertmanagerTokenSource = { from: "env" } | { from: "file"; path: string; created: boolean };

/** What `npm start` prints: where things are, and a ready-to-paste AlertManager receiver. */
export function printBanner(
  config: Config,
  s: {
    auth: AlertmanagerAuth;
    tokenSource?: AlertmanagerTokenSource;
    mcp?: { token: string; path: string; created: boolean };
    /** The same facts as the MCP tool system_status (src/system/setup.ts). */
    setup: SetupFacts;
  },
): void {
  const url = config.publicUrl;
  const runners =
    s.setup.mode === "embedded"
      ? `, ${config.runner.concurrency} in-process runners`
      : "; runners are separate processes";
  const receiver = alertmanagerSnippet(url, config.alertmanager.maxAlerts, s.auth, s.tokenSource);
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
      `  Pitcrew ${VERSION} is up — ${s.setup.mode}${runners}`,
      `  Listening on ${config.host}:${config.port}   public URL ${url}`,
      "",
      ...formatSetup(s.setup),
      "",
      `  Liveness   ${url}/healthz`,
      `  Readiness  ${url}/readyz`,
      `  Metrics    ${url}/metrics`,
      `  MCP        ${url}/mcp   (Streamable HTTP; Authorization: Bearer <token>)`,
      ...mcpAuth,
      "",
      "  Point AlertManager at Pitcrew (a whole alertmanager.yml; with your own, add the receiver and a route to it):",
      "",
      ...receiver,
      "",
      "",
    ].join("\n"),
  );
}

/**
 * A whole, valid alertmanager.yml: every alert goes to Pitcrew, grouped per alert and namespace
 * (Pitcrew dedupes per incident, so AlertManager need not wait long to group).
 */
export function alertmanagerSnippet(
  url: string,
  maxAlerts: number,
  auth: AlertmanagerAuth,
  tokenSource?: AlertmanagerTokenSource,
): string[] {
  return [
    "  route:",
    "    receiver: pitcrew",
    "    group_by: [alertname, namespace]",
    "    group_wait: 30s",
    "    group_interval: 5m",
    "    repeat_interval: 4h",
    "  receivers:",
    "    - name: pitcrew",
    "      webhook_configs:",
    `        - url: ${url}/webhooks/alertmanager`,
    "          send_resolved: true",
    `          max_alerts: ${maxAlerts}`,
    ...(auth.mode === "token"
      ? [
          "          http_config:",
          "            authorization:",
          "              type: Bearer",
          ...credentialLines(auth.token, tokenSource),
        ]
      : ["  # ALERTMANAGER_AUTH=none: the webhook takes requests without credentials"]),
  ];
}

/**
 * The receiver's credential: a generated token is shown once, when it is created; after that, and
 * always for a configured ALERTMANAGER_TOKEN, the snippet points at a file instead of the secret.
 */
function credentialLines(token: string, source: AlertmanagerTokenSource | undefined): string[] {
  if (source?.from === "file" && source.created) {
    return [
      `              credentials: ${token}`,
      `  # the token is shown once; it is kept in ${source.path}, mode 0600`,
    ];
  }
  const what = source?.from === "file" ? `a copy of ${source.path}` : "the value of ALERTMANAGER_TOKEN";
  return ["              credentials_file: /etc/alertmanager/secrets/pitcrew-token", `  # credentials_file: ${what}`];
}
