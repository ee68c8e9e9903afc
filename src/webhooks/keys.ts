import type { JWK } from "jose";
import type { Dialect } from "../store/db.ts";
import { insertIfAbsent, type Executor } from "../store/sql.ts";

// The Ed25519 keys of JWS-signed webhooks. Generated once into the database, so every replica
// signs with the same key; rotated on demand (rotate_webhook_key). A retired key's private half is
// erased at once, its public half stays published at /.well-known/jwks.json for KEEP_RETIRED_MS so
// receivers can still check deliveries signed just before the rotation.
//
// The signature is a JWS (RFC 7515) over the raw body, unencoded (RFC 7797, b64: false) and
// detached, sent as `webhook-jws: <protected>..<signature>`; the protected header names the key
// (kid) and repeats the webhook-id and webhook-timestamp, so neither can be swapped.

export const KEEP_RETIRED_MS = 30 * 86_400_000;
/** How long a replica uses the key it read before reading again (a rotation reaches every replica within this). */
const CACHE_MS = 60_000;
const ACTIVE = "active";

export type PublicJwk = JWK & { kid: string; alg: "EdDSA"; use: "sig" };
type KeyRow = { kid: string; public_jwk: string; private_jwk: string };

// jose is loaded on first use: most installations never sign a webhook with JWS.
const loadJose = () => import("jose");

async function newKey(now: number) {
  const { calculateJwkThumbprint, exportJWK, generateKeyPair } = await loadJose();
  const { publicKey, privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
  const pub = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(pub);
  const priv = await exportJWK(privateKey);
  return {
    kid,
    alg: "EdDSA",
    public_jwk: JSON.stringify({ ...pub, kid, alg: "EdDSA", use: "sig" }),
    private_jwk: JSON.stringify({ ...priv, kid, alg: "EdDSA" }),
    active_key: ACTIVE,
    created_at: now,
    retired_at: null,
  };
}

async function activeRow(db: Executor): Promise<KeyRow | undefined> {
  return db
    .selectFrom("webhook_keys")
    .select(["kid", "public_jwk", "private_jwk"])
    .where("active_key", "=", ACTIVE)
    .executeTakeFirst();
}

/** The key in use, made on first use (two replicas racing: the unique active_key keeps one). */
export async function ensureActiveKey(db: Executor, dialect: Dialect, now: number): Promise<KeyRow> {
  const found = await activeRow(db);
  if (found) return found;
  await insertIfAbsent(db, dialect, "webhook_keys", await newKey(now));
  const made = await activeRow(db);
  if (!made) throw new Error("no active webhook signing key after creating one");
  return made;
}

/** Retires the key in use and makes a new one; returns the new key's id and the retired one's. */
export async function rotateKey(
  db: Executor,
  dialect: Dialect,
  now: number,
): Promise<{ kid: string; retired: string | null }> {
  const old = await activeRow(db);
  if (old) {
    await db
      .updateTable("webhook_keys")
      .set({ active_key: null, retired_at: now, private_jwk: "" })
      .where("kid", "=", old.kid)
      .where("active_key", "=", ACTIVE)
      .execute();
  }
  const made = await ensureActiveKey(db, dialect, now);
  return { kid: made.kid, retired: old?.kid ?? null };
}

/** What /.well-known/jwks.json publishes: the key in use and the keys retired within KEEP_RETIRED_MS. */
export async function publishedKeys(db: Executor, dialect: Dialect, now: number): Promise<PublicJwk[]> {
  await ensureActiveKey(db, dialect, now);
  const rows = await db
    .selectFrom("webhook_keys")
    .select(["public_jwk"])
    .where((eb) => eb.or([eb("active_key", "=", ACTIVE), eb("retired_at", ">=", now - KEEP_RETIRED_MS)]))
    .orderBy("created_at", "desc")
    .execute();
  return rows.map((r) => JSON.parse(r.public_jwk) as PublicJwk);
}

/** A JWS signer over the key in use, cached for CACHE_MS. */
export function createJwsSigner(deps: { db: Executor; dialect: Dialect; now: () => number }) {
  let cached: { kid: string; key: Awaited<ReturnType<typeof import("jose").importJWK>>; until: number } | undefined;

  async function key() {
    const now = deps.now();
    if (cached && cached.until > now) return cached;
    const row = await ensureActiveKey(deps.db, deps.dialect, now);
    const { importJWK } = await loadJose();
    cached = { kid: row.kid, key: await importJWK(JSON.parse(row.private_jwk) as JWK, "EdDSA"), until: now + CACHE_MS };
    return cached;
  }

  return {
    /** `<protected>..<signature>`: a detached JWS of the raw body. */
    async sign(id: string, timestampSeconds: number, body: string): Promise<string> {
      const k = await key();
      const { FlattenedSign } = await loadJose();
      const jws = await new FlattenedSign(new TextEncoder().encode(body))
        .setProtectedHeader({
          alg: "EdDSA",
          kid: k.kid,
          b64: false,
          crit: ["b64"],
          "webhook-id": id,
          "webhook-timestamp": timestampSeconds,
        })
        .sign(k.key);
      return `${jws.protected}..${jws.signature}`;
    },
    /** Forgets the cached key (after a rotation on this replica). */
    forget() {
      cached = undefined;
    },
  };
}

export type JwsSigner = ReturnType<typeof createJwsSigner>;
