import { timingSafeEqual } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { invalid } from "../shared/errors.ts";

// Standard Webhooks (https://www.standardwebhooks.com) through its reference package: the signed
// content is `${webhook-id}.${webhook-timestamp}.${body}`, HMAC-SHA256 with the base64-decoded
// `whsec_` key, sent as `v1,<base64>`. Rotation: while two secrets are active a request carries one
// signature per secret, space-separated, and a receiver holding either one accepts it; a verifier
// accepts a signature made with any of its secrets. Replay protection beyond the timestamp window
// is the caller's job: a successful verification returns the id.

const PREFIX = "whsec_";
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export type VerifyFailure =
  | "missing_headers"
  | "bad_timestamp"
  | "too_old"
  | "too_new"
  | "no_secret"
  | "no_signature_matched";
export type VerifyResult = { ok: true; id: string; timestamp: number } | { ok: false; reason: VerifyFailure };
export type HeaderSource = Headers | Record<string, string | string[] | undefined>;
export type SignedHeaders = Record<"webhook-id" | "webhook-timestamp" | "webhook-signature", string>;

/**
 * The signer of one secret. `whsec_<base64>` is the Standard Webhooks form; a value without the
 * prefix is used as raw UTF-8 bytes (what remote skills accepted before).
 */
function signer(secret: string): Webhook {
  if (secret.startsWith(PREFIX)) {
    const b64 = secret.slice(PREFIX.length);
    if (b64.length === 0) throw invalid("webhook.bad_secret", "the webhook secret is empty");
    if (!BASE64.test(b64)) throw invalid("webhook.bad_secret", "a whsec_ secret must be followed by base64");
    return new Webhook(secret);
  }
  if (secret.length === 0) throw invalid("webhook.bad_secret", "the webhook secret is empty");
  return new Webhook(Buffer.from(secret, "utf8"), { format: "raw" });
}

/**
 * The secrets an env var holds: one, or several separated by spaces (newest first) while a secret
 * is being rotated. Throws `webhook.bad_secret` for a malformed one.
 */
export function parseSecrets(value: string | undefined): string[] {
  const secrets = (value ?? "").split(/\s+/).filter(Boolean);
  for (const s of secrets) signer(s);
  return secrets;
}

const body = (b: string | Uint8Array): string => (typeof b === "string" ? b : Buffer.from(b).toString("utf8"));

/** `v1,<base64>` for one secret. */
export function signOne(id: string, timestampSeconds: number, payload: string | Uint8Array, secret: string): string {
  if (!Number.isSafeInteger(timestampSeconds) || timestampSeconds < 0)
    throw invalid("webhook.bad_timestamp", "the timestamp must be whole seconds");
  return signer(secret).sign(id, new Date(timestampSeconds * 1000), body(payload));
}

/** The three headers of a signed request, with one signature per active secret. */
export function signHeaders(
  id: string,
  timestampSeconds: number,
  payload: string | Uint8Array,
  secrets: readonly string[],
): SignedHeaders {
  if (secrets.length === 0) throw invalid("webhook.no_secret", "no secret to sign with");
  return {
    "webhook-id": id,
    "webhook-timestamp": String(timestampSeconds),
    "webhook-signature": secrets.map((s) => signOne(id, timestampSeconds, payload, s)).join(" "),
  };
}

export function header(headers: HeaderSource, name: string): string | undefined {
  if (headers instanceof Headers) return headers.get(name) ?? undefined;
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() !== name) continue;
    return Array.isArray(v) ? v.join(" ") : v;
  }
  return undefined;
}

/**
 * Checks a request signed with any of `secrets`. `payload` must be the raw body as received
 * (re-serialising parsed JSON changes the bytes). The timestamp must lie within `toleranceSeconds`
 * (default 300) of `now`, in the past or in the future.
 */
export function verifyHeaders(
  headers: HeaderSource,
  payload: string | Uint8Array,
  secrets: readonly string[],
  opts: { toleranceSeconds?: number; now?: Date | number } = {},
): VerifyResult {
  const id = header(headers, "webhook-id");
  const ts = header(headers, "webhook-timestamp");
  const signatures = header(headers, "webhook-signature");
  if (!id || !ts || !signatures) return { ok: false, reason: "missing_headers" };
  if (!/^\d{1,15}$/.test(ts.trim())) return { ok: false, reason: "bad_timestamp" };
  const timestamp = Number(ts.trim());
  const tolerance = opts.toleranceSeconds ?? 300;
  const nowMs = opts.now === undefined ? Date.now() : typeof opts.now === "number" ? opts.now : opts.now.getTime();
  const now = Math.floor(nowMs / 1000);
  if (now - timestamp > tolerance) return { ok: false, reason: "too_old" };
  if (timestamp - now > tolerance) return { ok: false, reason: "too_new" };
  if (secrets.length === 0) return { ok: false, reason: "no_secret" };

  const given = signatures
    .split(" ")
    .filter((e) => e.startsWith("v1,"))
    .map((e) => Buffer.from(e));
  for (const secret of secrets) {
    const expected = Buffer.from(signOne(id, timestamp, payload, secret));
    // The length of `v1,` + an HMAC-SHA256 in base64 is public; only the content is compared in constant time.
    if (given.some((g) => g.length === expected.length && timingSafeEqual(g, expected)))
      return { ok: true, id, timestamp };
  }
  return { ok: false, reason: "no_signature_matched" };
}

/** One secret (remote-skill tests and callers that hold a single secret). */
export function verify(
  headers: HeaderSource,
  payload: string | Uint8Array,
  secret: string,
  opts: { toleranceSeconds?: number; now?: Date | number } = {},
): VerifyResult {
  return verifyHeaders(headers, payload, [secret], opts);
}
