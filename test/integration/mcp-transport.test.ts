import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { startConsoleApp, type ConsoleApp } from "../helpers/browser.ts";

// /mcp at the HTTP level, over a real port: the CORS preflight and headers for allowed and own
// origins, the protected-resource metadata and the 401 challenge that points to it, the JWT
// audience, and the JSON-RPC errors of bodies the SDK's transport would mishandle.

const GOOD = "http://good.example";
const EVIL = "http://evil.example";
const PUBLIC = "https://pitcrew.example";
const AUDIENCE = "pitcrew-test";
const METADATA = `${PUBLIC}/.well-known/oauth-protected-resource/mcp`;
const INIT = (version = "2025-06-18", id = 1) => ({
  jsonrpc: "2.0",
  id,
  method: "initialize",
  params: { protocolVersion: version, capabilities: {}, clientInfo: { name: "curl", version: "1" } },
});

/** A local OIDC issuer (discovery document and JWKS) and a signer for its tokens. */
async function startIssuer() {
  const { publicKey, privateKey } = await generateKeyPair("RS256");
  const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "RS256", use: "sig" };
  const server: Server = createServer((req, res) => {
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    res.setHeader("content-type", "application/json");
    if (req.url === "/.well-known/openid-configuration")
      res.end(JSON.stringify({ issuer: base, jwks_uri: `${base}/keys` }));
    else if (req.url === "/keys") res.end(JSON.stringify({ keys: [jwk] }));
    else res.writeHead(404).end("{}");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const issuer = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const sign = (aud: string) => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ scope: "read" })
      .setProtectedHeader({ alg: "RS256", kid: "k1" })
      .setIssuer(issuer)
      .setAudience(aud)
      .setSubject("alice")
      .setIssuedAt(now)
      .setExpirationTime(now + 300)
      .sign(privateKey);
  };
  return { issuer, sign, close: () => new Promise<void>((r) => server.close(() => r())) };
}

type Answer = { status: number; headers: Headers; body: any };

async function post(
  base: string,
  headers: Record<string, string>,
  body: unknown = { jsonrpc: "2.0", id: 1, method: "tools/list" },
): Promise<Answer> {
  const res = await fetch(`${base}/mcp`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

async function preflight(base: string, origin: string): Promise<Answer> {
  const res = await fetch(`${base}/mcp`, {
    method: "OPTIONS",
    headers: {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization,content-type,mcp-protocol-version",
    },
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

async function listTools(base: string, token: string): Promise<string[]> {
  const client = new Client({ name: "pitcrew-test", version: "1.0.0" });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${base}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    }),
  );
  try {
    return (await client.listTools()).tools.map((t) => t.name);
  } finally {
    await client.close();
  }
}

describe("MCP transport and auth over HTTP", () => {
  let issuer: Awaited<ReturnType<typeof startIssuer>>;
  /** Bound to loopback, PUBLIC_URL elsewhere, GOOD allowed, OIDC with MCP_OIDC_AUDIENCE. */
  let main: ConsoleApp;
  /** Bound to every interface, OIDC without MCP_OIDC_AUDIENCE. */
  let wide: ConsoleApp;
  /** No OIDC issuer at all. */
  let plain: ConsoleApp;
  let admin: string;

  beforeAll(async () => {
    issuer = await startIssuer();
    main = await startConsoleApp({
      env: {
        HOST: "127.0.0.1",
        PUBLIC_URL: PUBLIC,
        MCP_ALLOWED_ORIGINS: GOOD,
        MCP_OIDC_ISSUER: issuer.issuer,
        MCP_OIDC_AUDIENCE: AUDIENCE,
      },
    });
    wide = await startConsoleApp({ env: { PUBLIC_URL: "https://wide.example", MCP_OIDC_ISSUER: issuer.issuer } });
    plain = await startConsoleApp({ env: { PUBLIC_URL: "https://plain.example" } });
    admin = main.tokens.admin;
  });
  afterAll(async () => {
    await Promise.all([main, wide, plain].map((a) => a?.close()));
    await issuer?.close();
  });

  describe("browser origins", () => {
    it("answers the preflight of an allowed origin with what it may send", async () => {
      const res = await preflight(main.url, GOOD);
      expect(res.status).toBe(204);
      expect(res.headers.get("access-control-allow-origin")).toBe(GOOD);
      expect(res.headers.get("access-control-allow-methods")).toBe("POST");
      const allowed = res.headers.get("access-control-allow-headers")!.split(/,\s*/);
      expect(allowed).toEqual(
        expect.arrayContaining([
          "authorization",
          "content-type",
          "accept",
          "mcp-protocol-version",
          "mcp-session-id",
          "last-event-id",
        ]),
      );
      expect(Number(res.headers.get("access-control-max-age"))).toBeGreaterThan(0);
      expect(res.headers.get("vary")).toMatch(/origin/i);
    });

    it("refuses the preflight of a foreign origin with 403 and no allow headers", async () => {
      const res = await preflight(main.url, EVIL);
      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe("mcp.origin_not_allowed");
      expect(res.headers.get("access-control-allow-origin")).toBeNull();
      expect(res.headers.get("access-control-allow-methods")).toBeNull();
      expect(res.headers.get("access-control-allow-headers")).toBeNull();
    });

    it("lets an allowed origin initialize and read the session and challenge headers", async () => {
      const res = await post(main.url, { authorization: `Bearer ${admin}`, origin: GOOD }, INIT());
      expect(res.status).toBe(200);
      expect(res.body.result.serverInfo.name).toBe("pitcrew");
      expect(res.headers.get("access-control-allow-origin")).toBe(GOOD);
      expect(res.headers.get("access-control-expose-headers")!.toLowerCase().split(/,\s*/)).toEqual(
        expect.arrayContaining(["mcp-session-id", "www-authenticate"]),
      );
      expect(res.headers.get("vary")).toMatch(/origin/i);
    });

    it("always allows its own origin: PUBLIC_URL's, and the loopback names of its port when bound to loopback", async () => {
      const port = new URL(main.url).port;
      for (const origin of [PUBLIC, `http://127.0.0.1:${port}`, `http://localhost:${port}`]) {
        const pre = await preflight(main.url, origin);
        expect(pre.status, origin).toBe(204);
        const res = await post(main.url, { authorization: `Bearer ${admin}`, origin }, INIT());
        expect(res.status, origin).toBe(200);
        expect(res.headers.get("access-control-allow-origin"), origin).toBe(origin);
      }
    });

    it("refuses a loopback origin when bound to every interface, and a foreign origin's POST, with 403", async () => {
      const loopback = await post(
        wide.url,
        { authorization: `Bearer ${wide.tokens.admin}`, origin: `http://127.0.0.1:${new URL(wide.url).port}` },
        INIT(),
      );
      expect(loopback.status).toBe(403);
      expect(
        (await post(wide.url, { authorization: `Bearer ${wide.tokens.admin}`, origin: "https://wide.example" }, INIT()))
          .status,
      ).toBe(200);
      const evil = await post(main.url, { authorization: `Bearer ${admin}`, origin: EVIL }, INIT());
      expect(evil.status).toBe(403);
      expect(evil.headers.get("access-control-allow-origin")).toBeNull();
    });

    it("sends the CORS headers on a 401, so the page can read the challenge", async () => {
      const res = await post(main.url, { origin: GOOD });
      expect(res.status).toBe(401);
      expect(res.headers.get("access-control-allow-origin")).toBe(GOOD);
      expect(res.headers.get("access-control-expose-headers")).toMatch(/WWW-Authenticate/i);
      expect(res.headers.get("www-authenticate")).toBe(`Bearer resource_metadata="${METADATA}"`);
    });
  });

  describe("auth discovery", () => {
    it("serves the protected-resource metadata at the root and the path-suffixed well-known URLs", async () => {
      for (const path of ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"]) {
        const res = await fetch(`${main.url}${path}`);
        expect(res.status, path).toBe(200);
        expect(res.headers.get("access-control-allow-origin"), path).toBe("*");
        expect(await res.json(), path).toEqual({
          resource: `${PUBLIC}/mcp`,
          authorization_servers: [issuer.issuer],
          scopes_supported: ["read", "write", "approve", "admin"],
          bearer_methods_supported: ["header"],
          resource_name: "Pitcrew",
        });
      }
    });

    it("answers the preflight of a page reading the metadata with MCP-Protocol-Version", async () => {
      const res = await fetch(`${main.url}/.well-known/oauth-protected-resource/mcp`, {
        method: "OPTIONS",
        headers: {
          origin: EVIL,
          "access-control-request-method": "GET",
          "access-control-request-headers": "mcp-protocol-version",
        },
      });
      expect(res.status).toBe(204);
      expect(res.headers.get("access-control-allow-origin")).toBe("*");
      expect(res.headers.get("access-control-allow-headers")).toBe("mcp-protocol-version");
    });

    it("names no authorization server when no OIDC issuer is configured", async () => {
      const doc = (await (await fetch(`${plain.url}/.well-known/oauth-protected-resource/mcp`)).json()) as Record<
        string,
        unknown
      >;
      expect(doc.resource).toBe("https://plain.example/mcp");
      expect(doc).not.toHaveProperty("authorization_servers");
      expect(doc.scopes_supported).toEqual(["read", "write", "approve", "admin"]);
    });

    it("challenges a request without a token with resource_metadata and no error", async () => {
      const res = await post(main.url, {});
      expect(res.status).toBe(401);
      const challenge = res.headers.get("www-authenticate")!;
      expect(challenge).toBe(`Bearer resource_metadata="${METADATA}"`);
      // The URL in the challenge is the document this server serves.
      const served = await fetch(`${main.url}${new URL(METADATA).pathname}`);
      expect(((await served.json()) as { resource: string }).resource).toBe(`${PUBLIC}/mcp`);
    });

    it('challenges a refused token with error="invalid_token" and a description', async () => {
      const res = await post(main.url, { authorization: "Bearer not-a-token-we-know-of" });
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toBe(
        `Bearer resource_metadata="${METADATA}", error="invalid_token", error_description="the token is not recognised"`,
      );
      expect(res.body.error).toMatchObject({ code: "auth.invalid_token", message: "the token is not recognised" });
    });

    it("accepts a JWT issued for the resource (RFC 8707) and for MCP_OIDC_AUDIENCE, refuses another audience", async () => {
      expect(await listTools(main.url, await issuer.sign(`${PUBLIC}/mcp`))).toContain("system_status");
      expect(await listTools(main.url, await issuer.sign(AUDIENCE))).toContain("system_status");
      const other = await post(main.url, { authorization: `Bearer ${await issuer.sign("https://other.example/mcp")}` });
      expect(other.status).toBe(401);
      expect(other.headers.get("www-authenticate")).toBe(
        `Bearer resource_metadata="${METADATA}", error="invalid_token", error_description="the token's 'aud' claim is not accepted"`,
      );
    });

    it("without MCP_OIDC_AUDIENCE accepts only JWTs issued for the resource", async () => {
      expect(await listTools(wide.url, await issuer.sign("https://wide.example/mcp"))).toContain("system_status");
      const res = await post(wide.url, { authorization: `Bearer ${await issuer.sign(AUDIENCE)}` });
      expect(res.status).toBe(401);
      expect(res.body.error.message).toBe(`the token's "aud" claim is not accepted`);
      // A JWT for the other installation is not for this one.
      expect((await post(wide.url, { authorization: `Bearer ${await issuer.sign(`${PUBLIC}/mcp`)}` })).status).toBe(
        401,
      );
    });
  });

  describe("JSON-RPC at the transport", () => {
    const auth = () => ({ authorization: `Bearer ${admin}` });

    it("answers a body that is not JSON with a JSON-RPC parse error", async () => {
      for (const body of ['{"jsonrpc":"2.0","id":1,"method":', ""]) {
        const res = await post(main.url, auth(), body);
        expect(res.status, JSON.stringify(body)).toBe(400);
        expect(res.body, JSON.stringify(body)).toMatchObject({ jsonrpc: "2.0", id: null, error: { code: -32700 } });
      }
    });

    it("checks the token before the body", async () => {
      const res = await post(main.url, {}, "{not json");
      expect(res.status).toBe(401);
    });

    it("answers an empty batch, and JSON that is no JSON-RPC message, with invalid request", async () => {
      for (const body of [[], { hello: "world" }, [{ jsonrpc: "2.0", id: 1, method: "tools/list" }, 42]]) {
        const res = await post(main.url, { ...auth(), "mcp-protocol-version": "2025-03-26" }, body);
        expect(res.status, JSON.stringify(body)).toBe(400);
        expect(res.body, JSON.stringify(body)).toMatchObject({ jsonrpc: "2.0", id: null, error: { code: -32600 } });
      }
    });

    it("refuses a batch for protocol 2025-06-18 and later, by header or by the initialize in it", async () => {
      const batch = [
        { jsonrpc: "2.0", id: 1, method: "tools/list" },
        { jsonrpc: "2.0", id: 2, method: "ping" },
      ];
      for (const version of ["2025-06-18", "2025-11-25"]) {
        const res = await post(main.url, { ...auth(), "mcp-protocol-version": version }, batch);
        expect(res.status, version).toBe(400);
        expect(res.body.error.code, version).toBe(-32600);
        expect(res.body.error.message, version).toBe(
          `Invalid Request: JSON-RPC batches are not supported in protocol version ${version} (removed in 2025-06-18); send one message per request`,
        );
      }
      const init = await post(main.url, auth(), [INIT("2025-06-18")]);
      expect(init.status).toBe(400);
      expect(init.body.error.code).toBe(-32600);
    });

    it("still answers a batch for 2025-03-26, which has them", async () => {
      const res = await post(main.url, { ...auth(), "mcp-protocol-version": "2025-03-26" }, [
        { jsonrpc: "2.0", id: 1, method: "tools/list" },
        { jsonrpc: "2.0", id: 2, method: "ping" },
      ]);
      expect(res.status).toBe(200);
      expect(Array.isArray(res.body)).toBe(true);
      expect(res.body.map((m: { id: number }) => m.id).sort()).toEqual([1, 2]);
      expect(res.body.find((m: { id: number }) => m.id === 1).result.tools.length).toBeGreaterThan(5);
    });
  });
});
