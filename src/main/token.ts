import { rmSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../config/load.ts";
import { loadOrCreateToken } from "../shared/secrets.ts";

/** `pitcrew token [--rotate]`: shows the generated MCP admin token, or replaces it. */
export function tokenCommand(config: Config, rotate: boolean): string {
  if (rotate) rmSync(join(config.dataDir, "secrets", "mcp.token"), { force: true });
  const t = loadOrCreateToken(config.dataDir, "mcp");
  const lines = rotate
    ? [
        `New MCP token (admin scope) written to ${t.path}:`,
        "",
        `  ${t.token}`,
        "",
        "A running server keeps accepting the old token until it restarts; after the next restart only the new one is accepted.",
      ]
    : [
        `MCP token (admin scope)${t.created ? ", generated now," : ""} kept in ${t.path}:`,
        "",
        `  ${t.token}`,
        "",
        "Send it as: Authorization: Bearer <token>",
      ];
  if (config.mcp.tokens.length > 0) {
    lines.push(
      "",
      `Note: MCP_TOKENS is set (${config.mcp.tokens.map((x) => x.name).join(", ")}), so the server accepts those tokens and ignores this file.`,
    );
  }
  return lines.join("\n");
}
