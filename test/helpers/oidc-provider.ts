import { createHash, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { exportJWK, generateKeyPair, SignJWT } from "jose";

/**
 * A small but real OpenID Connect provider on loopback: discovery, JWKS, an authorization endpoint
 * that signs in the configured user at once (no form), and a token endpoint that checks what a
 * real provider checks — the code (once, unexpired), the client (id and secret, Basic or in the
 * body), the redirect URI, and the PKCE verifier against the S256 challenge. ID tokens are signed
 * with jose (RS256) and carry the nonce; access tokens are JWTs for `accessAudience` when set.
 */
/**
 * `scopeIn: "access"` puts the scope claim in the access token only (default: both tokens);
 * `nonce` replaces the nonce the ID token carries (a token minted for another sign-in).
 */
export type OidcUser = {
  sub: string;
  email?: string;
  scope?: string | string[];
  scopeIn?: "both" | "access";
  nonce?: string;
};

export type OidcProviderOptions = {
  clientId: string;
  clientSecret?: string;
  /** The `aud` of access tokens (MCP_OIDC_AUDIENCE), so /mcp would accept them too. */
  accessAudience?: string;
  /** The claim that carries scopes (MCP_OIDC_SCOPE_CLAIM). */
  scopeClaim?: string;
};

type Grant = {
  clientId: string;
  redirectUri: string;
  challenge: string;
  method: string;
  nonce: string;
  user: OidcUser;
  expiresAt: number;
  used: boolean;
};

export async function startOidcProvider(opts: OidcProviderOptions) {
  const { publicKey, privateKey } = await generateKeyPair("RS256");
  const jwk = { ...(await exportJWK(publicKey)), kid: "test-key", alg: "RS256", use: "sig" };
  const grants = new Map<string, Grant>();
  const claim = opts.scopeClaim ?? "scope";
  let user: OidcUser = { sub: "user-1", email: "alice@example.com", scope: "read" };
  /** What the token endpoint refused, for tests to assert on. */
  const refusals: string[] = [];
  let issuer = "";

  const sign = (claims: Record<string, unknown>, aud: string) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: "RS256", kid: "test-key" })
      .setIssuer(issuer)
      .setAudience(aud)
      .setIssuedAt()
      .setExpirationTime("5m")
      .sign(privateKey);

  const readBody = (req: IncomingMessage) =>
    new Promise<string>((resolve) => {
      let s = "";
      req.on("data", (c) => (s += c));
      req.on("end", () => resolve(s));
    });

  const server: Server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", issuer);
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
      res.end(JSON.stringify(body));
    };
    if (url.pathname === "/.well-known/openid-configuration") {
      return json(200, {
        issuer,
        authorization_endpoint: `${issuer}/authorize`,
        token_endpoint: `${issuer}/token`,
        jwks_uri: `${issuer}/jwks`,
        response_types_supported: ["code"],
        code_challenge_methods_supported: ["S256"],
        token_endpoint_auth_methods_supported: opts.clientSecret
          ? ["client_secret_basic", "client_secret_post"]
          : ["none"],
        id_token_signing_alg_values_supported: ["RS256"],
        subject_types_supported: ["public"],
      });
    }
    if (url.pathname === "/jwks") return json(200, { keys: [jwk] });
    if (url.pathname === "/authorize") {
      const q = url.searchParams;
      const redirect = q.get("redirect_uri") ?? "";
      if (q.get("client_id") !== opts.clientId || q.get("response_type") !== "code" || !redirect)
        return json(400, { error: "invalid_request" });
      if (q.get("code_challenge_method") !== "S256" || !q.get("code_challenge"))
        return json(400, { error: "invalid_request", error_description: "PKCE S256 required" });
      const code = randomBytes(16).toString("base64url");
      grants.set(code, {
        clientId: opts.clientId,
        redirectUri: redirect,
        challenge: q.get("code_challenge")!,
        method: "S256",
        nonce: q.get("nonce") ?? "",
        user,
        expiresAt: Date.now() + 60_000,
        used: false,
      });
      const back = new URL(redirect);
      back.searchParams.set("code", code);
      back.searchParams.set("state", q.get("state") ?? "");
      res.writeHead(302, { location: back.toString() });
      return res.end();
    }
    if (url.pathname === "/token" && req.method === "POST") {
      const form = new URLSearchParams(await readBody(req));
      let clientId = form.get("client_id");
      let secret = form.get("client_secret");
      const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? "");
      if (basic) {
        const [id, s] = Buffer.from(basic[1]!, "base64").toString().split(":").map(decodeURIComponent);
        clientId = id ?? null;
        secret = s ?? null;
      }
      const refuse = (why: string, error = "invalid_grant") => {
        refusals.push(why);
        return json(400, { error, error_description: why });
      };
      if (clientId !== opts.clientId) return refuse("unknown client", "invalid_client");
      if (opts.clientSecret !== undefined && secret !== opts.clientSecret)
        return refuse("wrong client secret", "invalid_client");
      const g = grants.get(form.get("code") ?? "");
      if (!g || g.used || g.expiresAt < Date.now()) return refuse("unknown, used or expired code");
      g.used = true;
      if (form.get("redirect_uri") !== g.redirectUri) return refuse("redirect_uri differs");
      const verifier = form.get("code_verifier") ?? "";
      if (createHash("sha256").update(verifier).digest("base64url") !== g.challenge)
        return refuse("PKCE verifier does not match the challenge");
      const profile = { sub: g.user.sub, ...(g.user.email ? { email: g.user.email } : {}) };
      const idToken = await sign(
        {
          ...profile,
          nonce: g.user.nonce ?? g.nonce,
          ...(g.user.scope !== undefined && g.user.scopeIn !== "access" ? { [claim]: g.user.scope } : {}),
        },
        g.clientId,
      );
      const accessToken = opts.accessAudience
        ? await sign({ sub: g.user.sub, [claim]: g.user.scope ?? "" }, opts.accessAudience)
        : randomBytes(16).toString("hex");
      return json(200, { token_type: "Bearer", id_token: idToken, access_token: accessToken, expires_in: 300 });
    }
    json(404, { error: "not_found" });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  issuer = `http://127.0.0.1:${(server.address() as { port: number }).port}`;

  return {
    issuer,
    refusals,
    /** Who the next authorization signs in. */
    setUser(u: OidcUser) {
      user = u;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
