import type { FastifyInstance } from "fastify";
import type { Store } from "../store/db.ts";
import { publishedKeys } from "./keys.ts";

// GET /.well-known/jwks.json: the public keys of JWS-signed webhooks (the key in use and those
// retired recently), so a receiver verifies deliveries without a shared secret (jose's
// createRemoteJWKSet, or any JOSE library). Public by design; cached briefly by clients.

export type JwksRouteDeps = { store: Store; now: () => number };

export async function jwksRoutes(app: FastifyInstance, deps: JwksRouteDeps) {
  app.get("/.well-known/jwks.json", async (_req, reply) => {
    const keys = await publishedKeys(deps.store.db, deps.store.dialect, deps.now());
    reply.header("cache-control", "public, max-age=300");
    reply.type("application/jwk-set+json");
    return { keys };
  });
}
