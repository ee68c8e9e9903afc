import type { FastifyInstance } from "fastify";
import type { Config } from "../config/load.ts";
import { MCP_SCOPES } from "../config/load.ts";

// OAuth 2.0 Protected Resource Metadata (RFC 9728), as the MCP authorization spec asks: a client
// refused with 401 reads `resource_metadata` from the challenge, fetches this document and learns
// which authorization server issues tokens for /mcp and which scopes exist.

export const METADATA_PATH = "/.well-known/oauth-protected-resource";

/** The resource identifier of /mcp (RFC 8707): the `aud` a JWT for us carries. */
export function mcpResource(config: Pick<Config, "publicUrl">): string {
  return `${config.publicUrl}/mcp`;
}

/** Where the metadata of /mcp is: the well-known path with the resource's path appended (RFC 9728 §3.1). */
export function resourceMetadataUrl(config: Pick<Config, "publicUrl">): string {
  const url = new URL(config.publicUrl);
  return `${url.origin}${METADATA_PATH}${url.pathname.replace(/\/+$/, "")}/mcp`;
}

export type ResourceMetadata = {
  resource: string;
  authorization_servers?: string[];
  scopes_supported: string[];
  bearer_methods_supported: string[];
  resource_name: string;
};

export function buildResourceMetadata(config: Pick<Config, "publicUrl" | "mcp">): ResourceMetadata {
  return {
    resource: mcpResource(config),
    // Without an issuer only static tokens work: there is no server to send the client to.
    ...(config.mcp.oidc ? { authorization_servers: [config.mcp.oidc.issuer] } : {}),
    scopes_supported: [...MCP_SCOPES],
    bearer_methods_supported: ["header"],
    resource_name: "Pitcrew",
  };
}

/** `WWW-Authenticate` of a 401 from /mcp (RFC 6750 §3, RFC 9728 §5.1). */
export function bearerChallenge(
  config: Pick<Config, "publicUrl">,
  refusal?: { error: string; description: string },
): string {
  const parts = [`Bearer resource_metadata="${resourceMetadataUrl(config)}"`];
  if (refusal) {
    // error_description allows printable ASCII but `"` and `\`.
    const description = refusal.description.replace(/["\\]/g, "'").replace(/[^\x20-\x7e]/g, "?");
    parts.push(`error="${refusal.error}"`, `error_description="${description}"`);
  }
  return parts.join(", ");
}

export async function discoveryRoutes(app: FastifyInstance, config: Pick<Config, "publicUrl" | "mcp">) {
  const doc = buildResourceMetadata(config);
  const paths = [...new Set([METADATA_PATH, new URL(resourceMetadataUrl(config)).pathname])];
  for (const path of paths) {
    app.get(path, async (_req, reply) => {
      // Public and credential-free: any page (a browser-based MCP client) may read it.
      reply.header("access-control-allow-origin", "*");
      reply.header("cache-control", "public, max-age=300");
      return doc;
    });
    // Browser clients send MCP-Protocol-Version with this GET too, which needs a preflight.
    app.options(path, async (_req, reply) => {
      reply.headers({
        "access-control-allow-origin": "*",
        "access-control-allow-methods": "GET",
        "access-control-allow-headers": "mcp-protocol-version",
        "access-control-max-age": "600",
      });
      return reply.status(204).send();
    });
  }
}
